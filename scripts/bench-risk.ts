/**
 * Benchmark of the risk model: the liquidation index against the exact full scan, on synthetic books of 10k, 100k
 * and 1M positions spread over four markets, built event by event through Book.apply + RiskEngine.apply (no chain).
 *
 *   npm run bench:risk                                 human-readable table
 *   npm run bench:risk -- --json                       one JSON line, the last line of stdout
 *   npm run bench:risk -- --sizes 10000,100000         choose the book sizes
 *   npm run bench:risk -- --book cross [--accounts N]  the cross-margin engine instead (scripts/lib/benchRiskCross.ts)
 *
 * Per size it measures, in one run:
 * - tick: time for `risk.liquidatable(market, price, time)` (index walk + exact confirmation) on the largest market
 *   for a mean-reverting random walk of 0.1%-0.5% steps (p50 and p99 over the ticks); the keeper liquidates what a
 *   tick finds (outside the timing), as it would on chain;
 * - crash: one tick at the price that makes ~1% of that market's positions liquidatable (median of repeats);
 * - full scan: `scanLiquidatable` over every position of that market (same exact arithmetic), on a sample of the
 *   same ticks and on the crash tick; speedup = median full-scan time / index tick p50 (crashSpeedup: crash full
 *   scan / crash index tick);
 * - insert and update cost per event (Book.apply + RiskEngine.apply; the index's share separately);
 * - heap bytes per tracked position: heapUsed after - before building book + index (both after global.gc()), / N;
 *   the index's own share is measured by dropping the RiskEngine at the end.
 * Progress goes to stderr.
 */
import os from "node:os";
import type { Address, Hex } from "viem";
import { Book, type Market, type TrackedPosition } from "../src/protocol/perpEngine/book.ts";
import type { ExchangeEvent } from "../src/protocol/perpEngine/events.ts";
import { ceilMul, fundingIndexAt, health, initialRequirement, WAD } from "../src/protocol/perpEngine/math.ts";
import { RiskEngine } from "../src/protocol/perpEngine/riskEngine.ts";
import { type Candidate, scanLiquidatable } from "../src/protocol/perpEngine/scan.ts";
import type { LogRef } from "../src/state/events.ts";

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with node --expose-gc (npm run bench:risk)");
const collect = (): number => {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
};

// ---------------------------------------------------------------------------------------------- arguments

const args = process.argv.slice(2);
// --book cross: the cross-margin engine's benchmark (scripts/lib/benchRiskCross.ts); --book isolated (default): below
const bookAt = args.indexOf("--book");
const bookKind = bookAt >= 0 ? args[bookAt + 1] : "isolated";
if (bookKind === "cross") {
  const { runCrossBench } = await import("./lib/benchRiskCross.ts");
  await runCrossBench(args);
  process.exit(0);
}
if (bookKind !== "isolated") throw new Error(`--book takes isolated or cross, got ${bookKind}`);
const json = args.includes("--json");
const sizesArg = args.indexOf("--sizes");
const SIZES =
  sizesArg >= 0
    ? (args[sizesArg + 1] ?? "")
        .split(",")
        .map((s) => Number(s.replaceAll("_", "")))
        .filter((n) => Number.isInteger(n) && n > 0)
    : [10_000, 100_000, 1_000_000];
if (SIZES.length === 0) throw new Error("--sizes takes a comma-separated list of positive integers");

const log = (message: string): void => {
  process.stderr.write(`${message}\n`);
};

// ---------------------------------------------------------------------------------------------- synthetic exchange

/** mulberry32: seeded so that every run builds the same books. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PRICE_SCALE = 10n ** 10n; // 8-decimal Chainlink answers
const wadOf = (x: number): bigint => BigInt(Math.round(x * 1e6)) * 10n ** 12n;
const NOW = 1_700_000_000n;

interface MarketSpec {
  readonly name: string;
  /** Oracle units (8 decimals). */
  readonly priceUnits: bigint;
  readonly initial: number;
  readonly maintenance: number;
  /** Share of all positions. */
  readonly weight: number;
  /** Cumulative funding index, quote per unit of base. */
  readonly fundingIndex: number;
  /** Funding rate, fraction of mark per second. */
  readonly fundingRate: number;
}

