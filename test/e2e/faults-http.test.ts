/**
 * HTTP faults between the keeper and its node, one at a time, through test/helpers/faultProxy.ts: 429, 5xx, bodies
 * that are not JSON, bodies cut in half, connections dropped, answers late (under and past the RPC timeout), and a
 * frozen head. Positions open, change and close while each fault is on and after it. Each case asserts that the
 * fault hit, that no event was missed or applied twice (the events applied are exactly the chain's, in order), that
 * the book equals PerpEngine.getPosition field by field, and that the keeper processes the head again within 5 s of
 * the fault ending; the frozen head is reported once (head_stalled) and its end too (head_resumed).
 *
 * One Anvil for the file, automining the test's transactions and mining an empty block every 250 ms besides, so
 * that the chain moves on during a fault as a live one would.
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
  type FaultScope,
  type HttpFault,
  msUntil,
  startFaultProxy,
  Traders,
  trackEvents,
} from "../helpers/faultProxy.ts";
import type { CapturedLog } from "../helpers/logs.ts";
import { until } from "../helpers/wait.ts";

const POLL_MS = 100;
const RPC_TIMEOUT_MS = 1000;
/**
 * Processing again within 5 s of the fault ending, plus one poll interval and one follow step's round trips (the
 * head, then its logs and oracles) on this loaded two-core machine.
 */
const RECOVERY_LIMIT_MS = 5_000 + POLL_MS + 200;
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
const measured: { fault: string; hits: number; recoveryMs: number }[] = [];

const head = () => net.ex.publicClient.getBlockNumber({ cacheTime: 0 });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Throws at once when the keeper has stopped on an error: nothing to wait for. */
function alive(): true {
  if (keeperFailed !== undefined) throw new Error(`the keeper stopped with ${String(keeperFailed)}`);
  return true;
}

/** Waits until the keeper has processed (and ticked) the chain's current head. */
async function settled(k: RunningKeeper): Promise<bigint> {
  const target = await head();
  await until(
    "the keeper at the head",
    () => alive() && k.watcher.processedBlock >= target && (k.watcher.latestTick?.blockNumber ?? 0n) >= target,
    15_000,
  );
  return k.watcher.processedBlock;
}

beforeAll(async () => {
  net = await startDevnet({ accounts: 12 });
  traders = new Traders(net.ex, TRADERS);
  await traders.fund();
  // history for the backfill: two positions before the keeper starts
  await openPositions(net.ex, [
    { trader: 10, marketId: ETH, side: "long", margin: "300", leverage: 5 },
    { trader: 11, marketId: ETH, side: "short", margin: "300", leverage: 5 },
  ]);
  proxy = await startFaultProxy(net.anvil.rpcUrl);
  ({ keeper, logs } = await startTestKeeper(
    net,
    { pollIntervalMs: POLL_MS, headStallSeconds: 2, rpcTimeoutMs: RPC_TIMEOUT_MS },
    undefined,
    { rpcUrl: proxy.url },
  ));
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
}, 60_000);

afterAll(async () => {
  if (miner) clearInterval(miner);
  console.info(
    `faults-http recovery: ${measured.map((m) => `${m.fault} ${m.recoveryMs} ms (${m.hits} hit)`).join(", ")}`,
  );
  try {
    await shutdown(keeper, net);
  } finally {
    await proxy?.close();
  }
});

interface Case {
  readonly name: string;
  readonly fault: HttpFault;
  readonly scope?: FaultScope;
  /** How long the fault stays on. */
  readonly holdMs: number;
  /** Whether the keeper can process nothing while it is on (every answer refused); false: it is only slower. */
  readonly stalls: boolean;
}

const CASES: readonly Case[] = [
  // viem honours Retry-After (1 s) between its two retries: held until a follow step has failed as a whole
  { name: "HTTP 429 with Retry-After: 1", fault: { kind: "429" }, holdMs: 3000, stalls: true },
  { name: "HTTP 503 pages", fault: { kind: "5xx", status: 503 }, holdMs: 1500, stalls: true },
  {
    name: "HTTP 500 on every request with eth_getLogs",
    fault: { kind: "5xx", status: 500 },
    scope: { methods: ["eth_getLogs"] },
    holdMs: 1500,
    stalls: true,
  },
  // long enough for the follow step's backoff to reach its 5 s cap: the worst case of "within 5 s"
  { name: "a 9 s outage of HTTP 502", fault: { kind: "5xx", status: 502 }, holdMs: 9000, stalls: true },
  { name: "bodies that are not JSON", fault: { kind: "garbage" }, holdMs: 1500, stalls: true },
  { name: "answers cut in half", fault: { kind: "truncated" }, holdMs: 1500, stalls: true },
  { name: "connections dropped unanswered", fault: { kind: "drop" }, holdMs: 1500, stalls: true },
  {
    name: "answers 1.5 s late, past the 1 s RPC timeout",
    fault: { kind: "delay", ms: 1500 },
    // three attempts of 1 s each and viem's retry delays: a follow step fails as a whole after about 3.5 s
    holdMs: 4000,
    stalls: true,
  },
  { name: "answers 300 ms late, under the timeout", fault: { kind: "delay", ms: 300 }, holdMs: 1500, stalls: false },
  {
    name: "every second request cut in half",
    fault: { kind: "truncated" },
    scope: { every: 2 },
    holdMs: 1500,
    stalls: false,
  },
];

