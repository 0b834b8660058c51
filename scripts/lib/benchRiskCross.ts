/**
 * `npm run bench:risk -- --book cross`: the cross-margin risk engine (src/risk/cross/) on synthetic books of Perp-v2
 * shaped accounts (LinearModel) over 8 markets, two thirds in one market, the rest in two or four.
 *
 *   npm run bench:risk -- --book cross                       100,000 and 1,000,000 accounts, a table
 *   npm run bench:risk -- --book cross --accounts 200000     choose the sizes (comma-separated)
 *   npm run bench:risk -- --book cross --json                one JSON line, the last line of stdout
 *   BENCH_TRACE=1 npm run bench:risk -- --book cross         also prints every measured tick over 2 ms (stderr)
 *
 * Per size, in one run: build (upsert every account, then the first tick evaluates them all: buildMs, the engine's
 * time only, the accounts' generation aside); calm ticks
 * (all 8 prices random-walk 0.05-0.2 % per tick, mean-reverting within ±2 %, 1 s per tick; between ticks, untimed,
 * what the tick found is liquidated (the account closes, as bench:risk's isolated book does) and `--events` accounts
 * (default 10) trade: a position resized or collateral moved, evaluated in the next tick, timed), p50 and p99 over
 * `--ticks` (300) measured ticks after `--warmup` (1000) ticks, about what the walk needs to cover its band once:
 * steady state, as the isolated book's warm-up (the first pass, prices entering ground where liquidation prices
 * crowd, is reported apart: firstPass*); a crash tick (three prices fall 8-15 % at
 * once): its time and the accounts it touched; the full exact scan of every account (model.evaluate) as the baseline,
 * at a calm tick and at the crash, both checked against the engine's answer; heap bytes per account (heapUsed after −
 * before building the book and the engine, after global.gc(), / N). Progress goes to stderr.
 */
import os from "node:os";
import { PerformanceObserver, performance } from "node:perf_hooks";
import { highSlack } from "../../src/protocol/types.ts";
import { CrossRiskEngine } from "../../src/risk/cross/engine.ts";
import type { LinearAccount, LinearModel } from "../../src/risk/cross/linearModel.ts";
import { Exchange, MARKETS, scale } from "./crossExchange.ts";

const gc = (globalThis as { gc?: () => void }).gc;
const collect = (): number => {
  if (!gc) throw new Error("run with node --expose-gc (npm run bench:risk)");
  gc();
  gc();
  return process.memoryUsage().heapUsed;
};
const log = (message: string): void => {
  process.stderr.write(`${message}\n`);
};
const nowNs = (): bigint => process.hrtime.bigint();
const ms = (ns: bigint | number): number => Number(ns) / 1e6;
const round = (x: number, digits = 4): number => Number(x.toPrecision(digits));
function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] as number;
}

export interface CrossRun {
  accounts: number;
  tickP50Ms: number;
  tickP99Ms: number;
  crashTickMs: number;
  crashTouched: number;
  fullScanMs: number;
  heapBytesPerAccount: number;
  buildMs: number;
  ticks: number;
  tickMaxMs: number;
  initialTickMs: number;
  upsertUs: number;
  meanEvaluatedPerTick: number;
  meanFiredPerTick: number;
  /** The warm-up's first pass over the band (ticks 100 .. warm-up): prices entering new ground, bursts of liquidations. */
  firstPassTicks: number;
  firstPassP50Ms: number;
  firstPassP99Ms: number;
  firstPassLiquidatedPerTick: number;
  /** CPU time of the process per tick (user + system, all threads): what the tick cost, preemption aside. */
  tickCpuP50Ms: number;
  tickCpuP99Ms: number;
  ticksWithGc: number;
  meanExpiredPerTick: number;
  meanSweptPerTick: number;
  meanCooledPerTick: number;
  liquidatedPerTick: number;
  eventsPerTick: number;
  warm: number;
  cold: number;
  levels: number;
  pricesPerAccount: number;
  crashLiquidatable: number;
  crashEvaluated: number;
  crashFired: number;
  crashLiquidatableScan: number;
}