const MARKETS: readonly MarketSpec[] = [
  {
    name: "BTC-USD",
    priceUnits: 6_000_000_000_000n,
    initial: 0.01,
    maintenance: 0.005,
    weight: 0.4,
    fundingIndex: 1234.5,
    fundingRate: 1.2e-8,
  },
  {
    name: "ETH-USD",
    priceUnits: 300_000_000_000n,
    initial: 0.02,
    maintenance: 0.01,
    weight: 0.3,
    fundingIndex: -56.25,
    fundingRate: -3e-9,
  },
  {
    name: "SOL-USD",
    priceUnits: 15_000_000_000n,
    initial: 0.05,
    maintenance: 0.025,
    weight: 0.2,
    fundingIndex: 3.125,
    fundingRate: 2.5e-8,
  },
  {
    name: "DOGE-USD",
    priceUnits: 15_000_000n,
    initial: 0.1,
    maintenance: 0.05,
    weight: 0.1,
    fundingIndex: -0.0123,
    fundingRate: -7e-8,
  },
];

class Exchange {
  private seq = 0;
  readonly random: () => number;

  constructor(seed: number) {
    this.random = rng(seed);
  }

  ref(): LogRef {
    const n = this.seq++;
    return {
      blockNumber: BigInt(1 + Math.floor(n / 256)),
      logIndex: n % 256,
      blockHash: "0x01" as Hex,
      transactionHash: "0x02" as Hex,
    };
  }

  listEvents(): ExchangeEvent[] {
    const events: ExchangeEvent[] = [];
    MARKETS.forEach((spec, id) => {
      events.push({
        kind: "marketListed",
        ref: this.ref(),
        marketId: id,
        name: spec.name,
        oracle: `0x${(id + 1).toString(16).padStart(40, "0")}` as Address,
        priceScale: PRICE_SCALE,
        initialMarginRatio: wadOf(spec.initial),
        maintenanceMarginRatio: wadOf(spec.maintenance),
        liquidationFeeRatio: wadOf(spec.maintenance / 2),
        tradingFeeRatio: wadOf(spec.maintenance / 10),
        maxOracleAge: 3600n,
      });
      events.push({
        kind: "fundingUpdated",
        ref: this.ref(),
        marketId: id,
        cumulativeFundingIndex: wadOf(spec.fundingIndex),
        fundingRatePerSecond: BigInt(Math.round(spec.fundingRate * 1e18)),
        timestamp: NOW - 1800n,
      });
    });
    return events;
  }

  pickMarket(): number {
    let r = this.random();
    for (let id = 0; id < MARKETS.length; id++) {
      r -= (MARKETS[id] as MarketSpec).weight;
      if (r < 0) return id;
    }
    return MARKETS.length - 1;
  }

  /**
   * A position opened near the mark at 1x to the market's maximum leverage (low leverage more common), with
   * funding settled at some earlier index, healthy at the current mark.
   */
  openEvent(book: Book, i: number): ExchangeEvent {
    const id = this.pickMarket();
    const spec = MARKETS[id] as MarketSpec;
    const market = book.markets.get(id) as Market;
    const mark = spec.priceUnits * PRICE_SCALE;
    const index = fundingIndexAt(market.funding, mark, NOW);
    const r = this.random;
    const long = r() < 0.52;
    // entry within about +-3% of the mark (sum of uniforms: bell-shaped)
    const offset = (r() + r() + r() - 1.5) * 0.02;
    const entry = (mark * BigInt(Math.round((1 + offset) * 1e9))) / 1_000_000_000n;
    const quote = 50 * 10 ** (r() * 4.6); // $50 .. $2M of notional
    const size = BigInt(Math.max(1, Math.round((quote / Number(entry / 10n ** 12n)) * 1e12))) * 10n ** 12n;
    const openNotional = long ? ceilMul(size, entry) : (size * entry) / WAD;
    const maxLeverage = 1 / spec.initial;
    let leverage = 1 + (maxLeverage - 1) * r() ** 3;
    // funding settled at an earlier index: up to 0.2% of the price either way
    const lastFundingIndex = index + (mark * BigInt(Math.round((r() - 0.5) * 4e6))) / 1_000_000_000n;
    const state = { size: long ? size : -size, openNotional, margin: 0n, lastFundingIndex };
    for (;;) {
      state.margin = (openNotional * 1_000_000n) / BigInt(Math.round(leverage * 1e6));
      // at the mark it must meet the initial requirement, as if just opened or topped up: deleverage it otherwise
      const h = health(state, market.maintenanceMarginRatio, mark, index);
      if (h.marginBalance >= initialRequirement(state.size, mark, market.initialMarginRatio) || leverage <= 1) break;
      leverage = Math.max(1, leverage * 0.9);
    }
    return {
      kind: "positionChanged",
      ref: this.ref(),
      trader: `0x${i.toString(16).padStart(40, "0")}` as Address,
      marketId: id,
      price: entry,
      sizeDelta: state.size,
      size: state.size,
      openNotional,
      margin: state.margin,
      fundingIndex: lastFundingIndex,
    };
  }

