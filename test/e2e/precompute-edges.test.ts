/**
 * Same-block liquidations (issue 9), the edges, on Anvil with mining paused and blocks mined by hand, its pool
 * ordered by fees (Anvil's default `--order fees`): an update with a zero tip (backrun falls back to on-block), an
 * update that stays pending past maxWaitBlocks (expired: every backrun cancelled at its nonce), two signers sharing
 * the batches of one update, a dry run, and a keeper restarted on its journal while its backruns wait on an update.
 */
import { type Address, type Hex, parseGwei } from "viem";
import { afterEach, describe, expect, it, onTestFailed } from "vitest";
import type { RunningKeeper } from "../../src/app.ts";
import { ANVIL_KEYS } from "../../src/devnet/anvil.ts";
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
import { type RpcProxy, startRpcProxy } from "../helpers/rpcProxy.ts";
import { rpcCalls, settled, ticked, until } from "../helpers/wait.ts";

let net: DevnetFixture | undefined;
let keeper: RunningKeeper | undefined;
let proxy: RpcProxy | undefined;

afterEach(async () => {
  // the keeper and its devnet are stopped whatever else fails on the way out: no Anvil outlives its test
  try {
    proxy?.close();
    await net?.ex.publicClient.request({ method: "evm_setAutomine" as never, params: [true] as never }).catch(() => {});
  } finally {
    proxy = undefined;
    await shutdown(keeper, net);
    keeper = undefined;
    net = undefined;
  }
});

const rpc = (method: string, params: unknown[] = []) =>
  (net as DevnetFixture).ex.publicClient.request({ method: method as never, params: params as never });

type Precompute = { mode: "on-block" | "backrun"; simulation?: string; maxWaitBlocks?: number };

interface SetupOptions {
  /** The first trader's account index (ethLongs): above every signer's. */
  readonly firstTrader?: number;
  readonly privateKeys?: readonly Hex[];
  /** More keeper config (dryRun, firstBatchPositions, batchGasLimit, stateDir). */
  readonly keeper?: Record<string, unknown>;
  /** The keeper's HTTP endpoint, when not the node itself (a proxy); WebSocket still goes to the node. */
  readonly rpcUrl?: string;
}

/** Starts a keeper on the fixture's devnet, its log printed if the test fails, and waits for its backfill. */
async function launch(
  count: number,
  precompute: Precompute,
  options: SetupOptions,
): Promise<{ k: RunningKeeper; logs: CapturedLog; stateDir: string }> {
  const fixture = net as DevnetFixture;
  const started = await startTestKeeper(
    fixture,
    { pollIntervalMs: 50, precompute, batching: true, ...options.keeper },
    options.privateKeys,
    { wsUrl: fixture.anvil.rpcUrl.replace("http://", "ws://"), rpcUrl: options.rpcUrl },
  );
  keeper = started.keeper;
  const k = keeper;
  onTestFailed(() => {
    const seen = new Set(["position_flagged", "price_updated"]);
    console.log(
      started.logs.lines
        .filter((l) => !seen.has(String(l.event)))
        .map((l) => JSON.stringify(l).slice(0, 400))
        .join("\n"),
    );
  });
  await until("backfill", () => k.book.positions.size === count && k.watcher.latestTick !== undefined);
  // the pending subscription is established: the pool's first read (txpool_content) is asked once it is
  await until("the pending subscription established", async () => (await rpcCalls(k, "txpool_content")) > 0, 10_000);
  return { k, logs: started.logs, stateDir: started.stateDir };
}

/** `count` 20x ETH longs that a drop to 2375 puts below maintenance; mining paused; a keeper following them. */
async function setup(
  count: number,
  precompute: Precompute,
  options: SetupOptions = {},
): Promise<{ k: RunningKeeper; logs: CapturedLog; stateDir: string }> {
  const firstTrader = options.firstTrader ?? 2;
  net = await startDevnet({ accounts: count + firstTrader + 2 });
  await openPositions(net.ex, ethLongs(count, firstTrader));
  await rpc("evm_setAutomine", [false]);
  return launch(count, precompute, options);
}