function fullScan(engine: CrossRiskEngine<LinearAccount>, model: LinearModel, view: ReturnType<Exchange["view"]>) {
  const t0 = nowNs();
  const keys = new Set<string>();
  for (const account of engine.values()) {
    const slack = highSlack(model.evaluate(account, view));
    if (slack !== undefined && slack < 0n) keys.add(account.key);
  }
  return { ms: ms(nowNs() - t0), keys };
}

function sameKeys(found: readonly { account: LinearAccount }[], scan: Set<string>, where: string): void {
  const keys = new Set(found.map((f) => f.account.key));
  if (keys.size !== scan.size || [...keys].some((k) => !scan.has(k))) {
    throw new Error(`${where}: engine found ${keys.size}, full scan ${scan.size}`);
  }
}

/** Optional hooks around the calm ticks (profiling from a scratch script). */
export const hooks: {
  beforeCalm?: () => void;
  measured?: () => void;
  afterCalm?: () => void;
  beforeCrash?: () => void;
  afterCrash?: () => void;
} = {};

async function run(n: number, ticks: number, events: number, warmup: number): Promise<CrossRun> {
  const exchange = new Exchange(0xc0ffee + n);
  const heapBefore = collect();
  const engine = new CrossRiskEngine(exchange.model);
  // build time: the engine's own (upserts and the first tick), not the generation of the accounts
  let upsertNs = 0n;
  let terms = 0;
  for (let i = 0; i < n; i++) {
    const account = exchange.open();
    terms += account.prices.length;
    const u = nowNs();
    engine.upsert(account);
    upsertNs += nowNs() - u;
    if ((i + 1) % 250_000 === 0) log(`  ${i + 1} accounts`);
  }
  const t1 = nowNs();
  const initial = engine.tick(exchange.view());
  const t2 = nowNs();
  const t0 = t1 - upsertNs;
  if (initial.liquidatable.length > 0) throw new Error("every account starts healthy");
  const heapAfter = collect();
  log(`  built in ${round(ms(t2 - t0) / 1e3, 3)} s of engine time (first tick ${round(ms(t2 - t1), 4)} ms)`);

  const model = exchange.model;
  const liquidate = (found: readonly { account: LinearAccount }[]): void => {
    for (const { account } of found) engine.remove(account.key);
  };
  const keys = Array.from(engine.values(), (a) => a.key);
  const trade = (): void => {
    for (let e = 0; e < events; e++) {
      const account = engine.get(keys[Math.floor(exchange.random() * keys.length)] as string);
      if (account) engine.upsert(exchange.trade(account));
    }
  };
  const WARMUP = warmup;
  hooks.beforeCalm?.();
  // garbage collections, to say how many measured ticks one fell into (performance.now() time base)
  const gcs: { start: number; end: number }[] = [];
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) gcs.push({ start: e.startTime, end: e.startTime + e.duration });
  });
  observer.observe({ entryTypes: ["gc"] });
  const spans: { start: number; end: number }[] = [];
  const cpuTimes: number[] = [];
  // the warm-up's ticks after the first hundred: the walk's first pass over its band, liquidating as it goes
  const firstPass: number[] = [];
  let firstPassLiquidated = 0;
  const times: number[] = [];
  const sums = { evaluated: 0, fired: 0, expired: 0, swept: 0, cooled: 0, liquidated: 0 };
  let scanMs: number;
  for (let i = 0; i < WARMUP + ticks; i++) {
    if (i === WARMUP) hooks.measured?.();
    exchange.walk();
    const view = exchange.view();
    const p0 = performance.now();
    const c0 = process.cpuUsage();
    const s = nowNs();
    const result = engine.tick(view);
    const elapsed = Number(nowNs() - s);
    const cpu = process.cpuUsage(c0);
    if (i >= 100 && i < WARMUP) {
      firstPass.push(elapsed);
      firstPassLiquidated += result.liquidatable.length;
    }
    if (i >= WARMUP) {
      spans.push({ start: p0, end: performance.now() });
      cpuTimes.push((cpu.user + cpu.system) / 1e3);
    }
    if (process.env.BENCH_TRACE && i >= WARMUP && elapsed > 2e6)
      log(
        `  slow tick ${i}: ${ms(elapsed)} ms ${JSON.stringify(engine.lastTick)} liquidatable ${result.liquidatable.length}`,
      );
    if (i >= WARMUP) {
      times.push(elapsed);
      const st = engine.lastTick;
      sums.evaluated += st.evaluated;
      sums.fired += st.fired;
      sums.expired += st.expired;
      sums.swept += st.swept;
      sums.cooled += st.cooled;
      sums.liquidated += result.liquidatable.length;
    }
    liquidate(result.liquidatable);
    trade();
  }
  hooks.afterCalm?.();
  await new Promise((resolve) => setTimeout(resolve, 100)); // let the observer deliver
  observer.disconnect();
  const ticksWithGc = spans.filter((t) => gcs.some((g) => g.start < t.end && g.end > t.start)).length;
  {
    // one more calm tick, checked against the full scan
    exchange.walk();
    const view = exchange.view();
    const result = engine.tick(view);
    log("  full scan at a calm tick ...");
    const scan = fullScan(engine, model, view);
    sameKeys(result.liquidatable, scan.keys, "calm tick");
    scanMs = scan.ms;
    liquidate(result.liquidatable);
  }
  const stats = engine.stats();
  times.sort((a, b) => a - b);

  // the crash: three prices fall 8-15 % at once
  exchange.prices = exchange.prices.map((p, i) =>
    i === 0 ? scale(p, 0.88) : i === 1 ? scale(p, 0.85) : i === 2 ? scale(p, 0.92) : p,
  );
  exchange.time += 1n;
  const crashView = exchange.view();
  hooks.beforeCrash?.();
  const c0 = nowNs();
  const crash = engine.tick(crashView);
  const crashTickMs = ms(nowNs() - c0);
  hooks.afterCrash?.();
  const crashStats = { ...engine.lastTick };
  log("  full scan at the crash ...");
  const crashScan = fullScan(engine, model, crashView);
  sameKeys(crash.liquidatable, crashScan.keys, "crash");

  const m = ticks;
  return {
    accounts: n,
    tickP50Ms: round(ms(quantile(times, 0.5))),
    tickP99Ms: round(ms(quantile(times, 0.99))),
    crashTickMs: round(crashTickMs),
    crashTouched: crashStats.touched,
    fullScanMs: round((scanMs + crashScan.ms) / 2),
    heapBytesPerAccount: Math.round((heapAfter - heapBefore) / n),
    buildMs: round(ms(t2 - t0)),
    ticks,
    tickMaxMs: round(ms(times[times.length - 1] ?? 0)),
    initialTickMs: round(ms(t2 - t1)),
    upsertUs: round(ms(t1 - t0) / n / 1e-3),
    meanEvaluatedPerTick: round(sums.evaluated / m),
    meanFiredPerTick: round(sums.fired / m),
    firstPassTicks: firstPass.length,
    firstPassP50Ms: round(
      ms(
        quantile(
          firstPass.sort((a, b) => a - b),
          0.5,
        ),
      ),
    ),
    firstPassP99Ms: round(ms(quantile(firstPass, 0.99))),
    firstPassLiquidatedPerTick: round(firstPassLiquidated / Math.max(1, firstPass.length)),
    tickCpuP50Ms: round(
      quantile(
        cpuTimes.sort((a, b) => a - b),
        0.5,
      ),
    ),
    tickCpuP99Ms: round(quantile(cpuTimes, 0.99)),
    ticksWithGc,
    meanExpiredPerTick: round(sums.expired / m),
    meanSweptPerTick: round(sums.swept / m),
    meanCooledPerTick: round(sums.cooled / m),
    liquidatedPerTick: round(sums.liquidated / m),
    eventsPerTick: events,
    warm: stats.warm,
    cold: stats.cold,
    levels: stats.levels,
    pricesPerAccount: round(terms / n, 3),
    crashLiquidatable: crash.liquidatable.length,
    crashEvaluated: crashStats.evaluated,
    crashFired: crashStats.fired,
    crashLiquidatableScan: crashScan.keys.size,
  };
}