  /** A margin top-up/withdrawal with funding settled, or a size change, of an existing position. */
  updateEvent(book: Book, p: TrackedPosition): ExchangeEvent {
    const market = book.markets.get(p.marketId) as Market;
    const mark = (MARKETS[p.marketId] as MarketSpec).priceUnits * PRICE_SCALE;
    const index = fundingIndexAt(market.funding, mark, NOW);
    const r = this.random;
    const owed = (p.size * (index - p.lastFundingIndex)) / WAD;
    const common = { ref: this.ref(), trader: p.trader, marketId: p.marketId, fundingIndex: index };
    if (r() < 0.5) {
      const delta = (p.margin * BigInt(Math.round((r() - 0.3) * 1e5))) / 1_000_000n; // -3% .. +7%
      const margin = p.margin - owed + delta;
      return {
        kind: "marginChanged",
        ...common,
        marginDelta: delta,
        size: p.size,
        openNotional: p.openNotional,
        margin,
      };
    }
    const ppm = BigInt(Math.round((0.8 + r() * 0.4) * 1e6)); // -20% .. +20% of the size
    const size = (p.size * ppm) / 1_000_000n || p.size;
    return {
      kind: "positionChanged",
      ...common,
      price: mark,
      sizeDelta: size - p.size,
      size,
      openNotional: (p.openNotional * ppm) / 1_000_000n,
      margin: p.margin - owed,
    };
  }

  liquidationEvent(p: TrackedPosition, price: bigint): ExchangeEvent {
    return {
      kind: "positionLiquidated",
      ref: this.ref(),
      trader: p.trader,
      marketId: p.marketId,
      keeper: "0x00000000000000000000000000000000000000aa",
      size: p.size,
      price,
      marginBalance: 0n,
      keeperReward: 0n,
      badDebt: 0n,
    };
  }
}

// ---------------------------------------------------------------------------------------------- measurement

const nowNs = (): bigint => process.hrtime.bigint();
const ms = (ns: bigint | number): number => Number(ns) / 1e6;

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i] as number;
}
const median = (xs: readonly number[]): number =>
  quantile(
    [...xs].sort((a, b) => a - b),
    0.5,
  );
const round = (x: number, digits = 4): number => Number(x.toPrecision(digits));

interface Run {
  positions: number;
  tickP50Ms: number;
  tickP99Ms: number;
  crashTickMs: number;
  fullScanMs: number;
  speedup: number;
  heapBytesPerPosition: number;
  ticks: number;
  tickMaxMs: number;
  tickLiquidatableMean: number;
  tickLiquidatableMax: number;
  tickMarket: string;
  tickMarketPositions: number;
  fullScanSamples: number;
  crashLiquidatable: number;
  crashMarketPositions: number;
  crashMovePct: number;
  crashFullScanMs: number;
  crashSpeedup: number;
  insertUs: number;
  indexInsertUs: number;
  updateUs: number;
  indexUpdateUs: number;
  indexBytesPerPosition: number;
  buildSeconds: number;
}

