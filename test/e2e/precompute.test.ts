/**
 * Same-block liquidations (issue 9) on Anvil with mining paused and blocks mined by hand, its pool ordered by fees
 * (Anvil's default `--order fees`). An oracle update is put in the pool; the keeper sees it pending, prepares the
 * liquidations it will allow, and either sends them behind it at once (backrun) or holds them for its block
 * (on-block). Updates that are dropped or replaced, and a position closed before its update lands, are unwound with
 * no nonce left unused and nothing reverted on chain.
 */
import { type Address, encodeFunctionData, parseGwei, parseUnits } from "viem";
import { afterEach, describe, expect, it, onTestFailed } from "vitest";
import { eventfulAggregatorAbi, eventfulAggregatorBytecode } from "../../abi/EventfulAggregator.ts";
import { perpEngineAbi } from "../../abi/PerpEngine.ts";
import { simpleAggregatorProxyAbi } from "../../abi/SimpleAggregatorProxy.ts";
import type { RunningKeeper } from "../../src/app.ts";
import { DEVNET_MARKETS, type MarketSpec, ORACLE_DECIMALS } from "../../src/devnet/exchange.ts";
import { ETH, openPositions } from "../../src/devnet/positions.ts";
import { type DevnetFixture, ethLongs, shutdown, startDevnet, startTestKeeper } from "../helpers/devnet.ts";
import type { CapturedLog } from "../helpers/logs.ts";
import {
  liquidatedTraders,
  minedBlock as minedBlockOf,
  nonces,
  positionsPrepared,
  positionsSent,
  sendUpdate as sendUpdateTo,
} from "../helpers/precompute.ts";
import { rpcCalls, ticked, until } from "../helpers/wait.ts";

let net: DevnetFixture | undefined;
let keeper: RunningKeeper | undefined;

afterEach(async () => {
  await net?.ex.publicClient.request({ method: "evm_setAutomine" as never, params: [true] as never }).catch(() => {});
  await shutdown(keeper, net);
  keeper = undefined;
  net = undefined;
});

const rpc = (method: string, params: unknown[] = []) =>
  (net as DevnetFixture).ex.publicClient.request({ method: method as never, params: params as never });

type Precompute = { mode: "on-block" | "backrun"; simulation?: string };

/** `count` 20x ETH longs that a drop to 2375 puts below maintenance; mining paused; a keeper following them. */
async function setup(
  count: number,
  precompute: Precompute,
  options: { ws?: boolean; batching?: boolean; markets?: readonly MarketSpec[] } = {},
): Promise<{ k: RunningKeeper; logs: CapturedLog }> {
  net = await startDevnet({ accounts: count + 4, markets: options.markets });
  await openPositions(net.ex, ethLongs(count));
  await rpc("evm_setAutomine", [false]);
  const started = await startTestKeeper(
    net,
    { pollIntervalMs: 50, precompute, batching: options.batching ?? true },
    undefined,
    options.ws === false ? {} : { wsUrl: net.anvil.rpcUrl.replace("http://", "ws://") },
  );
  keeper = started.keeper;
  const k = keeper;
  onTestFailed(() => {
    const seen = new Set(["liquidation_sent", "position_flagged", "liquidation_confirmed", "price_updated"]);
    console.log(
      started.logs.lines
        .filter((l) => !seen.has(String(l.event)))
        .map((l) => JSON.stringify(l).slice(0, 400))
        .join("\n"),
    );
  });
  await until("backfill", () => k.book.positions.size === count && k.watcher.latestTick !== undefined);
  // the pool source is live: the pool's first read (txpool_content) is asked once the pending subscription is
  // established, or at once when the pool is polled
  await until("the pending source live", async () => (await rpcCalls(k, "txpool_content")) > 0, 10_000);
  return { k, logs: started.logs };
}

const sendUpdate = (price: string, fees?: { maxFeePerGas: bigint; maxPriorityFeePerGas: bigint }, nonce?: number) =>
  sendUpdateTo((net as DevnetFixture).ex, price, fees, nonce);
const minedBlock = (blockNumber?: bigint) => minedBlockOf((net as DevnetFixture).ex, blockNumber);
const nonceWhole = (address: Address) => nonces((net as DevnetFixture).ex, address);