export async function runCrossBench(args: readonly string[]): Promise<void> {
  const json = args.includes("--json");
  const at = args.indexOf("--accounts");
  const sizes =
    at >= 0
      ? (args[at + 1] ?? "")
          .split(",")
          .map((s) => Number(s.replaceAll("_", "")))
          .filter((x) => Number.isInteger(x) && x > 0)
      : [100_000, 1_000_000];
  if (sizes.length === 0) throw new Error("--accounts takes a comma-separated list of positive integers");
  const ticksAt = args.indexOf("--ticks");
  const ticks = ticksAt >= 0 ? Number(args[ticksAt + 1]) : 300;
  const eventsAt = args.indexOf("--events");
  const events = eventsAt >= 0 ? Number(args[eventsAt + 1]) : 10;
  const warmupAt = args.indexOf("--warmup");
  const warmup = warmupAt >= 0 ? Number(args[warmupAt + 1]) : 1000;
  if (!(warmup >= 100)) throw new Error("--warmup takes at least 100 ticks");
  const cpus = os.cpus();
  const machine = { cpu: cpus[0]?.model ?? "unknown", cores: cpus.length, node: process.version };
  log(
    `bench:risk --book cross on ${machine.cpu} (${machine.cores} cores), node ${machine.node}, sizes ${sizes.join(", ")}`,
  );
  const runs: CrossRun[] = [];
  for (const n of sizes) {
    log(`building ${n} accounts over ${MARKETS.length} markets ...`);
    runs.push(await run(n, ticks, events, warmup));
    collect();
  }
  let text: string;
  if (json) {
    text = `${JSON.stringify({ bench: "risk", book: "cross", machine, runs })}\n`;
  } else {
    const header = [
      "accounts",
      "tick p50 ms",
      "tick p99 ms",
      "crash ms",
      "crash touched",
      "full scan ms",
      "heap B/acct",
      "build ms",
    ];
    const rows = runs.map((r) => [
      r.accounts.toLocaleString("en-US"),
      r.tickP50Ms.toFixed(3),
      r.tickP99Ms.toFixed(3),
      r.crashTickMs.toFixed(1),
      String(r.crashTouched),
      r.fullScanMs.toFixed(0),
      String(r.heapBytesPerAccount),
      r.buildMs.toFixed(0),
    ]);
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] as string).length)));
    const line = (cells: readonly string[]) => cells.map((c, i) => c.padStart(widths[i] as number)).join("  ");
    const out = [
      `machine: ${machine.cpu}, ${machine.cores} cores, node ${machine.node}`,
      "",
      line(header),
      line(widths.map((w) => "-".repeat(w))),
      ...rows.map(line),
      "",
    ];
    for (const r of runs) {
      out.push(
        `${r.accounts}: first pass over the band: ${r.firstPassTicks} ticks, p50 ${r.firstPassP50Ms} ms, p99 ${r.firstPassP99Ms} ms, ` +
          `${r.firstPassLiquidatedPerTick} liquidated per tick; ${r.ticks} calm ticks (max ${r.tickMaxMs} ms, ${r.ticksWithGc} with a garbage collection; CPU time p50 ${r.tickCpuP50Ms} ms, p99 ${r.tickCpuP99Ms} ms): per tick ${r.meanEvaluatedPerTick} evaluated, ${r.meanFiredPerTick} fired, ${r.meanExpiredPerTick} expired, ` +
          `${r.meanSweptPerTick} swept, ${r.meanCooledPerTick} cooled, ${r.liquidatedPerTick} liquidated, ${r.eventsPerTick} events; ${r.warm} warm, ${r.cold} cold, ` +
          `${r.levels} levels, ${r.pricesPerAccount} prices per account; crash: ${r.crashLiquidatable} liquidatable (scan ${r.crashLiquidatableScan}), ` +
          `${r.crashFired} fired, ${r.crashEvaluated} evaluated; first tick ${r.initialTickMs} ms, upsert ${r.upsertUs} µs`,
      );
    }
    const big = runs.find((r) => r.accounts === 1_000_000);
    if (big) {
      const verdict = (ok: boolean) => (ok ? "met" : "MISSED");
      out.push(
        "",
        "targets at 1,000,000 accounts:",
        `  calm tick p99 <= 2 ms:        ${big.tickP99Ms} ms  ${verdict(big.tickP99Ms <= 2)}`,
        `  <= 1 KiB heap per account:    ${big.heapBytesPerAccount} B  ${verdict(big.heapBytesPerAccount <= 1024)}`,
      );
    }
    text = `${out.join("\n")}\n`;
  }
  await new Promise<void>((resolve) => process.stdout.write(text, () => resolve()));
}