const sendUpdate = (price: string, fees?: { maxFeePerGas: bigint; maxPriorityFeePerGas: bigint }, nonce?: number) =>
  sendUpdateTo((net as DevnetFixture).ex, price, fees, nonce);
const minedBlock = (blockNumber?: bigint) => minedBlockOf((net as DevnetFixture).ex, blockNumber);
const nonceWhole = (address: Address) => nonces((net as DevnetFixture).ex, address);

/** Every block in [from, latest] with its transactions and their receipts, in order. */
async function blocksSince(from: bigint) {
  const client = (net as DevnetFixture).ex.publicClient;
  const head = await client.getBlockNumber({ cacheTime: 0 });
  const out = [];
  for (let b = from; b <= head; b++) {
    const block = await client.getBlock({ blockNumber: b, includeTransactions: true });
    const receipts = await Promise.all(block.transactions.map((tx) => client.getTransactionReceipt({ hash: tx.hash })));
    out.push({ block, txs: block.transactions, receipts });
  }
  return out;
}

/**
 * Waits until the keeper has ticked the chain's latest block and its executor is settled: what it did at that head
 * (the liquidations it planned, the cancels it decided, the positions a mined cancel freed) is in the pool by then.
 */
async function headSeen(k: RunningKeeper): Promise<bigint> {
  const client = (net as DevnetFixture).ex.publicClient;
  const head = await client.getBlockNumber({ cacheTime: 0 });
  await until(`head ${head} ticked`, () => (k.watcher.latestTick?.blockNumber ?? -1n) >= head, 10_000);
  await settled(k);
  return head;
}

/** Mines one block whose gas limit (100,000) has no room for the update (gas 200,000) nor any liquidation of ours. */
async function mineSmall(): Promise<void> {
  await rpc("anvil_setBlockGasLimit", [`0x${(100_000).toString(16)}`]);
  try {
    await rpc("evm_mine");
  } finally {
    await rpc("anvil_setBlockGasLimit", [`0x${(30_000_000).toString(16)}`]);
  }
}

const lower = (a: string) => a.toLowerCase();