/** Applies events through the keeper's pipeline in batches, timing the book's and the index's share apart. */
function applyTimed(
  book: Book,
  risk: RiskEngine,
  events: readonly ExchangeEvent[],
): { bookNs: bigint; riskNs: bigint } {
  const changes = new Array(events.length);
  const t0 = nowNs();
  for (let i = 0; i < events.length; i++) changes[i] = book.apply(events[i] as ExchangeEvent);
  const t1 = nowNs();
  for (let i = 0; i < changes.length; i++) if (changes[i]) risk.apply(changes[i]);
  const t2 = nowNs();
  return { bookNs: t1 - t0, riskNs: t2 - t1 };
}

function run(n: number): Run {
  const started = nowNs();
  const exchange = new Exchange(0x5eed + n);
  const BATCH = 4096;

  // ---- build: book + index from events, heap measured around it
  const heapBefore = collect();
  const book = new Book();
  for (const e of exchange.listEvents()) book.apply(e);
  const risk = new RiskEngine(book);
  let bookNs = 0n;
  let riskNs = 0n;
  for (let i = 0; i < n; ) {
    const batch: ExchangeEvent[] = [];
    for (let j = 0; j < BATCH && i < n; j++, i++) batch.push(exchange.openEvent(book, i));
    const t = applyTimed(book, risk, batch);
    bookNs += t.bookNs;
    riskNs += t.riskNs;
    if (i % 200_000 < BATCH) log(`  built ${i} positions`);
  }
  if (book.positions.size !== n || risk.index.size !== n) throw new Error("every trader should hold one position");
  const heapAfter = collect();
  const heapBytesPerPosition = (heapAfter - heapBefore) / n;

  // ---- small-move ticks on the largest market
  const TICK_MARKET = 0;
  const spec = MARKETS[TICK_MARKET] as MarketSpec;
  const market = book.markets.get(TICK_MARKET) as Market;
  let marketPositions: TrackedPosition[] = [];
  const refreshMarketPositions = () => {
    marketPositions = [];
    for (const p of book.positions.values()) if (p.marketId === TICK_MARKET) marketPositions.push(p);
  };
  refreshMarketPositions();
  const tickMarketPositions = marketPositions.length;

  const TICKS = 1000;
  const WARMUP_TICKS = 300;
  const scanEvery = n >= 1_000_000 ? 50 : n >= 100_000 ? 20 : 5;
  const mark = Number(spec.priceUnits);
  let priceUnits = mark;
  let time = NOW;
  const tickNs: number[] = [];
  const scanNs: number[] = [];
  let liquidatableSum = 0;
  let liquidatableMax = 0;
  let stale = false;
  const walk = () => {
    const step = 0.001 + exchange.random() * 0.004;
    const deviation = priceUnits / mark - 1;
    const down = deviation > 0.01 ? true : deviation < -0.01 ? false : exchange.random() < 0.5;
    priceUnits *= down ? 1 - step : 1 + step;
    time += 1n;
    return BigInt(Math.round(priceUnits)) * PRICE_SCALE;
  };
  // the keeper liquidates what it finds (untimed)
  const liquidate = (found: readonly Candidate[], price: bigint) => {
    if (found.length === 0) return;
    applyTimed(
      book,
      risk,
      found.map((c) => exchange.liquidationEvent(c.position, price)),
    );
    stale = true;
  };
  // warm-up, untimed: JIT for both paths, and the walk's band swept once (steady state: what a first pass over the
  // band finds is liquidated before the measured ticks)
  for (let i = 0; i < WARMUP_TICKS; i++) {
    const price = walk();
    liquidate(risk.liquidatable(TICK_MARKET, price, time), price);
  }
  refreshMarketPositions();
  stale = false;
  scanLiquidatable(marketPositions, market, BigInt(mark) * PRICE_SCALE, time);
  for (let tick = 0; tick < TICKS; tick++) {
    const price = walk();
    const t0 = nowNs();
    const found = risk.liquidatable(TICK_MARKET, price, time);
    const t1 = nowNs();
    tickNs.push(Number(t1 - t0));
    liquidatableSum += found.length;
    liquidatableMax = Math.max(liquidatableMax, found.length);
    if (tick % scanEvery === 0) {
      if (stale) refreshMarketPositions();
      stale = false;
      const s0 = nowNs();
      const scanned = scanLiquidatable(marketPositions, market, price, time);
      const s1 = nowNs();
      scanNs.push(Number(s1 - s0));
      if (scanned.length !== found.length) throw new Error(`index found ${found.length}, full scan ${scanned.length}`);
    }
    liquidate(found, price);
  }
  tickNs.sort((a, b) => a - b);
  const tickP50Ms = ms(quantile(tickNs, 0.5));
  const tickP99Ms = ms(quantile(tickNs, 0.99));
  const fullScanMs = ms(median(scanNs));
  if (stale) refreshMarketPositions();

  // ---- crash: the price at which ~1% of the market's positions are liquidatable
  const crashMarketPositions = marketPositions.length;
  const target = Math.max(1, Math.round(crashMarketPositions / 100));
  const crashTime = time + 1n;
  let lo = BigInt(Math.round(mark * 0.5)); // at or below: >= target liquidatable
  let hi = BigInt(Math.round(priceUnits)); // above: fewer
  while (hi - lo > 1n) {
    const mid = (lo + hi) / 2n;
    if (risk.liquidatable(TICK_MARKET, mid * PRICE_SCALE, crashTime).length >= target) lo = mid;
    else hi = mid;
  }
  const crashPrice = lo * PRICE_SCALE;
  const crashRuns: number[] = [];
  let crashLiquidatable = 0;
  for (let i = 0; i < 15; i++) {
    const t0 = nowNs();
    crashLiquidatable = risk.liquidatable(TICK_MARKET, crashPrice, crashTime).length;
    crashRuns.push(Number(nowNs() - t0));
  }
  const crashScanRuns: number[] = [];
  for (let i = 0; i < (n >= 1_000_000 ? 3 : 7); i++) {
    const t0 = nowNs();
    const scanned = scanLiquidatable(marketPositions, market, crashPrice, crashTime).length;
    crashScanRuns.push(Number(nowNs() - t0));
    if (scanned !== crashLiquidatable) throw new Error(`crash: index ${crashLiquidatable}, full scan ${scanned}`);
  }
  const crashTickMs = ms(median(crashRuns));
  const crashFullScanMs = ms(median(crashScanRuns));

  // ---- updates of random existing positions
  const all = [...book.positions.values()];
  const updates = Math.min(n, 100_000);
  let updBookNs = 0n;
  let updRiskNs = 0n;
  for (let i = 0; i < updates; ) {
    const batch: ExchangeEvent[] = [];
    for (let j = 0; j < BATCH && i < updates; j++, i++) {
      const p = all[Math.floor(exchange.random() * all.length)] as TrackedPosition;
      batch.push(exchange.updateEvent(book, book.positions.get(p.key) ?? p));
    }
    const t = applyTimed(book, risk, batch);
    updBookNs += t.bookNs;
    updRiskNs += t.riskNs;
  }
  all.length = 0;
  marketPositions = [];

  // ---- the index's own share of the heap: a second engine indexing the same book
  const withoutIndex = collect();
  const second = new RiskEngine(book);
  const withIndex = collect();
  const indexed = second.index.size;

  return {
    positions: n,
    tickP50Ms: round(tickP50Ms),
    tickP99Ms: round(tickP99Ms),
    crashTickMs: round(crashTickMs),
    fullScanMs: round(fullScanMs),
    speedup: round(fullScanMs / tickP50Ms),
    heapBytesPerPosition: Math.round(heapBytesPerPosition),
    ticks: TICKS,
    tickMaxMs: round(ms(tickNs[tickNs.length - 1] ?? 0)),
    tickLiquidatableMean: round(liquidatableSum / TICKS, 3),
    tickLiquidatableMax: liquidatableMax,
    tickMarket: spec.name,
    tickMarketPositions,
    fullScanSamples: scanNs.length,
    crashLiquidatable,
    crashMarketPositions,
    crashMovePct: round((Number(lo) / mark - 1) * 100, 3),
    crashFullScanMs: round(crashFullScanMs),
    crashSpeedup: round(crashFullScanMs / crashTickMs),
    insertUs: round(Number(bookNs + riskNs) / n / 1e3),
    indexInsertUs: round(Number(riskNs) / n / 1e3),
    updateUs: round(Number(updBookNs + updRiskNs) / updates / 1e3),
    indexUpdateUs: round(Number(updRiskNs) / updates / 1e3),
    indexBytesPerPosition: Math.round((withIndex - withoutIndex) / Math.max(1, indexed)),
    buildSeconds: round(ms(nowNs() - started) / 1e3, 3),
  };
}

