/**
 * WebSocket faults between the keeper's head subscription and its node, through test/helpers/faultProxy.ts: every
 * connection cut while blocks with events are being mined, notifications dropped, notifications late, and new
 * connections refused for a while after a cut. Each case asserts that the fault hit, that every event was recovered
 * once and in order, that the book equals PerpEngine.getPosition field by field, that the subscription came back
 * (a new connection, a new eth_subscribe, notifications flowing), and that the keeper processes the head again
 * within 5 s of the fault ending.
 *
 * The keeper polls every 20 s, so that only its subscription can bring it back that fast: what is tested is the
 * WebSocket path, not the polling fallback. HTTP goes through the same proxy, unfaulted. One Anvil for the file,
 * automining the test's transactions and mining an empty block every 250 ms besides.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningKeeper } from "../../src/app.ts";
import { ETH, openPositions } from "../../src/devnet/positions.ts";
import { type DevnetFixture, shutdown, startDevnet, startTestKeeper } from "../helpers/devnet.ts";
import {
  appliedRefs,
  bookVersusChain,
  canonicalRefs,
  type EventTrail,
  type FaultProxy,
  msUntil,
  startFaultProxy,
  Traders,
  trackEvents,
} from "../helpers/faultProxy.ts";
import type { CapturedLog } from "../helpers/logs.ts";
import { until } from "../helpers/wait.ts";

const POLL_MS = 20_000;
/** viem's WebSocket transport waits 2 s before it reconnects: well inside the 5 s. Slack: one block (250 ms). */
const RECOVERY_LIMIT_MS = 5_000 + 250;
const TRADERS = [2, 3, 4, 5, 6, 7, 8, 9];
const MARKETS = [0, 1];

let net: DevnetFixture;
let proxy: FaultProxy;
let keeper: RunningKeeper | undefined;
let logs: CapturedLog;
let trail: EventTrail;
let traders: Traders;
let miner: ReturnType<typeof setInterval> | undefined;
let keeperFailed: unknown;
const measured: { fault: string; recoveryMs: number }[] = [];

const head = () => net.ex.publicClient.getBlockNumber({ cacheTime: 0 });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Throws at once when the keeper has stopped on an error: nothing to wait for. */
function alive(): true {
  if (keeperFailed !== undefined) throw new Error(`the keeper stopped with ${String(keeperFailed)}`);
  return true;
}

async function settled(k: RunningKeeper, timeoutMs = 10_000): Promise<bigint> {
  const target = await head();
  await until(
    "the keeper at the head",
    () => alive() && k.watcher.processedBlock >= target && (k.watcher.latestTick?.blockNumber ?? 0n) >= target,
    timeoutMs,
  );
  return k.watcher.processedBlock;
}

/** Notifications are reaching the keeper: a few arrive within a second (a block comes every 250 ms). */
async function subscriptionLive(): Promise<void> {
  const seen = proxy.stats.wsNotifications;
  await until("head notifications", () => proxy.stats.wsNotifications >= seen + 2, 3_000);
}

async function expectRecovered(k: RunningKeeper): Promise<void> {
  await traders.next(2);
  const at = await settled(k);
  expect(trail.replays, "events handed to the keeper twice").toEqual([]);
  expect(appliedRefs(trail, at), "the events applied are the chain's, each once, in order").toEqual(
    await canonicalRefs(net.ex, at),
  );
  const { mismatches, openOnChain } = await bookVersusChain(k, net.ex, [...TRADERS, 10, 11], MARKETS);
  expect(mismatches).toEqual([]);
  expect(k.book.positions.size).toBe(openOnChain.length);
  expect(k.risk.index.size).toBe(k.book.positions.size);
  expect(keeperFailed).toBeUndefined();
  expect(logs.lines.filter((l) => Number(l.level) >= 50)).toEqual([]);
}