describe("same-block liquidations: edges", () => {
  it("backrun, an update with a zero tip: handled on-block, nothing broadcast before its block, all in the next", async () => {
    const COUNT = 12;
    const { k, logs } = await setup(COUNT, { mode: "backrun" });
    const signer = k.addresses[0] as Address;
    const before = await nonceWhole(signer);
    const update = await sendUpdate("2375", { maxFeePerGas: parseGwei("20"), maxPriorityFeePerGas: 0n });
    await until("all prepared", () => positionsPrepared(logs) === COUNT, 20_000);
    expect(logs.events("oracle_update_pending")).toHaveLength(1);
    expect(logs.events("oracle_update_pending")[0]).toMatchObject({
      txHash: update,
      market: "ETH-USD",
      mode: "on-block",
      backrunFallback: "update_tip_zero",
      liquidatable: COUNT,
    });
    expect(logs.events("liquidation_prepared").every((l) => l.mode === "on-block" && l.update === update)).toBe(true);
    // held: nothing signed, nothing in the pool from our signer while the update is pending, once the preparation
    // is over (every simulation done, any broadcast under way finished)
    await settled(k);
    expect(positionsSent(logs)).toBe(0);
    expect(await nonceWhole(signer)).toEqual(before);

    await rpc("evm_mine"); // the update's block: the update alone
    const first = await minedBlock();
    expect(first.txs.map((t) => t.hash)).toEqual([update]);
    expect(first.receipts[0]?.status).toBe("success");
    await until("all broadcast at the update's block", () => positionsSent(logs) === COUNT, 10_000);
    expect(logs.events("oracle_update_landed")[0]).toMatchObject({
      txHash: update,
      mode: "on-block",
      blockNumber: first.block.number.toString(),
      fired: COUNT,
    });
    expect(logs.events("liquidation_sent").every((l) => l.afterUpdate === undefined)).toBe(true);

    await rpc("evm_mine");
    const next = await minedBlock();
    expect(next.txs.length).toBeGreaterThan(0);
    expect(next.txs.every((t) => lower(t.from) === lower(signer))).toBe(true);
    expect(next.receipts.every((r) => r.status === "success")).toBe(true); // none reverted
    const liquidated = liquidatedTraders(next.receipts);
    expect(liquidated).toHaveLength(COUNT);
    expect(new Set(liquidated).size).toBe(COUNT);
    await until("confirmed", () => k.executor.stats.confirmed === COUNT);
    expect(k.executor.updateStats.distance["1"]).toBe(COUNT); // the block after the update's
    expect(k.executor.stats.reverted).toBe(0);
    const after = await nonceWhole(signer);
    expect(after.latest).toBe(after.pending);
    expect(after.latest - before.latest).toBe(next.txs.length);
  }, 120_000);

  it("backrun, an update still pending after maxWaitBlocks: expired, every backrun cancelled, every nonce used, nothing reverts", async () => {
    const COUNT = 12;
    const { k, logs } = await setup(COUNT, { mode: "backrun", maxWaitBlocks: 2 });
    const signer = k.addresses[0] as Address;
    const client = (net as DevnetFixture).ex.publicClient;
    const before = await nonceWhole(signer);
    const startBlock = await client.getBlockNumber({ cacheTime: 0 });
    const update = await sendUpdate("2375");
    await until("all sent behind the pending update", () => positionsSent(logs) === COUNT, 20_000);
    const sent = logs.events("liquidation_sent");
    const attempts = sent.length;
    expect(sent.every((l) => l.afterUpdate === update)).toBe(true);
    // the premise: none of ours fits in a 100,000-gas block, where it would be mined without its update
    expect(sent.map((l) => BigInt(String(l.gas))).every((g) => g > 100_000n)).toBe(true);
    expect((await nonceWhole(signer)).pending).toBe(before.latest + attempts);

    // one head with the update still pending, ticked (the update judged there) and the executor idle: waiting
    const firstSmall = await minedBlock(await ticked(k, net as DevnetFixture, 1, mineSmall));
    expect(firstSmall.txs.map((t) => t.hash)).not.toContain(update);
    expect(liquidatedTraders(firstSmall.receipts)).toHaveLength(0);
    expect(logs.events("oracle_update_gone")).toHaveLength(0);
    expect(logs.events("liquidation_cancelling")).toHaveLength(0);

    await mineSmall(); // the second: past maxWaitBlocks
    const secondSmall = await minedBlock();
    expect(secondSmall.txs.map((t) => t.hash)).not.toContain(update);
    await until("expired", () => logs.events("oracle_update_gone").length === 1, 10_000);
    expect(logs.events("oracle_update_gone")[0]).toMatchObject({ txHash: update, reason: "expired", mode: "backrun" });
    await until("every backrun cancelled", () => logs.events("liquidation_cancelling").length === attempts, 10_000);
    const cancelledNonces = logs.events("liquidation_cancelling").map((l) => Number(l.nonce));
    expect(new Set(cancelledNonces)).toEqual(new Set(sent.map((l) => Number(l.nonce))));
    // the update is still in the pool: it was given up on, not dropped
    const pendingUpdate = await client.getTransaction({ hash: update });
    expect(pendingUpdate.blockNumber).toBeNull();

    // the gas limit restored: the cancels and the update are mined; the normal path liquidates at its block
    await rpc("evm_mine");
    const landing = await minedBlock();
    expect(landing.txs.map((t) => t.hash)).toContain(update);
    await headSeen(k); // the keeper's liquidations at the update's block reach the pool
    // then the normal path liquidates, within a few blocks
    for (let i = 0; i < 4 && k.executor.stats.confirmed < COUNT; i++) {
      await rpc("evm_mine");
      await headSeen(k); // ticked, its receipts judged and the executor idle: confirmed counts what this block settled
    }
    await until("confirmed", () => k.executor.stats.confirmed === COUNT, 10_000);
    await until("cancels settled", () => k.executor.stats.cancelled === attempts, 10_000);

    const blocks = await blocksSince(startBlock + 1n);
    const receipts = blocks.flatMap((b) => b.receipts);
    expect(receipts.filter((r) => r.status !== "success")).toEqual([]); // no revert mined
    const updateReceipt = receipts.find((r) => r.transactionHash === update);
    expect(updateReceipt).toBeDefined();
    // no liquidation mined before the update: none in an earlier block, none ahead of it in its own
    for (const r of receipts) {
      if (liquidatedTraders([r]).length === 0) continue;
      const upd = updateReceipt as (typeof receipts)[number];
      const after =
        r.blockNumber > upd.blockNumber ||
        (r.blockNumber === upd.blockNumber && r.transactionIndex > upd.transactionIndex);
      expect(after, `liquidation ${r.transactionHash} after the update`).toBe(true);
    }
    // the positions the cancels freed are planned again in the same pass: all land in the block after the update's
    for (const r of receipts) {
      if (liquidatedTraders([r]).length > 0) expect(r.blockNumber).toBe((updateReceipt?.blockNumber ?? 0n) + 1n);
    }
    // the backruns themselves never mined: each was replaced by its cancel
    const minedHashes = new Set(receipts.map((r) => r.transactionHash));
    expect(sent.filter((l) => minedHashes.has(l.txHash as Hex))).toEqual([]);
    const liquidated = liquidatedTraders(receipts);
    expect(liquidated).toHaveLength(COUNT);
    expect(new Set(liquidated).size).toBe(COUNT);
    // nonces whole, and every nonce the keeper took used by exactly one mined transaction of ours
    const after = await nonceWhole(signer);
    expect(after.latest).toBe(after.pending);
    const mined = blocks.flatMap((b) => b.txs).filter((t) => lower(t.from) === lower(signer));
    const minedNonces = mined.map((t) => t.nonce).sort((a, b) => a - b);
    expect(minedNonces).toEqual(Array.from({ length: after.latest - before.latest }, (_, i) => before.latest + i));
    const taken = new Set(logs.events("liquidation_sent").map((l) => Number(l.nonce)));
    for (const n of taken) expect(minedNonces).toContain(n);
    expect(k.executor.stats.reverted).toBe(0);
  }, 120_000);

  it("backrun with two signers: 40 positions in several batches, all in the update's own block, after it", async () => {
    const COUNT = 40;
    // signers: accounts 1 and 2; traders from account 3 on
    const { k, logs } = await setup(
      COUNT,
      { mode: "backrun" },
      {
        firstTrader: 3,
        privateKeys: [ANVIL_KEYS[1], ANVIL_KEYS[2]],
        keeper: { firstBatchPositions: 4, batchGasLimit: 800_000 },
      },
    );
    const signers = k.addresses.map(lower);
    expect(signers).toHaveLength(2);
    const before = await Promise.all(k.addresses.map((a) => nonceWhole(a)));
    const update = await sendUpdate("2375");
    await until("all 40 sent behind the pending update", () => positionsSent(logs) === COUNT, 30_000);
    const sent = logs.events("liquidation_sent");
    expect(sent.length).toBeGreaterThanOrEqual(3); // several batches
    expect(sent.every((l) => l.afterUpdate === update)).toBe(true);
    expect(new Set(sent.map((l) => lower(String(l.signer))))).toEqual(new Set(signers)); // both signers took work
    expect(await rpc("eth_blockNumber")).toBe(`0x${k.watcher.processedBlock.toString(16)}`); // nothing mined yet

    await rpc("evm_mine");
    const { txs, receipts } = await minedBlock();
    expect(txs[0]?.hash).toBe(update); // the update first
    const updateIndex = txs[0]?.transactionIndex ?? 0;
    const ours = txs.filter((t) => signers.includes(lower(t.from)));
    expect(ours.length).toBe(txs.length - 1);
    expect(ours.length).toBe(sent.length);
    expect(ours.every((t) => (t.transactionIndex ?? -1) > updateIndex)).toBe(true);
    expect(receipts.every((r) => r.status === "success")).toBe(true); // none reverted
    const liquidated = liquidatedTraders(receipts);
    expect(liquidated).toHaveLength(COUNT);
    expect(new Set(liquidated).size).toBe(COUNT);
    await until("confirmed", () => k.executor.stats.confirmed === COUNT);
    expect(k.executor.updateStats.distance["0"]).toBe(COUNT); // the same block as the update
    expect(k.executor.stats.reverted).toBe(0);
    for (const [i, address] of k.addresses.entries()) {
      const after = await nonceWhole(address);
      expect(after.latest, `${address} latest == pending`).toBe(after.pending);
      const minedBy = ours.filter((t) => lower(t.from) === lower(address)).length;
      expect(minedBy).toBeGreaterThan(0);
      expect(after.latest - (before[i] as { latest: number }).latest).toBe(minedBy);
    }
  }, 120_000);

  it("dry run with backrun: liquidations prepared on the pending update, logged as a dry run, nothing broadcast", async () => {
    const COUNT = 8;
    const { k, logs } = await setup(COUNT, { mode: "backrun" }, { keeper: { dryRun: true } });
    const signer = k.addresses[0] as Address;
    const before = await nonceWhole(signer);
    const update = await sendUpdate("2375");
    await until("all prepared", () => positionsPrepared(logs) === COUNT, 20_000);
    const prepared = logs.events("liquidation_prepared");
    expect(prepared.every((l) => l.dryRun === true && l.update === update && l.mode === "backrun")).toBe(true);
    expect(logs.events("oracle_update_pending")[0]).toMatchObject({ txHash: update, mode: "backrun" });
    await settled(k); // the preparation is over: a backrun it signed would be broadcast by now
    expect(positionsSent(logs)).toBe(0);
    expect(await nonceWhole(signer)).toEqual(before);

    await rpc("evm_mine"); // the update's block
    const landing = await minedBlock();
    expect(landing.txs.map((t) => t.hash)).toEqual([update]);
    await headSeen(k);
    // the normal path at the update's block: a dry run too
    await until("dry run at the mined block", () => logs.events("liquidation_dry_run").length > 0, 10_000);
    await rpc("evm_mine");
    const next = await minedBlock();
    await headSeen(k); // ticked, the executor idle: a liquidation it planned at this head would be in the pool
    expect(next.txs.filter((t) => lower(t.from) === lower(signer))).toEqual([]);
    expect(liquidatedTraders([...landing.receipts, ...next.receipts])).toHaveLength(0);
    expect(positionsSent(logs)).toBe(0);
    expect(k.executor.stats.sent).toBe(0);
    expect(await nonceWhole(signer)).toEqual(before);
    expect(k.book.positions.size).toBe(COUNT); // still open on chain
  }, 120_000);

  it("restart while backruns wait on a pending update: nothing reverts, none twice, all liquidated, nonces whole", async () => {
    const COUNT = 10;
    const { k, logs, stateDir } = await setup(COUNT, { mode: "backrun" });
    const ex = (net as DevnetFixture).ex;
    const client = ex.publicClient;
    const signer = k.addresses[0] as Address;
    const traders = ethLongs(COUNT).map((s) => lower(ex.trader(s.trader).account.address));
    const before = await nonceWhole(signer);
    const startBlock = await client.getBlockNumber({ cacheTime: 0 });
    const update = await sendUpdate("2375");
    await until("all sent behind the pending update", () => positionsSent(logs) === COUNT, 20_000);
    const attempts = logs.events("liquidation_sent").length;
    expect((await nonceWhole(signer)).pending).toBe(before.latest + attempts);

    await k.stop("restart");
    keeper = undefined;
    expect(logs.events("keeper_stopped")[0]).toMatchObject({ pendingInJournal: attempts });
    // still pending, the update and ours
    expect((await client.getTransaction({ hash: update })).blockNumber).toBeNull();
    expect(await nonceWhole(signer)).toEqual({ latest: before.latest, pending: before.latest + attempts });

    const second = await launch(COUNT, { mode: "backrun" }, { keeper: { stateDir } });
    await until("journal recovered", () => second.logs.events("executor_recovered").length > 0, 10_000);
    expect(second.logs.events("executor_recovered")[0]).toMatchObject({
      signer,
      journaled: attempts,
      tracked: attempts,
      abandoned: 0,
    });
    // whatever it decides at its first head (the doc: the price has not moved, so it cancels), it has decided once
    // that head is ticked and its executor idle: what it sent is in the pool before the next block is mined
    await headSeen(second.k);

    // the update is mined; then blocks until every position is closed (a few at most)
    for (let i = 0; i < 5; i++) {
      await rpc("evm_mine");
      await headSeen(second.k); // ticked, the executor idle: its liquidations at this head are in the pool
      const open = (await Promise.all(traders.map((t) => ex.position(t as Address, ETH)))).filter(
        (p) => p.size !== 0n,
      ).length;
      if (open === 0 && i > 0) break;
    }

    const blocks = await blocksSince(startBlock + 1n);
    const receipts = blocks.flatMap((b) => b.receipts);
    expect(receipts.some((r) => r.transactionHash === update)).toBe(true);
    expect(receipts.filter((r) => r.status !== "success")).toEqual([]); // no revert mined
    // every position (all below maintenance at 2375) liquidated, each exactly once
    const liquidated = liquidatedTraders(receipts);
    expect([...liquidated].sort()).toEqual([...traders].sort());
    const open = (await Promise.all(traders.map((t) => ex.position(t as Address, ETH)))).filter((p) => p.size !== 0n);
    expect(open).toHaveLength(0);
    // nonces whole; every mined nonce of ours used once, from where the first keeper started
    await until("nonces whole", async () => {
      const n = await nonceWhole(signer);
      return n.latest === n.pending;
    });
    const after = await nonceWhole(signer);
    const minedNonces = blocks
      .flatMap((b) => b.txs)
      .filter((t) => lower(t.from) === lower(signer))
      .map((t) => t.nonce)
      .sort((a, b) => a - b);
    expect(minedNonces).toEqual(Array.from({ length: after.latest - before.latest }, (_, i) => before.latest + i));
    expect(second.k.executor.stats.reverted).toBe(0);
  }, 120_000);
  it("auto: a node without eth_simulateV1 gets eth_call with a state override, and backrun still lands in the block", async () => {
    net = await startDevnet({ accounts: 16 });
    await openPositions(net.ex, ethLongs(10));
    await rpc("evm_setAutomine", [false]);
    let refused = 0;
    proxy = await startRpcProxy(net.anvil.rpcUrl, async (body) => {
      const call = JSON.parse(body) as { id?: number; method?: string } | unknown[];
      if (Array.isArray(call) || call.method !== "eth_simulateV1") return undefined;
      refused++;
      return {
        status: 200,
        text: JSON.stringify({ jsonrpc: "2.0", id: call.id, error: { code: -32601, message: "method not found" } }),
      };
    });
    const { k, logs } = await launch(10, { mode: "backrun" }, { rpcUrl: proxy.url });
    expect(refused).toBeGreaterThan(0); // the probe asked, and was refused
    expect(logs.events("keeper_started")[0]?.precompute).toMatchObject({
      mode: "backrun",
      simulation: "stateOverride",
    });
    const update = await sendUpdate("2375");
    await until("sent", () => positionsSent(logs) === 10, 20_000);
    await rpc("evm_mine");
    const { txs, receipts } = await minedBlock();
    expect(txs[0]?.hash).toBe(update);
    expect(receipts.every((r) => r.status === "success")).toBe(true);
    expect(liquidatedTraders(receipts)).toHaveLength(10);
    await until("confirmed", () => k.executor.stats.confirmed === 10);
  }, 120_000);
});