/** One fault case: on, trades under it, off, trades after; then every check. */
async function runCase(c: Case): Promise<void> {
  const k = keeper as RunningKeeper;
  await settled(k);
  const before = {
    faulted: proxy.stats.faulted,
    rpcErrors: logs.events("rpc_error").length,
    stalled: logs.events("head_stalled").length,
    resumed: logs.events("head_resumed").length,
    processed: k.watcher.processedBlock,
  };
  await proxy.set(c.fault, c.scope);
  const setAt = performance.now();
  const during = await traders.next(3);
  await sleep(c.holdMs - (performance.now() - setAt));
  const headAtClear = await head();
  const processedAtClear = k.watcher.processedBlock;
  proxy.clear();
  const clearedAt = performance.now();
  const recoveryMs = await msUntil(
    `the keeper to process block ${headAtClear} after the fault ended`,
    () => alive() && k.watcher.processedBlock >= headAtClear,
    15_000,
    clearedAt,
  );
  const hits = proxy.stats.faulted - before.faulted;
  measured.push({ fault: c.name, hits, recoveryMs });
  await traders.next(2);
  const at = await settled(k);

  expect(hits, "requests the fault hit").toBeGreaterThan(0);
  if (c.stalls) {
    // the blocks of the trades made under the fault were processed only after it
    expect(processedAtClear).toBeLessThan(during.reduce((a, b) => (a < b ? a : b)));
    expect(logs.events("rpc_error").length).toBeGreaterThan(before.rpcErrors);
  } else {
    expect(processedAtClear, "processing went on under the fault").toBeGreaterThan(before.processed);
  }
  expect(recoveryMs, `processing again ${recoveryMs} ms after the fault ended`).toBeLessThan(RECOVERY_LIMIT_MS);
  expect(trail.replays, "events handed to the keeper twice").toEqual([]);
  expect(appliedRefs(trail, at), "the events applied are the chain's, each once, in order").toEqual(
    await canonicalRefs(net.ex, at),
  );
  const { mismatches, openOnChain } = await bookVersusChain(k, net.ex, [...TRADERS, 10, 11], MARKETS);
  expect(mismatches).toEqual([]);
  expect(k.book.positions.size).toBe(openOnChain.length);
  expect(k.risk.index.size).toBe(k.book.positions.size);
  // a stall the fault caused is reported once, and its end
  const stalled = logs.events("head_stalled").length - before.stalled;
  expect(stalled).toBeLessThanOrEqual(1);
  expect(logs.events("head_resumed").length - before.resumed).toBe(stalled);
  expect(keeperFailed).toBeUndefined();
  expect(logs.lines.filter((l) => Number(l.level) >= 50)).toEqual([]);
}

