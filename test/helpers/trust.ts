/**
 * The endpoint-trust fault suite's run (test/e2e/endpoint-trust*.test.ts): one Anvil mining a block every 200 ms by
 * hand (automine off: a transaction waits in the pool for the next block, as on a live chain), two fault proxies in
 * front of it, a bad one and an honest one, and a keeper given both (`rpcUrl: "a,b"`) in the order the case says.
 * Traders keep the exchange busy, and the ETH price drops so that 20x longs become liquidatable.
 *
 * `verdict()` gathers what every case ends with, so that a case reports all of its failures at once (expect.soft):
 * the book equal to the chain field by field, the events applied equal to the chain's, no position targeted by two of
 * our mined transactions, no fatal end and heads still processed, the bad endpoint demoted and logged, and the
 * keeper at the head within 5 s of the fault ending.
 */
import { type Address, decodeFunctionData, type Hex } from "viem";
import { expect } from "vitest";
import { perpEngineAbi } from "../../abi/PerpEngine.ts";
import type { RunningKeeper } from "../../src/app.ts";
import { redactUrl } from "../../src/config/load.ts";
import { ETH, openPositions } from "../../src/devnet/positions.ts";
import { positionKey } from "../../src/protocol/perpEngine/book.ts";
import { type DevnetFixture, ethLongs, shutdown, startDevnet, startTestKeeper } from "./devnet.ts";
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
} from "./faultProxy.ts";
import type { CapturedLog } from "./logs.ts";

export const BLOCK_MS = 200;
/** Traders who act (open, add margin, halve, close) through every case. */
export const TRADERS = [2, 3, 4, 5, 6, 7, 8, 9];
/** 20x ETH longs opened before the keeper starts (history for the backfill), and during the fault. */
export const EARLY_LONGS = [10, 11];
export const LATE_LONGS = [12, 13, 14];
export const ALL_TRADERS = [...TRADERS, ...EARLY_LONGS, ...LATE_LONGS];
export const MARKETS = [0, 1];
/**
 * Processing again within 5 s of the fault ending, plus one poll interval and one follow step's round trips on this
 * loaded two-core machine.
 */
export const RECOVERY_LIMIT_MS = 5_000 + 300;

export interface TrustRun {
  readonly net: DevnetFixture;
  readonly bad: FaultProxy;
  readonly honest: FaultProxy;
  readonly keeper: RunningKeeper;
  readonly logs: CapturedLog;
  readonly trail: EventTrail;
  readonly traders: Traders;
  /** The block the keeper started at: our transactions are looked for above it. */
  readonly startBlock: bigint;
  /** The bad endpoint is listed first. */
  readonly badFirst: boolean;
  /** What keeper.done rejected with (undefined: it has not). */
  failure(): unknown;
  head(): Promise<bigint>;
  stop(): Promise<void>;
}

export interface TrustRunOptions {
  /** The bad endpoint listed first (else the honest one). */
  readonly badFirst: boolean;
  /** A fault on the bad endpoint from before the keeper starts. */
  readonly initialFault?: { readonly fault: HttpFault; readonly scope?: FaultScope };
  readonly keeperConfig?: Record<string, unknown>;
}

const rpc = (url: string, method: string, params: unknown[] = []) =>
  fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
  });

