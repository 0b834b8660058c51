/**
 * Oracles that emit AnswerUpdated (as production Chainlink aggregators do) are followed from their logs, asked in
 * the same eth_getLogs as the exchange's: once an aggregator has shown it emits, its market is no longer read at
 * every head, and a price move is taken from the log. An oracle behind a proxy is followed at the aggregator behind
 * it, and a new aggregator behind the proxy (AggregatorConfirmed) is picked up at once. Every HTTP request is
 * counted at a proxy, JSON-RPC batch elements one by one, and Multicall3 reads are decoded to see which oracles
 * were read.
 */
import { type Address, decodeFunctionData, type Hex, multicall3Abi, parseUnits } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventfulAggregatorAbi, eventfulAggregatorBytecode } from "../../abi/EventfulAggregator.ts";
import { simpleAggregatorProxyAbi } from "../../abi/SimpleAggregatorProxy.ts";
import type { RunningKeeper } from "../../src/app.ts";
import { DEVNET_MARKETS, ORACLE_DECIMALS } from "../../src/devnet/exchange.ts";
import { BTC, ETH, openPositions } from "../../src/devnet/positions.ts";
import { type DevnetFixture, ethLongs, shutdown, startDevnet, startTestKeeper } from "../helpers/devnet.ts";
import type { CapturedLog } from "../helpers/logs.ts";
import { type RpcProxy, startRpcProxy } from "../helpers/rpcProxy.ts";
import { settled, until } from "../helpers/wait.ts";

type Call = { method: string; params: unknown[] };

let net: DevnetFixture;
let keeper: RunningKeeper | undefined;
let logs: CapturedLog;
let proxy: RpcProxy;
const requests: Call[][] = [];

const rpc = (method: string, params: unknown[] = []) =>
  net.ex.publicClient.request({ method: method as never, params: params as never });

/** The oracles a head's requests read (decoded from Multicall3's aggregate3, lower-cased). */
function oraclesRead(calls: Call[]): string[] {
  return calls
    .filter((c) => c.method === "eth_call")
    .flatMap((c) => {
      const { data } = c.params[0] as { data: Hex };
      try {
        const decoded = decodeFunctionData({ abi: multicall3Abi, data });
        if (decoded.functionName !== "aggregate3") return [];
        return (decoded.args[0] as readonly { target: Address }[]).map((t) => t.target.toLowerCase());
      } catch {
        return [];
      }
    });
}

/**
 * Mines one block (or lets `send` mine it), waits for the keeper's tick at it and then for its executor to settle,
 * returns that head's requests: what the tick needed came before it, what the tick set off is done once settled.
 */
async function head(send?: () => Promise<unknown>): Promise<Call[]> {
  const k = keeper as RunningKeeper;
  const before = requests.length;
  const at = await net.ex.publicClient.getBlockNumber({ cacheTime: 0 });
  if (send) await send();
  else await rpc("evm_mine");
  await until(`the tick at ${at + 1n}`, () => (k.watcher.latestTick?.blockNumber ?? 0n) >= at + 1n, 5_000);
  await settled(k);
  return requests.slice(before).flat();
}

beforeAll(async () => {
  net = await startDevnet({
    accounts: 8,
    markets: [
      { ...(DEVNET_MARKETS[0] as (typeof DEVNET_MARKETS)[0]), oracleKind: "eventful" },
      { ...(DEVNET_MARKETS[1] as (typeof DEVNET_MARKETS)[0]), oracleKind: "eventful-proxy" },
    ],
  });
  await openPositions(net.ex, ethLongs(2));
  proxy = await startRpcProxy(net.anvil.rpcUrl, (body) => {
    const parsed = JSON.parse(body) as Call | Call[];
    requests.push(Array.isArray(parsed) ? parsed : [parsed]);
    return undefined;
  });
  ({ keeper, logs } = await startTestKeeper(net, { pollIntervalMs: 20_000, batching: false }, undefined, {
    rpcUrl: proxy.url,
    wsUrl: net.anvil.rpcUrl.replace("http://", "ws://"),
  }));
  const k = keeper;
  await until("backfill", () => k.book.positions.size === 2 && k.watcher.latestTick !== undefined);
}, 60_000);