describe("the fault proxy itself", () => {
  it("answers each fault as it says, batches call by call, and forwards again after clear()", async () => {
    const p = await startFaultProxy(net.anvil.rpcUrl);
    try {
      const post = (body: unknown) =>
        fetch(p.url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
      const call = (id: number, method: string, params: unknown[] = []) => ({ jsonrpc: "2.0", id, method, params });
      const batch = [
        call(1, "eth_blockNumber"),
        call(2, "eth_chainId"),
        call(3, "eth_getBlockByNumber", ["latest", false]),
      ];
      await p.set({ kind: "frozenHead" });
      const frozen = p.faults.frozenAt as bigint;
      await net.ex.publicClient.request({ method: "evm_mine" as never, params: [] as never });
      const answers = (await (await post(batch)).json()) as [
        { id: number; result: string },
        { id: number; result: string },
        { id: number; result: { number: string } },
      ];
      expect(answers.map((a) => a.id)).toEqual([1, 2, 3]);
      expect(BigInt(answers[0].result)).toBe(frozen);
      expect(answers[1].result).toBe("0x7a69");
      expect(BigInt(answers[2].result.number)).toBe(frozen);
      expect(frozen).toBeLessThan(await head());
      await p.set({ kind: "429" });
      const limited = await post(call(4, "eth_chainId"));
      expect([limited.status, limited.headers.get("retry-after")]).toEqual([429, "1"]);
      await p.set({ kind: "5xx", status: 502 });
      expect((await post(call(5, "eth_chainId"))).status).toBe(502);
      await p.set({ kind: "garbage" });
      await expect((await post(call(6, "eth_chainId"))).json()).rejects.toThrow();
      await p.set({ kind: "truncated" });
      await expect((await post(batch)).json()).rejects.toThrow();
      await p.set({ kind: "nullResults" });
      expect(await (await post(batch)).json()).toEqual(batch.map((c) => ({ jsonrpc: "2.0", id: c.id, result: null })));
      await p.set({ kind: "drop" });
      await expect(post(call(7, "eth_chainId"))).rejects.toThrow();
      await p.set({ kind: "5xx" }, { methods: ["eth_getLogs"] });
      expect((await post(call(8, "eth_chainId"))).status).toBe(200);
      p.clear();
      expect(BigInt(((await (await post(call(9, "eth_blockNumber"))).json()) as { result: string }).result)).toBe(
        await head(),
      );
      expect(p.stats.faulted).toBe(7);
      expect(p.stats.calls).toBe(3 + 1 + 1 + 1 + 3 + 3 + 1 + 1 + 1);
    } finally {
      await p.close();
    }
  });
});

describe("HTTP faults in front of the node", () => {
  for (const c of CASES) {
    it(`${c.name}: every event once, the book equals the chain, processing again within 5 s`, () => runCase(c), 40_000);
  }

  it("a frozen head: head_stalled once while the chain moves on, head_resumed after, processing again within 5 s", async () => {
    const k = keeper as RunningKeeper;
    await settled(k);
    const before = {
      faulted: proxy.stats.faulted,
      stalled: logs.events("head_stalled").length,
      resumed: logs.events("head_resumed").length,
    };
    await proxy.set({ kind: "frozenHead" });
    const frozenAt = proxy.faults.frozenAt as bigint;
    const setAt = performance.now();
    const during = await traders.next(3);
    // the stall limit is 2 s: held until it is reported, then a little longer (it must not be said twice)
    await until("head_stalled", () => logs.events("head_stalled").length > before.stalled, 6_000);
    await sleep(Math.max(0, 3_500 - (performance.now() - setAt)));
    const headAtClear = await head();
    const processedAtClear = k.watcher.processedBlock;
    const stalledDuring = logs.events("head_stalled").length - before.stalled;
    const resumedDuring = logs.events("head_resumed").length - before.resumed;
    proxy.clear();
    const clearedAt = performance.now();
    const recoveryMs = await msUntil(
      `the keeper to process block ${headAtClear} after the head thawed`,
      () => alive() && k.watcher.processedBlock >= headAtClear,
      15_000,
      clearedAt,
    );
    const hits = proxy.stats.faulted - before.faulted;
    measured.push({ fault: "frozen head", hits, recoveryMs });
    await until("head_resumed", () => logs.events("head_resumed").length > before.resumed, 5_000);
    await traders.next(2);
    const at = await settled(k);

    expect(hits, "head requests answered from the frozen block").toBeGreaterThan(0);
    expect(headAtClear - frozenAt, "the chain moved on under the frozen head").toBeGreaterThan(5n);
    expect(processedAtClear).toBe(frozenAt);
    expect(processedAtClear).toBeLessThan(during.reduce((a, b) => (a < b ? a : b)));
    expect(stalledDuring).toBe(1);
    expect(resumedDuring).toBe(0);
    const stall = logs.events("head_stalled").at(-1);
    expect(BigInt(stall?.lastBlock as string)).toBe(frozenAt);
    expect(Number(stall?.limitMs)).toBe(2000);
    expect(logs.events("head_stalled").length - before.stalled).toBe(1);
    expect(logs.events("head_resumed").length - before.resumed).toBe(1);
    expect(recoveryMs, `processing again ${recoveryMs} ms after the head thawed`).toBeLessThan(RECOVERY_LIMIT_MS);
    expect(trail.replays).toEqual([]);
    expect(appliedRefs(trail, at)).toEqual(await canonicalRefs(net.ex, at));
    const { mismatches, openOnChain } = await bookVersusChain(k, net.ex, [...TRADERS, 10, 11], MARKETS);
    expect(mismatches).toEqual([]);
    expect(k.book.positions.size).toBe(openOnChain.length);
    expect(keeperFailed).toBeUndefined();
  }, 40_000);

  // last: it ends the keeper at the time of writing (a TypeError from viem's log formatter is taken as deterministic)
  it(
    "well-formed answers whose results are null, on every request with eth_getLogs: taken as a fault, retried",
    () =>
      runCase({
        name: "null results",
        fault: { kind: "nullResults" },
        scope: { methods: ["eth_getLogs"] },
        holdMs: 1500,
        stalls: true,
      }),
    40_000,
  );

  it("never rebuilt nor rolled back: the faults looked like nothing but faults", () => {
    expect(trail.resets).toBe(0);
    expect(trail.rollbacks).toBe(0);
    expect(logs.events("reorg_detected")).toEqual([]);
    expect(logs.events("backfill_started")).toHaveLength(1);
    expect(trail.positionChanges).toBeGreaterThan(CASES.length * 5);
  });
});