beforeAll(async () => {
  net = await startDevnet({ accounts: 12 });
  traders = new Traders(net.ex, TRADERS);
  await traders.fund();
  await openPositions(net.ex, [
    { trader: 10, marketId: ETH, side: "long", margin: "300", leverage: 5 },
    { trader: 11, marketId: ETH, side: "short", margin: "300", leverage: 5 },
  ]);
  proxy = await startFaultProxy(net.anvil.rpcUrl);
  ({ keeper, logs } = await startTestKeeper(net, { pollIntervalMs: POLL_MS }, undefined, {
    rpcUrl: proxy.url,
    wsUrl: proxy.wsUrl,
  }));
  trail = trackEvents(keeper);
  keeper.done.catch((error: unknown) => {
    keeperFailed = error;
  });
  const rpc = net.anvil.rpcUrl;
  miner = setInterval(() => {
    fetch(rpc, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "evm_mine", params: [] }),
    }).catch(() => {});
  }, 250);
  const k = keeper;
  await until("backfill", () => k.book.positions.size === 2 && k.watcher.latestTick !== undefined, 20_000);
  await until("subscribed", () => proxy.stats.wsSubscribes === 1, 10_000);
  await subscriptionLive();
  await settled(k);
}, 60_000);

afterAll(async () => {
  if (miner) clearInterval(miner);
  console.info(`faults-ws recovery: ${measured.map((m) => `${m.fault} ${m.recoveryMs} ms`).join(", ")}`);
  try {
    await shutdown(keeper, net);
  } finally {
    await proxy?.close();
  }
});