export async function startTrustRun(o: TrustRunOptions): Promise<TrustRun> {
  const net = await startDevnet({ accounts: 16 });
  const proxies: FaultProxy[] = [];
  let miner: ReturnType<typeof setInterval> | undefined;
  let keeper: RunningKeeper | undefined;
  const stop = async () => {
    if (miner) clearInterval(miner);
    try {
      await shutdown(keeper, net);
    } finally {
      for (const p of proxies) await p.close();
    }
  };
  try {
    const traders = new Traders(net.ex, TRADERS);
    await traders.fund();
    // history for the backfill: the traders' first positions and two 20x longs
    await openPositions(net.ex, ethLongs(EARLY_LONGS.length, EARLY_LONGS[0]));
    await traders.next(TRADERS.length);
    // from now on a block every BLOCK_MS, transactions waiting in the pool for it
    await rpc(net.anvil.rpcUrl, "evm_setAutomine", [false]);
    miner = setInterval(() => {
      rpc(net.anvil.rpcUrl, "evm_mine").catch(() => {});
    }, BLOCK_MS);
    const bad = await startFaultProxy(net.anvil.rpcUrl);
    proxies.push(bad);
    const honest = await startFaultProxy(net.anvil.rpcUrl);
    proxies.push(honest);
    // the honest endpoint answers 15 ms late: ranked by latency, the bad one comes first whatever the order listed,
    // so that its wrong answers are met (the worst case: the load balancer's quickest backend is the wrong one)
    await honest.set({ kind: "delay", ms: 15 });
    if (o.initialFault) await bad.set(o.initialFault.fault, o.initialFault.scope);
    const head = () => net.ex.publicClient.getBlockNumber({ cacheTime: 0 });
    const startBlock = await head();
    const ordered = o.badFirst ? [bad, honest] : [honest, bad];
    const started = await startTestKeeper(
      net,
      { pollIntervalMs: 100, rpcTimeoutMs: 2000, rpcRankIntervalMs: 2000, headStallSeconds: 5, ...o.keeperConfig },
      undefined,
      { rpcUrl: ordered.map((p) => p.url).join(",") },
    );
    keeper = started.keeper;
    const trail = trackEvents(keeper);
    let failed: unknown;
    keeper.done.catch((error: unknown) => {
      failed = error ?? new Error("keeper.done rejected");
    });
    return {
      net,
      bad,
      honest,
      keeper,
      logs: started.logs,
      trail,
      traders,
      startBlock,
      badFirst: o.badFirst,
      failure: () => failed,
      head,
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Throws at once when the keeper has ended on an error: nothing to wait for. */
export function alive(run: TrustRun): true {
  const failed = run.failure();
  if (failed !== undefined) throw new Error(`the keeper stopped with ${String(failed)}`);
  return true;
}

/** Milliseconds until `check` holds, or the error that says it did not (never throws). */
export async function settle(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  from?: number,
): Promise<number | Error> {
  return msUntil(what, check, timeoutMs, from).catch((error: unknown) => error as Error);
}

/** Whether the keeper has processed and ticked block `target`. */
export function atBlock(run: TrustRun, target: bigint): boolean {
  const w = run.keeper.watcher;
  return alive(run) && w.processedBlock >= target && (w.latestTick?.blockNumber ?? 0n) >= target;
}

/** Traders act and the ETH price drops 6%: the 20x longs (early and LATE_LONGS, opened now) become liquidatable. */
export async function tradeAndDrop(run: TrustRun): Promise<{ dropBlock: bigint; lastBlock: bigint }> {
  const { ex } = run.net;
  await run.traders.next(3);
  await openPositions(ex, ethLongs(LATE_LONGS.length, LATE_LONGS[0]));
  const price = await ex.price(ETH);
  const hash = await ex.setPrice(ETH, (price * 94n) / 100n);
  const dropBlock = (await ex.publicClient.getTransactionReceipt({ hash })).blockNumber;
  const last = await run.traders.next(3);
  return { dropBlock, lastBlock: last.reduce((a, b) => (a > b ? a : b), dropBlock) };
}

/** The positions open and liquidatable on chain now. */
export async function liquidatableOnChain(run: TrustRun): Promise<string[]> {
  const { ex } = run.net;
  const pairs = ALL_TRADERS.flatMap((t) => MARKETS.map((m) => ({ trader: ex.trader(t).account.address, m })));
  const flags = await Promise.all(pairs.map((p) => ex.isLiquidatable(p.trader, p.m)));
  return pairs.filter((_, i) => flags[i]).map((p) => positionKey(p.m, p.trader));
}

/** Our signers' mined transactions above `from`, and the positions each targeted (liquidate, liquidateMany). */
export async function ourLiquidations(
  run: TrustRun,
  from: bigint,
  to: bigint,
): Promise<{ block: bigint; hash: Hex; targets: string[] }[]> {
  const ours = new Set(run.keeper.addresses.map((a) => a.toLowerCase()));
  const engine = run.net.ex.d.engine.toLowerCase();
  const numbers = Array.from({ length: Number(to - from) }, (_, i) => from + 1n + BigInt(i));
  const blocks = await Promise.all(
    numbers.map((blockNumber) => run.net.ex.publicClient.getBlock({ blockNumber, includeTransactions: true })),
  );
  const sent: { block: bigint; hash: Hex; targets: string[] }[] = [];
  for (const b of blocks) {
    for (const tx of b.transactions) {
      if (!ours.has(tx.from.toLowerCase()) || tx.to?.toLowerCase() !== engine) continue;
      const call = decodeFunctionData({ abi: perpEngineAbi, data: tx.input });
      let targets: string[] = [];
      if (call.functionName === "liquidate") {
        const [trader, market] = call.args as readonly [Address, bigint];
        targets = [positionKey(Number(market), trader)];
      } else if (call.functionName === "liquidateMany") {
        const [traders, markets] = call.args as readonly [readonly Address[], readonly bigint[]];
        targets = traders.map((t, i) => positionKey(Number(markets[i]), t));
      } else targets = [`(${call.functionName})`];
      sent.push({ block: b.number, hash: tx.hash, targets });
    }
  }
  return sent;
}

export interface Verdict {
  /** The event that says the bad endpoint was set aside: rpc_endpoint_demoted, or rpc_endpoint_lagging. */
  readonly demotedEvent: "rpc_endpoint_demoted" | "rpc_endpoint_lagging";
  /** When the fault was cleared (performance.now()), and the chain's head then. */
  readonly clearedAt: number;
  readonly headAtClear: bigint;
  /** Faulted requests of the bad proxy before the fault was set: its hits are counted from there. */
  readonly faultedBefore: number;
}

/**
 * What every case ends with, each as a soft expectation (the case reports every failure, not the first):
 * - processing again within 5 s of the fault ending (the keeper's tick at the head of the clear);
 * - no fatal end (keeper.done has not rejected) and heads still processed;
 * - no liquidatable position left, once the keeper is idle at the head;
 * - the book equal to the chain field by field, and the events applied equal to the chain's;
 * - no position targeted by two of our mined transactions;
 * - the bad endpoint demoted and logged, naming it (the case is void unless it answered wrongly at least once).
 */
export async function verdict(run: TrustRun, v: Verdict): Promise<void> {
  const k = run.keeper;
  const recovery = await settle(
    `the keeper's tick at block ${v.headAtClear} after the fault ended`,
    () => atBlock(run, v.headAtClear),
    15_000,
    v.clearedAt,
  );
  const hits = run.bad.stats.faulted - v.faultedBefore;
  // trading is over; the keeper liquidates what is left and settles its transactions
  const idle = await settle(
    "no liquidatable position left and nothing pending",
    async () => alive(run) && k.executor.pendingAttempts.length === 0 && (await liquidatableOnChain(run)).length === 0,
    15_000,
  );
  const at = await run.head();
  const caughtUp = await settle(`the keeper at block ${at}`, () => atBlock(run, at), 10_000);
  const processed = k.watcher.processedBlock;
  const { mismatches } = await bookVersusChain(k, run.net.ex, ALL_TRADERS, MARKETS);
  const applied = appliedRefs(run.trail, processed);
  const canonical = await canonicalRefs(run.net.ex, processed);
  const sent = await ourLiquidations(run, run.startBlock, at);
  const perPosition = new Map<string, string[]>();
  for (const s of sent) for (const t of s.targets) perPosition.set(t, [...(perPosition.get(t) ?? []), s.hash]);
  const twice = [...perPosition].filter(([, hashes]) => hashes.length > 1).map(([key, h]) => `${key}: ${h.length}`);
  // still processing heads: the next blocks are ticked
  const later = (await run.head()) + 3n;
  const still = await settle(`the keeper still ticking (block ${later})`, () => atBlock(run, later), 10_000);
  const endpoint = redactUrl(run.bad.url);
  const demoted = run.logs.events(v.demotedEvent);

  console.info(
    `trust: bad ${run.badFirst ? "first" : "second"}: ${hits} wrong answers met, ${
      demoted.filter((e) => e.endpoint === endpoint).length
    } ${v.demotedEvent} ${JSON.stringify(demoted.map((d) => [d.reason, d.detail]))}, recovered in ${typeof recovery === "number" ? `${recovery} ms` : "never"}, ${
      sent.length
    } liquidation transactions, ${twice.length} positions sent twice, ${mismatches.length} book mismatches`,
  );
  expect.soft(run.failure(), "keeper.done rejected: a fatal end (exit 2)").toBeUndefined();
  expect.soft(recovery, "processing again within 5 s of the fault ending").not.toBeInstanceOf(Error);
  if (typeof recovery === "number")
    expect.soft(recovery, `recovered in ${recovery} ms`).toBeLessThan(RECOVERY_LIMIT_MS);
  expect.soft(idle, "every liquidatable position liquidated, nothing left pending").not.toBeInstanceOf(Error);
  expect.soft(caughtUp, "the keeper at the chain's head at the end").not.toBeInstanceOf(Error);
  expect.soft(still, "the keeper still processing heads").not.toBeInstanceOf(Error);
  expect.soft(mismatches, "the book against the chain, field by field").toEqual([]);
  expect.soft(applied, "the events applied are the chain's, each once, in order").toEqual(canonical);
  expect.soft(run.trail.replays, "events handed to the keeper twice").toEqual([]);
  expect.soft(twice, "positions targeted by more than one of our mined transactions").toEqual([]);
  // the case is void unless the keeper met the bad endpoint's wrong answers; listed second, an endpoint a keeper
  // never needed to ask (a backfill pinned to the first listed one) may go unmet: then there is nothing to demote
  if (run.badFirst) {
    // why an endpoint listed first was not asked: a transport failure or a lagging head put it behind
    const reasons = ["rpc_error", "rpc_endpoint_lagging"].flatMap((e) => run.logs.events(e));
    expect(hits, `requests the bad endpoint answered wrongly (${JSON.stringify(reasons)})`).toBeGreaterThan(0);
  }
  if (hits > 0) {
    expect
      .soft(
        demoted.filter((e) => e.endpoint === endpoint),
        `${v.demotedEvent} naming the bad endpoint ${endpoint} (it answered ${hits} requests wrongly)`,
      )
      .not.toEqual([]);
  }
  expect
    .soft(
      demoted.filter((e) => e.endpoint === redactUrl(run.honest.url)),
      "the honest endpoint never demoted",
    )
    .toEqual([]);
  if (v.demotedEvent === "rpc_endpoint_demoted") {
    for (const e of demoted) expect.soft(typeof e.reason, `${v.demotedEvent} carries a reason`).toBe("string");
  }
}

/** Waits for the keeper's first tick at the chain's head after the backfill; throws when it never comes. */
export async function backfilled(run: TrustRun): Promise<void> {
  const target = await run.head();
  await msUntil("the keeper at the head after its backfill", () => atBlock(run, target), 20_000);
}

/**
 * A fault on the bad endpoint while the keeper follows the chain: traders act and the price drops under it, the
 * keeper is given until every liquidatable position is liquidated (at most 6 s) while it lasts, then it is cleared
 * and the case's verdict taken. Returns the price drop's block and whether the keeper kept up under the fault.
 */
export async function liveFault(
  run: TrustRun,
  fault: HttpFault,
  demotedEvent: Verdict["demotedEvent"],
  scope?: FaultScope,
): Promise<{ dropBlock: bigint; during: number | Error }> {
  await backfilled(run);
  const faultedBefore = run.bad.stats.faulted;
  await run.bad.set(fault, scope);
  const { dropBlock, lastBlock } = await tradeAndDrop(run);
  // an honest endpoint is there: the keeper goes on through it, past the fault's trades, and liquidates
  const during = await settle(
    "the keeper past the trades and every liquidatable position liquidated, under the fault",
    async () => atBlock(run, lastBlock) && (await liquidatableOnChain(run)).length === 0,
    6_000,
  );
  const headAtClear = await run.head();
  run.bad.clear();
  const clearedAt = performance.now();
  await verdict(run, { demotedEvent, clearedAt, headAtClear, faultedBefore });
  expect.soft(during, "kept up through the honest endpoint while the fault was on").not.toBeInstanceOf(Error);
  return { dropBlock, during };
}

/** The two orders every case runs in: the bad endpoint listed first, and second. */
export const ORDERS = [
  { order: "the bad endpoint listed first", badFirst: true },
  { order: "the honest endpoint listed first", badFirst: false },
] as const;

/** Runs `body` on a fresh TrustRun, stopped whatever happens. */
export async function withRun(o: TrustRunOptions, body: (run: TrustRun) => Promise<void>): Promise<void> {
  const run = await startTrustRun(o);
  try {
    await body(run);
  } finally {
    await run.stop();
  }
}