describe("same-block liquidations", () => {
  it("backrun: a pending update that makes 50 positions liquidatable lands with all 50 in its own block, after it", async () => {
    const { k, logs } = await setup(50, { mode: "backrun" });
    const signer = k.addresses[0] as Address;
    const before = await nonceWhole(signer);
    const update = await sendUpdate("2375");
    await until("all 50 sent behind the pending update", () => positionsSent(logs) === 50, 20_000);
    expect(logs.events("oracle_update_pending")[0]).toMatchObject({
      txHash: update,
      market: "ETH-USD",
      liquidatable: 50,
    });
    expect(await rpc("eth_blockNumber")).toBe(`0x${k.watcher.processedBlock.toString(16)}`); // nothing mined yet
    await rpc("evm_mine");
    const { txs, receipts } = await minedBlock();
    expect(txs[0]?.hash).toBe(update); // the update first
    const ours = txs.filter((tx) => tx.from.toLowerCase() === signer.toLowerCase());
    expect(ours.length).toBe(txs.length - 1);
    expect(receipts.every((r) => r.status === "success")).toBe(true); // none reverted
    expect(liquidatedTraders(receipts)).toHaveLength(50);
    await until("confirmed", () => k.executor.stats.confirmed === 50);
    expect(k.executor.updateStats.distance["0"]).toBe(50); // the same block as the update
    expect(k.executor.stats.reverted).toBe(0);
    const after = await nonceWhole(signer);
    expect(after.latest).toBe(after.pending);
    expect(after.latest - before.latest).toBe(ours.length);
    expect(logs.events("liquidation_confirmed").every((l) => l.blocksAfterPriceUpdate === 0)).toBe(true);
    const metrics = await (await fetch(`${k.metricsUrl}/metrics`)).text();
    const metric = (name: string) =>
      Number(metrics.match(new RegExp(`^${name.replace(/[{}]/g, "\\$&")} (\\S+)$`, "m"))?.[1]);
    expect(metric('perp_keeper_liquidations_by_update_distance_total{blocks="0"}')).toBe(50);
    expect(metric('perp_keeper_oracle_updates_pending_total{outcome="landed"}')).toBe(1);
    expect(metric("perp_keeper_liquidations_prepared_total")).toBe(50);
  }, 120_000);

  it("backrun with 1-second interval blocks: the update's own block carries it first, then every liquidation", async () => {
    const { k, logs } = await setup(20, { mode: "backrun" });
    await rpc("evm_setIntervalMining", [1]);
    const from = k.watcher.processedBlock;
    await until("interval blocks followed", () => (k.watcher.latestTick?.blockNumber ?? 0n) >= from + 2n, 10_000);
    // sent just after a block, as an oracle node would mid-interval: the keeper has the rest of the second
    const last = k.watcher.latestTick?.blockNumber ?? 0n;
    await until("a fresh block", () => (k.watcher.latestTick?.blockNumber ?? 0n) > last, 5_000);
    const update = await sendUpdate("2375");
    const client = (net as DevnetFixture).ex.publicClient;
    const receipt = await client.waitForTransactionReceipt({ hash: update, timeout: 10_000 });
    await until("confirmed", () => k.executor.stats.confirmed === 20, 15_000);
    const block = await client.getBlock({ blockNumber: receipt.blockNumber, includeTransactions: true });
    const receipts = await Promise.all(block.transactions.map((t) => client.getTransactionReceipt({ hash: t.hash })));
    const signer = (k.addresses[0] as Address).toLowerCase();
    const ours = block.transactions.filter((t) => t.from.toLowerCase() === signer);
    expect(ours.length).toBeGreaterThan(0);
    // every one of ours after the update, none reverted, all 20 positions liquidated in this very block
    expect(Math.min(...ours.map((t) => t.transactionIndex ?? 0))).toBeGreaterThan(receipt.transactionIndex);
    expect(receipts.every((r) => r.status === "success")).toBe(true);
    expect(liquidatedTraders(receipts)).toHaveLength(20);
    expect(k.executor.updateStats.distance["0"]).toBe(20);
    expect(positionsSent(logs)).toBe(20);
  }, 120_000);

  it("on-block: 50 prepared while the update is pending, broadcast at its block's tick, mined in the next", async () => {
    const { k, logs } = await setup(50, { mode: "on-block", simulation: "stateOverride" });
    const update = await sendUpdate("2375");
    await until("all 50 prepared", () => positionsPrepared(logs) === 50, 20_000);
    expect(positionsSent(logs)).toBe(0); // held: nothing signed before the update's block
    await rpc("evm_mine"); // the update's block: the update alone
    const first = await minedBlock();
    expect(first.txs.map((t) => t.hash)).toEqual([update]);
    const landedBlock = first.block.number;
    await until("all 50 broadcast", () => positionsSent(logs) === 50, 10_000);
    const landed = logs.events("oracle_update_landed")[0];
    expect(landed).toMatchObject({ txHash: update, blockNumber: landedBlock.toString(), fired: 50 });
    // sent within the tick of the update's block: before the keeper saw any later head (there is none yet)
    expect(k.watcher.processedBlock).toBe(landedBlock);
    expect(logs.events("liquidation_simulated")).toHaveLength(0);
    await rpc("evm_mine");
    const next = await minedBlock();
    expect(next.receipts.every((r) => r.status === "success")).toBe(true);
    expect(liquidatedTraders(next.receipts)).toHaveLength(50);
    await until("confirmed", () => k.executor.stats.confirmed === 50);
    expect(k.executor.updateStats.distance["1"]).toBe(50);
  }, 120_000);

  it("backrun: an update dropped before mining gets every prepared liquidation cancelled at its nonce", async () => {
    const { k, logs } = await setup(12, { mode: "backrun" });
    const signer = k.addresses[0] as Address;
    const before = await nonceWhole(signer);
    const update = await sendUpdate("2375");
    await until("sent", () => positionsSent(logs) === 12, 20_000);
    const attempts = logs.events("liquidation_sent").length;
    await rpc("anvil_dropTransaction", [update]);
    await until("unwound", () => logs.events("oracle_update_gone").length === 1, 10_000);
    expect(logs.events("oracle_update_gone")[0]).toMatchObject({ txHash: update, reason: "dropped" });
    await until("every attempt cancelled", () => logs.events("liquidation_cancelling").length === attempts, 10_000);
    await rpc("evm_mine");
    const { txs, receipts } = await minedBlock();
    expect(
      txs.every(
        (tx) => tx.from.toLowerCase() === signer.toLowerCase() && tx.to?.toLowerCase() === signer.toLowerCase(),
      ),
    ).toBe(true);
    expect(receipts.every((r) => r.status === "success")).toBe(true);
    expect(liquidatedTraders(receipts)).toHaveLength(0);
    const after = await nonceWhole(signer);
    expect(after.latest).toBe(after.pending); // no nonce left unused, none waiting
    expect(after.latest - before.latest).toBe(attempts);
    await until("cancel settled", () => k.executor.stats.cancelled === attempts);
  }, 120_000);

  it("on-block over a polled pool (no WebSocket): a dropped update sends nothing and takes no nonce", async () => {
    const { k, logs } = await setup(6, { mode: "on-block" }, { ws: false });
    const signer = k.addresses[0] as Address;
    const before = await nonceWhole(signer);
    const update = await sendUpdate("2375");
    await until("prepared", () => positionsPrepared(logs) === 6, 20_000);
    await rpc("anvil_dropTransaction", [update]);
    await until("unwound", () => logs.events("oracle_update_gone").length === 1, 10_000);
    expect(logs.events("oracle_update_gone")[0]).toMatchObject({ txHash: update, reason: "dropped", discarded: 6 });
    // two heads after it ticked, the executor idle: a held liquidation that fired at either would be sent by now
    await ticked(k, net as DevnetFixture, 2);
    expect(positionsSent(logs)).toBe(0);
    expect(await nonceWhole(signer)).toEqual(before);
    expect(k.book.positions.size).toBe(6); // all still open: the price never moved
  }, 120_000);

  it("backrun: an update replaced by its sender (same nonce, no crash) gets what was sent on it cancelled", async () => {
    const { k, logs } = await setup(8, { mode: "backrun" });
    const signer = k.addresses[0] as Address;
    const before = await nonceWhole(signer);
    const update = await sendUpdate("2375");
    await until("sent", () => positionsSent(logs) === 8, 20_000);
    const attempts = logs.events("liquidation_sent").length;
    const tx = await (net as DevnetFixture).ex.publicClient.getTransaction({ hash: update });
    const replacement = await sendUpdate(
      "2500",
      { maxFeePerGas: parseGwei("40"), maxPriorityFeePerGas: parseGwei("4") },
      tx.nonce,
    );
    await until("replaced", () => logs.events("oracle_update_gone").some((l) => l.reason === "replaced"), 10_000);
    await until("cancelled", () => logs.events("liquidation_cancelling").length === attempts, 10_000);
    await rpc("evm_mine");
    const { txs, receipts } = await minedBlock();
    expect(txs.map((t) => t.hash)).toContain(replacement);
    expect(txs.map((t) => t.hash)).not.toContain(update);
    expect(receipts.every((r) => r.status === "success")).toBe(true);
    expect(liquidatedTraders(receipts)).toHaveLength(0);
    const after = await nonceWhole(signer);
    expect(after.latest).toBe(after.pending);
    expect(after.latest - before.latest).toBe(attempts);
  }, 120_000);

  it("backrun: a transmitter's gas bump with the same answer keeps what was sent on it, all in its block", async () => {
    const { logs } = await setup(8, { mode: "backrun" });
    const update = await sendUpdate("2375");
    await until("sent", () => positionsSent(logs) === 8, 20_000);
    const attempts = logs.events("liquidation_sent").length;
    const tx = await (net as DevnetFixture).ex.publicClient.getTransaction({ hash: update });
    const bump = await sendUpdate(
      "2375",
      { maxFeePerGas: parseGwei("40"), maxPriorityFeePerGas: parseGwei("4") },
      tx.nonce,
    );
    await until("the bump adopted", () => logs.events("oracle_update_rebid").some((l) => l.txHash === bump), 10_000);
    expect(logs.events("oracle_update_rebid")[0]?.replaces).toBe(update);
    await rpc("evm_mine");
    const { txs, receipts } = await minedBlock();
    expect(txs.map((t) => t.hash)).toContain(bump);
    expect(txs.map((t) => t.hash)).not.toContain(update);
    expect(liquidatedTraders(receipts)).toHaveLength(8);
    expect(logs.events("liquidation_cancelling")).toHaveLength(0);
    expect(logs.events("oracle_update_gone")).toHaveLength(0);
    expect(logs.events("liquidation_sent")).toHaveLength(attempts);
  }, 120_000);

  it("follows the aggregator behind a market's proxy, and the new one once the proxy is re-pointed", async () => {
    const markets = [
      DEVNET_MARKETS[0] as MarketSpec,
      { ...(DEVNET_MARKETS[1] as MarketSpec), oracleKind: "eventful-proxy" as const },
    ];
    const { k, logs } = await setup(6, { mode: "on-block" }, { markets });
    const ex = (net as DevnetFixture).ex;
    const old = ex.d.markets[ETH]?.aggregator as Address;
    const proxy = ex.d.markets[ETH]?.oracle as Address;
    expect(k.watcher.prices.sources().get(ETH)).toBe(old.toLowerCase());
    const deploy = await ex.owner.deployContract({
      abi: eventfulAggregatorAbi,
      bytecode: eventfulAggregatorBytecode,
      args: [ORACLE_DECIMALS, parseUnits("2500", ORACLE_DECIMALS)],
    });
    await rpc("evm_mine");
    const fresh = (await ex.publicClient.getTransactionReceipt({ hash: deploy })).contractAddress as Address;
    await ex.owner.writeContract({
      address: proxy,
      abi: simpleAggregatorProxyAbi,
      functionName: "setAggregator",
      args: [fresh],
      gas: 200_000n,
    });
    await rpc("evm_mine");
    await until("the new aggregator followed", () => k.watcher.prices.sources().get(ETH) === fresh.toLowerCase());
    // the old aggregator feeds nothing any more: an update to it is no market's
    const stale = await ex.owner.writeContract({
      address: old,
      abi: eventfulAggregatorAbi,
      functionName: "updateAnswer",
      args: [parseUnits("2375", ORACLE_DECIMALS)],
      gas: 200_000n,
    });
    const update = await ex.owner.writeContract({
      address: fresh,
      abi: eventfulAggregatorAbi,
      functionName: "updateAnswer",
      args: [parseUnits("2375", ORACLE_DECIMALS)],
      gas: 200_000n,
    });
    await until("prepared", () => positionsPrepared(logs) === 6, 10_000);
    const seen = logs.events("oracle_update_pending").map((l) => l.txHash);
    expect(seen).toEqual([update]);
    expect(seen).not.toContain(stale);
    await rpc("evm_mine");
    await until("fired", () => positionsSent(logs) === 6, 10_000);
    await rpc("evm_mine");
    await until("confirmed", () => k.executor.stats.confirmed === 6);
  }, 120_000);

  for (const mode of ["backrun", "on-block"] as const) {
    it(`${mode}: a position closed between the pending update and its block is not liquidated, nothing reverts`, async () => {
      // one liquidate() per position: the closed one's would revert if it were sent after the update
      const { k, logs } = await setup(4, { mode, simulation: "simulateV1" }, { batching: false });
      const update = await sendUpdate("2375");
      await until("prepared", () => positionsPrepared(logs) === 4, 20_000);
      if (mode === "backrun") await until("sent", () => positionsSent(logs) === 4, 10_000);
      const ex = (net as DevnetFixture).ex;
      const closer = ex.trader(2); // the first position's trader
      const position = await ex.position(closer.account.address, ETH);
      const close = {
        address: ex.d.engine,
        abi: perpEngineAbi,
        functionName: "trade",
        args: [BigInt(ETH), -position.size, 0n],
      } as const;
      const data = encodeFunctionData(close);
      const from = closer.account.address;
      // on the latest block: on the pool's state (with the update) the position could no longer close
      // half again the estimate (the block's funding settlement may cost more): room for nothing else behind it
      const gas =
        ((await ex.publicClient.estimateGas({ account: from, to: ex.d.engine, data, blockTag: "latest" })) * 3n) / 2n;
      const raw = await closer.signTransaction({
        account: closer.account,
        chainId: ex.publicClient.chain.id,
        type: "eip1559",
        to: ex.d.engine,
        data,
        gas,
        nonce: await ex.publicClient.getTransactionCount({ address: from, blockTag: "latest" }),
        maxFeePerGas: parseGwei("50"),
        maxPriorityFeePerGas: parseGwei("3"),
      });
      await rpc("eth_sendRawTransaction", [raw]);
      // a block with room for the close alone: the update and everything behind it wait for the next one
      await rpc("anvil_setBlockGasLimit", [`0x${gas.toString(16)}`]);
      await rpc("evm_mine");
      await rpc("anvil_setBlockGasLimit", [`0x${(30_000_000).toString(16)}`]);
      const closing = await minedBlock();
      expect(closing.txs).toHaveLength(1);
      expect(closing.txs[0]?.from.toLowerCase()).toBe(closer.account.address.toLowerCase());
      if (closing.receipts[0]?.status !== "success") {
        const why = await ex.publicClient
          .call({ account: from, to: ex.d.engine, data, gas, blockNumber: closing.block.number - 1n })
          .then(
            () => "no revert at the parent",
            (e: Error) => e.message.split("\n").slice(0, 3).join(" "),
          );
        throw new Error(`close reverted (gas ${gas}, used ${closing.receipts[0]?.gasUsed}): ${why}`);
      }
      await until("close seen", () => k.book.positions.size === 3 && k.watcher.processedBlock === closing.block.number);
      if (mode === "backrun") {
        // judged at the update's price at this head: nothing of it is liquidatable any more
        await until("its backrun cancelled", () => logs.events("liquidation_cancelling").length === 1, 10_000);
        expect(logs.events("liquidation_cancelling")[0]?.trader).toBe(closer.account.address);
      }
      await rpc("evm_mine"); // the update's block
      const landing = await minedBlock();
      expect(landing.txs.map((t) => t.hash)).toContain(update);
      if (mode === "on-block") await until("fired", () => positionsSent(logs) === 3, 10_000);
      await rpc("evm_mine");
      const after = await minedBlock();
      const receipts = [...landing.receipts, ...after.receipts];
      expect(receipts.every((r) => r.status === "success")).toBe(true); // no revert mined
      const liquidated = liquidatedTraders(receipts);
      expect(liquidated).toHaveLength(3);
      expect(liquidated).not.toContain(closer.account.address.toLowerCase());
      expect(positionsSent(logs)).toBe(mode === "backrun" ? 4 : 3);
      expect(k.executor.stats.reverted).toBe(0);
      const signer = k.addresses[0] as Address;
      await until("nonces whole", async () => {
        const n = await nonceWhole(signer);
        return n.latest === n.pending;
      });
    }, 120_000);
  }
});