afterAll(async () => {
  proxy?.close();
  await shutdown(keeper, net);
});

describe("oracles followed from their logs", () => {
  const btc = () => String(net.ex.d.markets[BTC]?.oracle).toLowerCase();
  const eth = () => String(net.ex.d.markets[ETH]?.oracle).toLowerCase();

  it("reads every oracle at each head until its aggregator shows it emits AnswerUpdated", async () => {
    const idle = await head();
    expect(oraclesRead(idle).sort()).toEqual([btc(), eth()].sort());
    const logsCall = idle.find((c) => c.method === "eth_getLogs");
    const filter = logsCall?.params[0] as { address?: string[] } | undefined;
    const addresses = (filter?.address ?? []).map((a) => a.toLowerCase());
    // the exchange, both oracles, and the aggregator behind ETH's proxy
    expect(addresses).toContain(net.ex.d.markets[ETH]?.aggregator.toLowerCase());
    expect(addresses).toContain(btc());
    // one update each: the log and the read of the same block agree, so both are followed from then on
    await head(() => net.ex.setPrice(BTC, parseUnits("60100", ORACLE_DECIMALS)));
    await head(() => net.ex.setPrice(ETH, parseUnits("2510", ORACLE_DECIMALS)));
    const after = await head();
    expect(oraclesRead(after)).toEqual([]);
    expect(after.map((c) => c.method)).toEqual(["eth_getLogs"]);
  }, 30_000);

  it("takes a price move from the log, without reading, and liquidates at it", async () => {
    const k = keeper as RunningKeeper;
    const requestsAtMove = await head(() => net.ex.setPrice(ETH, parseUnits("2375", ORACLE_DECIMALS)));
    expect(oraclesRead(requestsAtMove)).toEqual([]);
    expect(k.watcher.latestTick?.prices.get(ETH)).toBe(parseUnits("2375", 18));
    const update = logs.events("price_updated").at(-1);
    expect(update?.market).toBe("ETH-USD");
    expect(update?.price).toBe("2375");
    await until("both liquidated", () => k.executor.stats.confirmed === 2, 20_000);
  }, 30_000);

  it("picks up a new aggregator behind the proxy at once, read at that block", async () => {
    const k = keeper as RunningKeeper;
    const hash = await net.ex.owner.deployContract({
      abi: eventfulAggregatorAbi,
      bytecode: eventfulAggregatorBytecode,
      args: [ORACLE_DECIMALS, parseUnits("2600", ORACLE_DECIMALS)],
    });
    const receipt = await net.ex.publicClient.waitForTransactionReceipt({ hash });
    const fresh = receipt.contractAddress as Address;
    const swap = await head(() =>
      net.ex.send(net.ex.owner, {
        address: net.ex.d.markets[ETH]?.oracle as Address,
        abi: simpleAggregatorProxyAbi,
        functionName: "setAggregator",
        args: [fresh],
      }),
    );
    expect(oraclesRead(swap)).toContain(eth()); // the proxy logged: its market read again, not carried
    expect(k.watcher.latestTick?.prices.get(ETH)).toBe(parseUnits("2600", 18));
    // the new aggregator is followed once it too has shown it emits
    const first = await head(() =>
      net.ex.send(net.ex.owner, {
        address: fresh,
        abi: eventfulAggregatorAbi,
        functionName: "updateAnswer",
        args: [parseUnits("2610", ORACLE_DECIMALS)],
      }),
    );
    expect(oraclesRead(first)).toContain(eth());
    expect(k.watcher.latestTick?.prices.get(ETH)).toBe(parseUnits("2610", 18));
    const idle = await head();
    expect(oraclesRead(idle)).toEqual([]);
  }, 30_000);
});