describe("WebSocket faults in front of the node", () => {
  it("every connection cut mid-stream: reconnected and resubscribed, every event recovered, processing again within 5 s", async () => {
    const k = keeper as RunningKeeper;
    await subscriptionLive();
    const before = { connections: proxy.stats.wsConnections, subscribes: proxy.stats.wsSubscribes };
    // a stream of trades, one block after another; the cut comes after the third
    let cutAt = 0;
    let headAtCut = 0n;
    const blocks: bigint[] = [];
    for (let i = 0; i < 8; i++) {
      blocks.push(...(await traders.next(1)));
      if (i === 2) {
        // the head subscription's connection, and the pool watch's (keeper.bidding) when it is open just then
        expect(proxy.cut()).toBeGreaterThanOrEqual(1);
        cutAt = performance.now();
        headAtCut = await head();
      }
    }
    const recoveryMs = await msUntil(
      `the keeper to process block ${headAtCut + 1n} after the cut`,
      () => alive() && k.watcher.processedBlock > headAtCut,
      8_000,
      cutAt,
    );
    measured.push({ fault: "cut mid-stream", recoveryMs });
    const reconnectMs = await msUntil(
      "a new connection and eth_subscribe",
      () => proxy.stats.wsConnections > before.connections && proxy.stats.wsSubscribes > before.subscribes,
      8_000,
      cutAt,
    );
    expect(proxy.stats.wsCut).toBeGreaterThanOrEqual(1);
    expect(reconnectMs, `reconnected ${reconnectMs} ms after the cut`).toBeLessThan(RECOVERY_LIMIT_MS);
    expect(recoveryMs, `processing again ${recoveryMs} ms after the cut`).toBeLessThan(RECOVERY_LIMIT_MS);
    expect(blocks.filter((b) => b > headAtCut).length, "blocks with events after the cut").toBeGreaterThanOrEqual(4);
    await subscriptionLive();
    await expectRecovered(k);
  }, 40_000);

  it("notifications dropped for 2 s while events are mined: every event recovered, processing again within 5 s", async () => {
    const k = keeper as RunningKeeper;
    await subscriptionLive();
    const dropped = proxy.stats.wsDropped;
    await proxy.set({ kind: "wsDrop" });
    const setAt = performance.now();
    const during = await traders.next(3);
    await sleep(2_000 - (performance.now() - setAt));
    const headAtClear = await head();
    const processedAtClear = k.watcher.processedBlock;
    proxy.clear();
    const clearedAt = performance.now();
    const recoveryMs = await msUntil(
      `the keeper to process block ${headAtClear}`,
      () => alive() && k.watcher.processedBlock >= headAtClear,
      8_000,
      clearedAt,
    );
    measured.push({ fault: "notifications dropped", recoveryMs });
    expect(proxy.stats.wsDropped - dropped, "notifications dropped").toBeGreaterThan(3);
    // nothing told the keeper of the blocks mined under the fault (it polls every 20 s)
    expect(processedAtClear).toBeLessThan(during.reduce((a, b) => (a < b ? a : b)));
    expect(recoveryMs, `processing again ${recoveryMs} ms after the fault ended`).toBeLessThan(RECOVERY_LIMIT_MS);
    await expectRecovered(k);
  }, 40_000);

  it("notifications 1 s late for 2 s: every event recovered, in order, processing again within 5 s", async () => {
    const k = keeper as RunningKeeper;
    await subscriptionLive();
    const delayed = proxy.stats.wsDelayed;
    await proxy.set({ kind: "wsDelay", ms: 1_000 });
    const setAt = performance.now();
    await traders.next(3);
    await sleep(2_000 - (performance.now() - setAt));
    const headAtClear = await head();
    proxy.clear();
    const clearedAt = performance.now();
    const recoveryMs = await msUntil(
      `the keeper to process block ${headAtClear}`,
      () => alive() && k.watcher.processedBlock >= headAtClear,
      8_000,
      clearedAt,
    );
    measured.push({ fault: "notifications late", recoveryMs });
    expect(proxy.stats.wsDelayed - delayed, "notifications delayed").toBeGreaterThan(3);
    expect(recoveryMs, `processing again ${recoveryMs} ms after the fault ended`).toBeLessThan(RECOVERY_LIMIT_MS);
    await expectRecovered(k);
  }, 40_000);

  // last: a keeper whose subscription never comes back leaves the file without one
  it("cut, then new connections refused for 3 s: reconnected within 5 s of the refusals ending, every event recovered", async () => {
    const k = keeper as RunningKeeper;
    await subscriptionLive();
    const before = { connections: proxy.stats.wsConnections, subscribes: proxy.stats.wsSubscribes };
    const refused = proxy.stats.wsRefused;
    await proxy.set({ kind: "wsRefuse" });
    // the head subscription's connection, and the pool watch's (keeper.bidding) when it is open just then
    expect(proxy.cut()).toBeGreaterThanOrEqual(1);
    const setAt = performance.now();
    await traders.next(3);
    await sleep(3_000 - (performance.now() - setAt));
    const headAtClear = await head();
    proxy.clear();
    const clearedAt = performance.now();
    const refusedDuring = proxy.stats.wsRefused - refused;
    // measured, not thrown at once, so that the report says both
    const reconnectMs = await msUntil(
      "a new connection and eth_subscribe",
      () => proxy.stats.wsConnections > before.connections && proxy.stats.wsSubscribes > before.subscribes,
      RECOVERY_LIMIT_MS,
      clearedAt,
    ).catch(() => Number.POSITIVE_INFINITY);
    const recoveryMs = await msUntil(
      `the keeper to process block ${headAtClear}`,
      () => alive() && k.watcher.processedBlock >= headAtClear,
      RECOVERY_LIMIT_MS,
      clearedAt,
    ).catch(() => Number.POSITIVE_INFINITY);
    measured.push({ fault: "refused 3 s", recoveryMs });
    expect(refusedDuring, "connection attempts refused").toBeGreaterThan(0);
    expect(
      reconnectMs,
      `reconnected ${reconnectMs} ms after the refusals ended (${proxy.stats.wsRefused} refused, ` +
        `${proxy.stats.wsConnections} accepted in all)`,
    ).toBeLessThan(RECOVERY_LIMIT_MS);
    expect(recoveryMs, `processing again ${recoveryMs} ms after the refusals ended`).toBeLessThan(RECOVERY_LIMIT_MS);
    await subscriptionLive();
    await expectRecovered(k);
  }, 40_000);

  it("never rebuilt nor rolled back", () => {
    expect(trail.resets).toBe(0);
    expect(trail.rollbacks).toBe(0);
    expect(logs.events("reorg_detected")).toEqual([]);
    expect(logs.events("backfill_started")).toHaveLength(1);
  });
});