// ---------------------------------------------------------------------------------------------- main

const cpus = os.cpus();
const machine = {
  cpu: cpus[0]?.model ?? "unknown",
  cores: cpus.length,
  node: process.version,
  platform: `${os.platform()} ${os.arch()}`,
  memoryGiB: round(os.totalmem() / 2 ** 30, 3),
};
log(`bench:risk on ${machine.cpu} (${machine.cores} cores), node ${machine.node}, sizes ${SIZES.join(", ")}`);

const runs: Run[] = [];
for (const n of SIZES) {
  log(`building ${n} positions over ${MARKETS.length} markets ...`);
  const result = run(n);
  runs.push(result);
  log(`  done in ${result.buildSeconds} s`);
  collect();
}

if (json) {
  process.stdout.write(`${JSON.stringify({ bench: "risk", machine, runs })}\n`);
} else {
  const header = [
    "positions",
    "tick p50 ms",
    "tick p99 ms",
    "full scan ms",
    "speedup",
    "crash ms",
    "crash liq",
    "crash scan ms",
    "crash speedup",
    "insert µs",
    "update µs",
    "heap B/pos",
    "index B/pos",
  ];
  const rows = runs.map((r) => [
    r.positions.toLocaleString("en-US"),
    r.tickP50Ms.toFixed(4),
    r.tickP99Ms.toFixed(4),
    r.fullScanMs.toFixed(2),
    `${Math.round(r.speedup).toLocaleString("en-US")}x`,
    r.crashTickMs.toFixed(3),
    String(r.crashLiquidatable),
    r.crashFullScanMs.toFixed(2),
    `${r.crashSpeedup.toFixed(1)}x`,
    `${r.insertUs.toFixed(2)} (${r.indexInsertUs.toFixed(2)})`,
    `${r.updateUs.toFixed(2)} (${r.indexUpdateUs.toFixed(2)})`,
    String(r.heapBytesPerPosition),
    String(r.indexBytesPerPosition),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] as string).length)));
  const line = (cells: readonly string[]) => cells.map((c, i) => c.padStart(widths[i] as number)).join("  ");
  const out = [
    `machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB, node ${machine.node}`,
    "",
    line(header),
    line(widths.map((w) => "-".repeat(w))),
    ...rows.map(line),
    "",
    "tick: risk.liquidatable() on the largest market (BTC-USD, 40% of positions) per price update of a 0.1%-0.5%",
    "random walk; full scan: scanLiquidatable() over all that market's positions on the same ticks (median);",
    "speedup = full scan median / tick p50; crash: price where ~1% of that market's positions are liquidatable,",
    "crash speedup = crash full scan / crash tick; insert/update: Book.apply + RiskEngine.apply per event (index",
    "share in brackets); heap: (heapUsed after - before building book + index) / positions; index: its own share.",
  ];
  for (const r of runs) {
    out.push(
      `${r.positions}: ${r.ticks} ticks, ${r.tickLiquidatableMean} liquidatable per tick on average (max ${r.tickLiquidatableMax}), ` +
        `tick max ${r.tickMaxMs} ms; crash ${r.crashMovePct}% -> ${r.crashLiquidatable} of ${r.crashMarketPositions}; built+measured in ${r.buildSeconds} s`,
    );
  }
  const big = runs.find((r) => r.positions === 1_000_000);
  if (big) {
    const verdict = (ok: boolean) => (ok ? "met" : "MISSED");
    out.push(
      "",
      "targets at 1,000,000 positions:",
      `  p99 small-move tick <= 1 ms:   ${big.tickP99Ms} ms  ${verdict(big.tickP99Ms <= 1)}`,
      `  >= 100x faster than full scan: ${Math.round(big.speedup)}x  ${verdict(big.speedup >= 100)}`,
      `  <= 1 KiB heap per position:    ${big.heapBytesPerPosition} B  ${verdict(big.heapBytesPerPosition <= 1024)}`,
    );
  }
  process.stdout.write(`${out.join("\n")}\n`);
}
