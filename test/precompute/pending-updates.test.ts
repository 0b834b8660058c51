/**
 * Pending oracle updates read from Anvil's pool (txpool_content) while mining is paused: an updateAnswer to a
 * market's aggregator is seen with its answer before it is mined, other transactions are not, and once mined it is
 * gone from the pool.
 */
import { type Address, encodeFunctionData, parseUnits } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mockV3AggregatorAbi } from "../../abi/MockV3Aggregator.ts";
import { ORACLE_DECIMALS } from "../../src/devnet/exchange.ts";
import { ETH } from "../../src/devnet/positions.ts";
import { pendingOracleUpdates } from "../../src/precompute/pendingUpdates.ts";
import { type DevnetFixture, startDevnet } from "../helpers/devnet.ts";

let net: DevnetFixture;
const rpc = (method: string, params: unknown[] = []) =>
  net.ex.publicClient.request({ method: method as never, params: params as never });

beforeAll(async () => {
  net = await startDevnet({ accounts: 4 });
}, 60_000);

afterAll(async () => {
  await net?.stop();
});

describe("pending oracle updates from the pool", () => {
  it("sees an updateAnswer to a market's aggregator before it is mined, and only that", async () => {
    const oracle = net.ex.d.markets[ETH]?.oracle as Address;
    const aggregators = new Map(net.ex.d.markets.map((m) => [m.oracle.toLowerCase(), [m.id]]));
    await rpc("evm_setAutomine", [false]);
    const owner = net.ex.owner.account.address;
    const answer = parseUnits("2375", ORACLE_DECIMALS);
    const hash = (await rpc("eth_sendTransaction", [
      {
        from: owner,
        to: oracle,
        data: encodeFunctionData({ abi: mockV3AggregatorAbi, functionName: "updateAnswer", args: [answer] }),
        // a gas limit of its own: the node's estimate (made against a block other than the one that mines it, under
        // load) came out short once, and the update reverted out of gas (CI, 18:55)
        gas: "0x30d40",
      },
    ])) as `0x${string}`;
    // noise: a plain transfer, and a call to an address that is no market's aggregator
    await rpc("eth_sendTransaction", [{ from: owner, to: net.ex.d.engine, value: "0x0" }]);
    const pending = await pendingOracleUpdates(net.ex.publicClient, aggregators);
    expect(pending, JSON.stringify(await rpc("txpool_content"))).toHaveLength(1);
    expect(pending[0]).toMatchObject({ kind: "updateAnswer", answer, marketIds: [ETH], txHash: hash });
    expect(await net.ex.price(ETH)).not.toBe(answer); // not mined yet
    await rpc("evm_mine");
    // the answer is read at the update's own block (a read of "latest" raced the mined block under load)
    const mined = await net.ex.publicClient.getTransactionReceipt({ hash });
    await rpc("evm_setAutomine", [true]);
    expect(await pendingOracleUpdates(net.ex.publicClient, aggregators)).toEqual([]);
    const atBlock = await net.ex.publicClient.readContract({
      address: net.ex.d.markets[ETH]?.aggregator as Address,
      abi: mockV3AggregatorAbi,
      functionName: "latestAnswer",
      blockNumber: mined.blockNumber,
    });
    expect(mined.status).toBe("success");
    expect(atBlock).toBe(answer);
  }, 30_000);
});
