/**
 * Property tests of the liquidation index: a Book and a RiskEngine are driven by random event workloads (seeded;
 * `PROP_SEED=<n>` replays one seed, the failing seed is in the error message) and after every price move the
 * index's answer must equal the exact full scan, position for position and figure for figure. Prices are also
 * probed exactly at, one unit below and one unit above positions' liquidation prices, where float keys would miss.
 */
import type { Address, Hex } from "viem";
import { describe, expect, it } from "vitest";
import { Book, type Market, type TrackedPosition } from "../../src/protocol/perpEngine/book.ts";
import type { ExchangeEvent } from "../../src/protocol/perpEngine/events.ts";
import { LiquidationIndex } from "../../src/protocol/perpEngine/liquidationIndex.ts";
import {
  ceilMul,
  fundingIndexAt,
  fundingOwed,
  health,
  liquidationPriceUnits,
  type PositionState,
  WAD,
} from "../../src/protocol/perpEngine/math.ts";
import { RiskEngine } from "../../src/protocol/perpEngine/riskEngine.ts";
import { type Candidate, scanLiquidatable } from "../../src/protocol/perpEngine/scan.ts";
import type { LogRef } from "../../src/state/events.ts";

// ---------------------------------------------------------------------------------------------- seeded randomness

/** sfc32: small, fast, good enough for workloads; 32-bit state words. */
class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    this.a = 0x9e3779b9;
    this.b = 0x243f6a88;
    this.c = 0xb7e15162;
    this.d = seed >>> 0;
    for (let i = 0; i < 16; i++) this.u32();
  }

  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  float(): number {
    return this.u32() / 4294967296;
  }

  /** Integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.float() * (hi - lo + 1));
  }

  chance(p: number): boolean {
    return this.float() < p;
  }

  pick<T>(items: readonly T[]): T {
    const item = items[this.int(0, items.length - 1)];
    if (item === undefined) throw new Error("pick from an empty list");
    return item;
  }

  /** Uniform in [0, 2^n). */
  bits(n: number): bigint {
    let x = 0n;
    for (let i = 0; i < n; i += 32) x = (x << 32n) | BigInt(this.u32());
    return x & ((1n << BigInt(n)) - 1n);
  }

  /** In [lo, hi] (modulo bias is irrelevant here). */
  big(lo: bigint, hi: bigint): bigint {
    const span = hi - lo + 1n;
    return lo + (this.bits(span.toString(2).length + 16) % span);
  }

  /** A magnitude spread over many orders: uniform bit length in [0, maxBits], then uniform below it. */
  magnitude(maxBits: number): bigint {
    return this.bits(this.int(0, maxBits));
  }

  sign(): bigint {
    return this.chance(0.5) ? 1n : -1n;
  }
}

const PRICE_SCALE = 10n ** 10n; // 8-decimal Chainlink answers
const PPM = 1_000_000n;
const pct = (x: number): bigint => BigInt(Math.round(x * 1e16)); // percent as a WAD ratio
const scaled = (x: bigint, ppm: bigint): bigint => (x * ppm) / PPM;

function seeds(defaults: readonly number[]): number[] {
  const env = process.env.PROP_SEED;
  if (env === undefined || env === "") return [...defaults];
  const seed = Number(env);
  if (!Number.isInteger(seed)) throw new Error(`PROP_SEED must be an integer, got ${env}`);
  return [seed];
}

/** Runs `body` with the seed; a failure names the seed and how to replay it. */
function withSeed(seed: number, body: (rng: Rng) => void): void {
  try {
    body(new Rng(seed));
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    console.error(
      `property failed with seed ${seed}; replay: PROP_SEED=${seed} npx vitest run test/risk/index.property.test.ts`,
    );
    throw new Error(`[PROP_SEED=${seed}] ${message}`, { cause: error });
  }
}

// ---------------------------------------------------------------------------------------------- the workload

interface SimMarket {
  readonly id: number;
  /** Where the walk reverts to when it drifts too far, oracle units. */
  readonly basePriceUnits: bigint;
  priceUnits: bigint;
}

interface Stats {
  checks: number;
  nonEmpty: number;
  partial: number;
  liquidatedLongs: number;
  liquidatedShorts: number;
  boundaryProbes: number;
  boundaryFlips: number;
  rebuilt: number;
  fundingUpdates: number;
  closes: number;
  liquidations: number;
}

const emptyStats = (): Stats => ({
  checks: 0,
  nonEmpty: 0,
  partial: 0,
  liquidatedLongs: 0,
  liquidatedShorts: 0,
  boundaryProbes: 0,
  boundaryFlips: 0,
  rebuilt: 0,
  fundingUpdates: 0,
  closes: 0,
  liquidations: 0,
});

function describeCandidate(c: Candidate): string {
  const h = c.health;
  return `${c.position.key} size=${c.position.size} mb=${h.marginBalance} req=${h.maintenanceRequirement} reward=${c.keeperReward} index=${c.fundingIndex} price=${c.markPrice}`;
}

/** The index's answer must be the full scan's, exactly (same keys, same health figures). */
function assertSameAsScan(
  book: Book,
  risk: RiskEngine,
  market: Market,
  markPrice: bigint,
  timestamp: bigint,
  stats: Stats,
  what: string,
): Candidate[] {
  const got = risk.liquidatable(market.id, markPrice, timestamp).map(describeCandidate).sort();
  const scanned = scanLiquidatable(book.positions.values(), market, markPrice, timestamp);
  const want = scanned.map(describeCandidate).sort();
  stats.checks++;
  if (got.length !== want.length || got.some((g, i) => g !== want[i])) {
    const missing = want.filter((w) => !got.includes(w));
    const extra = got.filter((g) => !want.includes(g));
    throw new Error(
      `${what}: index and full scan disagree on market ${market.id} at price ${markPrice} time ${timestamp}\n` +
        `missing from index (${missing.length}): ${missing.slice(0, 5).join("\n  ")}\n` +
        `extra in index (${extra.length}): ${extra.slice(0, 5).join("\n  ")}`,
    );
  }
  if (want.length > 0) stats.nonEmpty++;
  let inMarket = 0;
  for (const p of book.positions.values()) if (p.marketId === market.id) inMarket++;
  if (want.length > 0 && want.length < inMarket) stats.partial++;
  for (const c of scanned) {
    if (c.position.size > 0n) stats.liquidatedLongs++;
    else stats.liquidatedShorts++;
  }
  return scanned;
}

class Workload {
  readonly book = new Book();
  risk!: RiskEngine;
  readonly markets: SimMarket[] = [];
  readonly traders: Address[] = [];
  readonly stats = emptyStats();
  private block = 1n;
  private logIndex = 0;
  now = 1_700_000_000n;
  step = 0;

  constructor(private readonly rng: Rng) {}

  private ref(): LogRef {
    // several logs per block now and then, always strictly after the previous one
    if (this.rng.chance(0.7)) {
      this.block += BigInt(this.rng.int(1, 3));
      this.logIndex = this.rng.int(0, 3);
    } else {
      this.logIndex += this.rng.int(1, 2);
    }
    return {
      blockNumber: this.block,
      logIndex: this.logIndex,
      blockHash: `0x${this.block.toString(16)}` as Hex,
      transactionHash: `0x${this.logIndex.toString(16)}` as Hex,
    };
  }

  /** Book first, then the risk engine follows the change: the keeper's pipeline. */
  apply(event: ExchangeEvent): void {
    const change = this.book.apply(event);
    if (!change) throw new Error(`event ignored by the book: ${event.kind} at ${event.ref.blockNumber}`);
    this.risk.apply(change);
    if (this.risk.index.size !== this.book.positions.size) {
      throw new Error(
        `after ${event.kind}: index holds ${this.risk.index.size} positions, book ${this.book.positions.size}`,
      );
    }
  }

  market(id: number): Market {
    const market = this.book.markets.get(id);
    if (!market) throw new Error(`no market ${id}`);
    return market;
  }

  listMarkets(count: number): void {
    const used = new Set<bigint>();
    const bases = [6_000_000_000_000n, 300_000_000_000n, 15_000_000_000n, 15_000_000n, 12_345n];
    for (let id = 0; id < count; id++) {
      // maintenance 0.5% - 10%, different per market
      let mmr: bigint;
      do mmr = this.rng.big(pct(0.5), pct(10));
      while (used.has(mmr));
      used.add(mmr);
      const initial = mmr + this.rng.big(1n, mmr * 2n);
      this.book.apply({
        kind: "marketListed",
        ref: this.ref(),
        marketId: id,
        name: `M${id}-USD`,
        oracle: `0x${(id + 1).toString(16).padStart(40, "0")}` as Address,
        priceScale: PRICE_SCALE,
        initialMarginRatio: initial,
        maintenanceMarginRatio: mmr,
        liquidationFeeRatio: this.rng.big(0n, mmr),
        tradingFeeRatio: this.rng.big(0n, mmr - 1n),
        maxOracleAge: 3600n,
      });
      const base = this.rng.pick(bases);
      this.markets.push({ id, basePriceUnits: base, priceUnits: base });
    }
    this.risk = new RiskEngine(this.book);
    for (const m of this.markets) this.fundingUpdate(m, true);
  }

  makeTraders(count: number): void {
    for (let i = 0; i < count; i++) {
      let hex = this.rng.bits(160).toString(16).padStart(40, "0");
      // mixed case now and then: the book keys by the lower-cased address
      if (this.rng.chance(0.3)) hex = [...hex].map((ch) => (this.rng.chance(0.5) ? ch.toUpperCase() : ch)).join("");
      this.traders.push(`0x${hex}` as Address);
    }
  }

  priceWad(m: SimMarket): bigint {
    return m.priceUnits * PRICE_SCALE;
  }

  currentIndex(m: SimMarket): bigint {
    return fundingIndexAt(this.market(m.id).funding, this.priceWad(m), this.now);
  }

  fundingUpdate(m: SimMarket, initial = false): void {
    const price = this.priceWad(m);
    const index = initial ? 0n : this.currentIndex(m);
    let delta: bigint;
    const r = this.rng.float();
    if (r < 0.4)
      delta = this.rng.big(0n, 10n ** 15n); // dust
    else if (r < 0.8)
      delta = this.rng.big(0n, price / 20n + 1n); // up to 5% of the price
    else if (r < 0.95)
      delta = this.rng.big(0n, price); // a whole price
    else delta = this.rng.magnitude(90); // absurd
    // rate: WAD of mark per second, both signs, from 1e-12/s to ~1e-5/s; zero now and then
    const rate = this.rng.chance(0.1) ? 0n : this.rng.sign() * this.rng.big(1_000_000n, 10n ** 13n);
    this.apply({
      kind: "fundingUpdated",
      ref: this.ref(),
      marketId: m.id,
      cumulativeFundingIndex: index + this.rng.sign() * delta,
      fundingRatePerSecond: rate,
      timestamp: this.now,
    });
    this.stats.fundingUpdates++;
  }

  /** A fresh position state in market m: mostly realistic, sometimes tiny or absurd. */
  randomState(m: SimMarket): PositionState {
    const market = this.market(m.id);
    const side = this.rng.sign();
    const index = this.currentIndex(m);
    const lastFundingIndex = this.rng.chance(0.7)
      ? index
      : this.rng.chance(0.8)
        ? index + this.rng.sign() * this.rng.big(0n, this.priceWad(m) / 50n + 1n)
        : this.rng.sign() * this.rng.magnitude(80);
    const r = this.rng.float();
    if (r < 0.65) {
      // realistic: entry near the mark, leverage 1x to a little beyond the maximum
      const entry = scaled(this.priceWad(m), PPM + BigInt(this.rng.int(-50_000, 50_000)));
      const size = this.rng.big(1n, 10n ** BigInt(this.rng.int(12, 25)));
      const openNotional = side > 0n ? ceilMul(size, entry) : (size * entry) / WAD;
      const maxLeverage = Number(WAD) / Number(market.initialMarginRatio);
      const leverage = 1 + this.rng.float() * (maxLeverage * 1.3 - 1);
      const margin = (openNotional * 1000n) / BigInt(Math.max(1000, Math.round(leverage * 1000)));
      return { size: side * size, openNotional, margin, lastFundingIndex };
    }
    if (r < 0.8) {
      // tiny: wei-sized positions and margins, possibly negative
      return {
        size: side * this.rng.big(1n, 1000n),
        openNotional: this.rng.big(0n, 10n ** 7n),
        margin: this.rng.sign() * this.rng.big(0n, 10n ** 6n),
        lastFundingIndex,
      };
    }
    // anything: huge or tiny sizes, notionals and margins of any sign
    return {
      size: side * (this.rng.magnitude(100) + 1n),
      openNotional: this.rng.magnitude(130),
      margin: this.rng.sign() * this.rng.magnitude(this.rng.chance(0.5) ? 80 : 130),
      lastFundingIndex,
    };
  }

  snapshotEvent(kind: "positionChanged" | "marginChanged", trader: Address, marketId: number, s: PositionState) {
    const common = {
      ref: this.ref(),
      trader,
      marketId,
      size: s.size,
      openNotional: s.openNotional,
      margin: s.margin,
      fundingIndex: s.lastFundingIndex,
    };
    const event: ExchangeEvent =
      kind === "positionChanged"
        ? { kind, ...common, price: this.priceWad(this.markets[marketId] as SimMarket), sizeDelta: s.size }
        : { kind, ...common, marginDelta: s.margin };
    this.apply(event);
  }

  openPositions(marketId?: number): TrackedPosition[] {
    const out: TrackedPosition[] = [];
    for (const p of this.book.positions.values()) if (marketId === undefined || p.marketId === marketId) out.push(p);
    return out;
  }

  open(): void {
    const m = this.rng.pick(this.markets);
    const trader = this.rng.pick(this.traders);
    // copy trading now and then: the very state of another position, hence the very same index key
    const twins = this.rng.chance(0.1) ? this.openPositions(m.id) : [];
    const state = twins.length > 0 ? this.rng.pick(twins) : this.randomState(m);
    this.snapshotEvent("positionChanged", trader, m.id, state);
  }

  changeSize(p: TrackedPosition): void {
    const m = this.markets[p.marketId] as SimMarket;
    const r = this.rng.float();
    let size: bigint;
    if (r < 0.4)
      size = scaled(p.size, BigInt(this.rng.int(1, 3_000_000))); // shrink or grow
    else if (r < 0.6)
      size = -p.size; // flip side
    else if (r < 0.8) size = p.size + this.rng.sign() * this.rng.magnitude(70);
    else size = p.size + this.rng.sign(); // one wei
    if (size === 0n) size = p.size;
    const ratioPpm = (PPM * (size < 0n ? -size : size)) / (p.size < 0n ? -p.size : p.size) + 1n;
    const settle = this.rng.chance(0.6);
    const index = this.currentIndex(m);
    this.snapshotEvent("positionChanged", p.trader, p.marketId, {
      size,
      openNotional: scaled(p.openNotional, ratioPpm),
      margin: settle ? p.margin - fundingOwed(p.size, p.lastFundingIndex, index) : p.margin,
      lastFundingIndex: settle ? index : p.lastFundingIndex,
    });
  }

  changeMargin(p: TrackedPosition): void {
    const m = this.markets[p.marketId] as SimMarket;
    const r = this.rng.float();
    let delta: bigint;
    if (r < 0.5) delta = scaled(p.margin < 0n ? -p.margin : p.margin, BigInt(this.rng.int(0, 500_000)));
    else if (r < 0.8) delta = this.rng.magnitude(90);
    else delta = this.rng.big(1n, 10n);
    const index = this.currentIndex(m);
    const settle = this.rng.chance(0.5);
    this.snapshotEvent("marginChanged", p.trader, p.marketId, {
      size: p.size,
      openNotional: p.openNotional,
      margin: (settle ? p.margin - fundingOwed(p.size, p.lastFundingIndex, index) : p.margin) + this.rng.sign() * delta,
      lastFundingIndex: settle ? index : p.lastFundingIndex,
    });
  }

  close(p: TrackedPosition): void {
    this.snapshotEvent(this.rng.chance(0.8) ? "positionChanged" : "marginChanged", p.trader, p.marketId, {
      size: 0n,
      openNotional: 0n,
      margin: 0n,
      lastFundingIndex: this.currentIndex(this.markets[p.marketId] as SimMarket),
    });
    this.stats.closes++;
  }

  liquidate(p: TrackedPosition): void {
    const m = this.markets[p.marketId] as SimMarket;
    this.apply({
      kind: "positionLiquidated",
      ref: this.ref(),
      trader: p.trader,
      marketId: p.marketId,
      keeper: "0x00000000000000000000000000000000000000aa",
      size: p.size,
      price: this.priceWad(m),
      marginBalance: 0n,
      keeperReward: 0n,
      badDebt: 0n,
    });
    this.stats.liquidations++;
  }

  movePrice(m: SimMarket): void {
    const r = this.rng.float();
    let ppm: bigint;
    if (r < 0.7)
      ppm = PPM + BigInt(this.rng.int(-10_000, 10_000)); // within 1%
    else if (r < 0.85)
      ppm = BigInt(this.rng.int(100_000, 800_000)); // crash: -20% to -90%
    else ppm = BigInt(this.rng.int(1_200_000, 4_000_000)); // squeeze: +20% to +300%
    let next = scaled(m.priceUnits, ppm);
    if (next < m.basePriceUnits / 50n || next > m.basePriceUnits * 50n || next < 1n) {
      next = scaled(m.basePriceUnits, PPM + BigInt(this.rng.int(-100_000, 100_000)));
    }
    m.priceUnits = next > 0n ? next : 1n;
    this.check(m, this.priceWad(m), this.now, "price move");
  }

  check(m: SimMarket, price: bigint, timestamp: bigint, what: string): Candidate[] {
    return assertSameAsScan(this.book, this.risk, this.market(m.id), price, timestamp, this.stats, what);
  }

  /**
   * Probes a position's exact liquidation price L (oracle units) at L - 1, L and L + 1. At the funding time the
   * index does not depend on the price, so L is exact there and the position must flip across it; later, L is
   * refined for the price-dependent accrual.
   */
  probeBoundary(p: TrackedPosition): void {
    const m = this.markets[p.marketId] as SimMarket;
    const market = this.market(p.marketId);
    const atFundingTime = this.rng.chance(0.5);
    const timestamp = atFundingTime ? market.funding.lastFundingTime : this.now;
    let index = fundingIndexAt(market.funding, this.priceWad(m), timestamp);
    let l = liquidationPriceUnits(p, market, index);
    for (let i = 0; i < 3 && !atFundingTime && l > 0n; i++) {
      index = fundingIndexAt(market.funding, l * market.priceScale, timestamp);
      l = liquidationPriceUnits(p, market, index);
    }
    if (l === 0n) {
      this.check(m, market.priceScale, timestamp, "boundary probe (price 1 unit)");
      return;
    }
    this.stats.boundaryProbes++;
    const verdicts: boolean[] = [];
    for (const units of [l - 1n, l, l + 1n]) {
      if (units <= 0n) {
        verdicts.push(false);
        continue;
      }
      const price = units * market.priceScale;
      const found = this.check(m, price, timestamp, `boundary probe ${units - l} around L=${l}`);
      verdicts.push(found.some((c) => c.position.key === p.key));
    }
    if (atFundingTime) {
      // the probe really is at the boundary: liquidatable at L, not on the healthy side of it
      const [below, at, above] = verdicts;
      const healthy = p.size > 0n ? above : below;
      if (at !== true || healthy !== false) {
        const h = health(p, market.maintenanceMarginRatio, l * market.priceScale, index);
        throw new Error(
          `liquidationPriceUnits is not the boundary of ${p.key} (size ${p.size}): L=${l}, verdicts ${verdicts} (mb ${h.marginBalance} req ${h.maintenanceRequirement})`,
        );
      }
      this.stats.boundaryFlips++;
    }
  }

  /** A RiskEngine built from the book as it stands must answer as the one that followed every change. */
  rebuildAndCompare(): void {
    const fresh = new RiskEngine(this.book);
    expect(fresh.index.size).toBe(this.book.positions.size);
    for (const m of this.markets) {
      const live = this.risk.liquidatable(m.id, this.priceWad(m), this.now).map(describeCandidate).sort();
      const rebuilt = fresh.liquidatable(m.id, this.priceWad(m), this.now).map(describeCandidate).sort();
      expect(rebuilt).toEqual(live);
    }
    this.stats.rebuilt++;
  }

  run(steps: number): void {
    for (this.step = 0; this.step < steps; this.step++) {
      const r = this.rng.float();
      const positions = this.openPositions();
      const some = positions.length > 0 ? this.rng.pick(positions) : undefined;
      if (r < 0.3 || !some) this.open();
      else if (r < 0.36) this.changeSize(some);
      else if (r < 0.44) this.changeMargin(some);
      else if (r < 0.48) this.close(some);
      else if (r < 0.55) this.liquidate(some);
      else if (r < 0.6) {
        this.now += BigInt(this.rng.int(0, 3600));
        this.fundingUpdate(this.rng.pick(this.markets));
      } else if (r < 0.65) {
        this.now += BigInt(this.rng.chance(0.5) ? this.rng.int(1, 60) : this.rng.int(3600, 7 * 86_400));
      } else if (r < 0.85) {
        this.now += BigInt(this.rng.int(0, 30));
        this.movePrice(this.rng.pick(this.markets));
      } else if (r < 0.99) this.probeBoundary(some);
      else this.rebuildAndCompare();
      // keepers liquidate what they find: sometimes sweep a market's liquidatable set
      if (this.rng.chance(0.01)) {
        const m = this.rng.pick(this.markets);
        for (const c of this.check(m, this.priceWad(m), this.now, "sweep")) this.liquidate(c.position);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------- tests

describe("LiquidationIndex (property: the index's answer is the exact full scan's)", () => {
  const SEEDS = seeds([1, 2, 3, 0xc0ffee, 20240601, 77777]);

  for (const seed of SEEDS) {
    it(`random workload, seed ${seed}`, () => {
      withSeed(seed, (rng) => {
        const w = new Workload(rng);
        w.listMarkets(rng.int(2, 3));
        w.makeTraders(rng.int(60, 120));
        for (let i = 0; i < 80; i++) w.open();
        w.run(4000);
        const s = w.stats;
        // thousands of comparisons, and not vacuous ones
        expect(s.checks).toBeGreaterThan(900);
        expect(s.nonEmpty).toBeGreaterThan(s.checks / 5);
        expect(s.partial).toBeGreaterThan(s.checks / 10);
        expect(s.liquidatedLongs).toBeGreaterThan(0);
        expect(s.liquidatedShorts).toBeGreaterThan(0);
        expect(s.boundaryProbes).toBeGreaterThan(100);
        expect(s.boundaryFlips).toBeGreaterThan(50);
        expect(s.fundingUpdates).toBeGreaterThan(50);
        expect(s.closes + s.liquidations).toBeGreaterThan(100);
        expect(w.risk.index.size).toBe(w.book.positions.size);
      });
    });
  }

  it("a position is a candidate exactly at its liquidation price, whatever the rounding (tiny to huge positions)", () => {
    // One position per index, priced at its exact boundary L (funding index fixed): every rounding of the contract
    // (notional, funding owed, maintenance) can land against the trader at once, most visibly for wei-sized
    // positions, where the key's integer margins (+3 / -4 wei) matter more than its relative slack.
    for (const seed of SEEDS.slice(0, 3)) {
      withSeed(seed, (rng) => {
        let probes = 0;
        for (let i = 0; i < 10_000; i++) {
          const mmr = rng.big(pct(0.5), pct(10));
          const tiny = rng.chance(0.7);
          const size = rng.sign() * (tiny ? rng.big(1n, 10n ** BigInt(rng.int(0, 6))) : rng.magnitude(100) + 1n);
          const position: TrackedPosition = {
            key: `0:${i}`,
            trader: "0x0000000000000000000000000000000000000001",
            marketId: 0,
            size,
            openNotional: tiny ? rng.big(0n, 10n ** 7n) : rng.magnitude(130),
            margin: rng.sign() * (tiny ? rng.big(0n, 10n ** 6n) : rng.magnitude(125)),
            lastFundingIndex: rng.sign() * rng.magnitude(tiny ? 20 : 80),
          };
          const fundingIndex = rng.sign() * rng.magnitude(rng.chance(0.5) ? 60 : 90);
          const market = { priceScale: PRICE_SCALE, initialMarginRatio: WAD, maintenanceMarginRatio: mmr };
          const l = liquidationPriceUnits(position, { ...market, liquidationFeeRatio: 0n }, fundingIndex);
          if (l === 0n) continue;
          const price = l * PRICE_SCALE;
          const h = health(position, mmr, price, fundingIndex);
          if (!h.liquidatable) throw new Error(`${size} not liquidatable at its liquidation price ${l}`);
          const index = new LiquidationIndex();
          index.addMarket(0, mmr);
          index.upsert(position);
          let visited = false;
          index.candidates(0, price, fundingIndex, (p) => {
            if (p === position) visited = true;
          });
          if (!visited) {
            throw new Error(
              `missed at its liquidation price: size ${size} openNotional ${position.openNotional} margin ${position.margin} lastFundingIndex ${position.lastFundingIndex} index ${fundingIndex} mmr ${mmr} L ${l}`,
            );
          }
          probes++;
        }
        expect(probes).toBeGreaterThan(5000);
      });
    }
  });

  it("realistic positions: the index visits few positions that the exact check then drops", () => {
    for (const seed of SEEDS.slice(0, 2)) {
      withSeed(seed, (rng) => {
        const w = new Workload(rng);
        w.listMarkets(3);
        w.makeTraders(300);
        let opened = 0;
        while (opened < 600) {
          const m = rng.pick(w.markets);
          const s = w.randomState(m);
          // keep only the realistic kind: sizes of at least 1e12 wei and a positive margin
          if ((s.size < 0n ? -s.size : s.size) < 10n ** 12n || s.margin <= 0n) continue;
          w.snapshotEvent("positionChanged", rng.pick(w.traders), m.id, s);
          opened++;
        }
        let visited = 0;
        let confirmed = 0;
        for (let i = 0; i < 300; i++) {
          const m = rng.pick(w.markets);
          m.priceUnits = scaled(m.basePriceUnits, PPM + BigInt(rng.int(-150_000, 150_000)));
          w.now += BigInt(rng.int(0, 600));
          const market = w.market(m.id);
          const index = fundingIndexAt(market.funding, w.priceWad(m), w.now);
          w.risk.index.candidates(m.id, w.priceWad(m), index, () => visited++);
          confirmed += w.check(m, w.priceWad(m), w.now, "tightness").length;
        }
        expect(confirmed).toBeGreaterThan(100);
        // only positions within a few wei of their boundary are false candidates
        expect(visited - confirmed).toBeLessThanOrEqual(Math.ceil(confirmed / 100));
      });
    }
  });
});

describe("LiquidationIndex membership", () => {
  /** Every position the index holds for a market, each side's walk taken to its end by an extreme funding index. */
  function indexed(risk: RiskEngine, marketId: number): string[] {
    const keys: string[] = [];
    risk.index.candidates(marketId, 1n, 10n ** 70n, (p) => keys.push(p.key)); // every long
    risk.index.candidates(marketId, 1n, -(10n ** 70n), (p) => keys.push(p.key)); // every short
    return keys.sort();
  }

  it("positions with identical states (one key) are all found, and leave the index one by one", () => {
    withSeed(seeds([7])[0] as number, (rng) => {
      const w = new Workload(rng);
      w.listMarkets(2);
      w.makeTraders(60);
      const m = w.markets[0] as SimMarket;
      const market = w.market(m.id);
      const index = w.currentIndex(m);
      const price = w.priceWad(m);
      const long: PositionState = {
        size: 10n ** 18n,
        openNotional: price,
        margin: price / 5n,
        lastFundingIndex: index,
      };
      const short: PositionState = { ...long, size: -long.size };
      const twins = w.traders.slice(0, 40);
      for (const [i, trader] of twins.entries()) {
        w.snapshotEvent("positionChanged", trader, m.id, i % 2 === 0 ? long : short);
      }
      // a few distinct neighbours
      for (const trader of w.traders.slice(40)) w.snapshotEvent("positionChanged", trader, m.id, w.randomState(m));
      expect(indexed(w.risk, m.id)).toEqual(
        w
          .openPositions(m.id)
          .map((p) => p.key)
          .sort(),
      );

      const lLong = liquidationPriceUnits(long, market, index);
      const lShort = liquidationPriceUnits(short, market, index);
      expect(lLong).toBeGreaterThan(0n);
      expect(lShort).toBeGreaterThan(lLong);
      const at = market.funding.lastFundingTime;
      const count = (units: bigint, size: bigint) =>
        assertSameAsScan(w.book, w.risk, market, units * PRICE_SCALE, at, w.stats, "twins").filter(
          (c) => c.position.size === size && twins.some((t) => c.position.trader === t),
        ).length;
      let remaining = twins.length / 2;
      expect(count(lLong, long.size)).toBe(remaining);
      expect(count(lLong + 1n, long.size)).toBe(0);
      expect(count(lShort, short.size)).toBe(remaining);
      expect(count(lShort - 1n, short.size)).toBe(0);

      // closing, liquidating or re-sizing twins one at a time leaves exactly the others in the shared key
      for (const [i, trader] of twins.entries()) {
        if (i % 2 === 1) continue;
        for (const t of [trader, twins[i + 1] as Address]) {
          const p = w.book.positions.get(`${m.id}:${t.toLowerCase()}`) as TrackedPosition;
          const r = rng.float();
          if (r < 0.4) w.close(p);
          else if (r < 0.7) w.liquidate(p);
          else w.snapshotEvent("marginChanged", t, m.id, { ...p, margin: p.margin * 3n });
        }
        remaining--;
        expect(count(lLong, long.size)).toBe(remaining);
        expect(count(lShort, short.size)).toBe(remaining);
        expect(indexed(w.risk, m.id)).toEqual(
          w
            .openPositions(m.id)
            .map((p) => p.key)
            .sort(),
        );
      }
      expect(w.risk.index.size).toBe(w.book.positions.size);
    });
  });

  it("closing, liquidating and flipping positions keeps the index equal to the book's open positions", () => {
    withSeed(seeds([42])[0] as number, (rng) => {
      const w = new Workload(rng);
      w.listMarkets(2);
      w.makeTraders(200);
      for (const trader of w.traders) {
        for (const m of w.markets) {
          if (!rng.chance(0.75)) continue;
          const s = w.randomState(m);
          w.snapshotEvent("positionChanged", trader, m.id, {
            ...s,
            openNotional: s.openNotional % 10n ** 40n,
            margin: s.margin % 10n ** 40n,
            lastFundingIndex: w.currentIndex(m),
          });
        }
      }
      const open = () => w.openPositions().length;
      const opened = open();
      expect(opened).toBeGreaterThan(250);
      expect(w.risk.index.size).toBe(opened);

      const expectIndexMatchesBook = () => {
        expect(w.risk.index.size).toBe(w.book.positions.size);
        for (const m of w.markets) {
          expect(indexed(w.risk, m.id)).toEqual(
            w
              .openPositions(m.id)
              .map((p) => p.key)
              .sort(),
          );
        }
      };
      expectIndexMatchesBook();

      const all = w.openPositions();
      const closed = all.slice(0, 80);
      const liquidated = all.slice(80, 130);
      const flipped = all.slice(130, 160);
      for (const p of closed) w.close(p);
      for (const p of liquidated) w.liquidate(p);
      for (const p of flipped) {
        w.snapshotEvent("positionChanged", p.trader, p.marketId, { ...p, size: -p.size });
      }
      expect(w.risk.index.size).toBe(opened - 130);
      expectIndexMatchesBook();
      // removed positions never come back as liquidatable, even where everything is
      const gone = new Set([...closed, ...liquidated].map((p) => p.key));
      for (const m of w.markets) {
        for (const units of [1n, m.basePriceUnits * 1000n]) {
          const found = w.risk.liquidatable(m.id, units * PRICE_SCALE, w.now);
          expect(found.length).toBeGreaterThan(0);
          expect(found.filter((c) => gone.has(c.position.key))).toEqual([]);
        }
      }
      // a flipped position sits on its new side only
      for (const p of flipped) {
        const now = w.book.positions.get(p.key);
        expect(now?.size).toBe(-p.size);
      }

      // liquidating an unknown position and removing an unknown key change nothing
      const before = w.risk.index.size;
      w.risk.index.remove("0:0x0000000000000000000000000000000000000bad");
      const change = w.book.apply({
        kind: "positionLiquidated",
        ref: { blockNumber: 10n ** 9n, logIndex: 0, blockHash: "0x01", transactionHash: "0x02" },
        trader: "0x0000000000000000000000000000000000000bad",
        marketId: 0,
        keeper: "0x00000000000000000000000000000000000000aa",
        size: 1n,
        price: 1n,
        marginBalance: 0n,
        keeperReward: 0n,
        badDebt: 0n,
      });
      if (change) w.risk.apply(change);
      expect(w.risk.index.size).toBe(before);

      // and removing everything empties it
      for (const p of w.openPositions()) w.risk.index.remove(p.key);
      expect(w.risk.index.size).toBe(0);
      for (const m of w.markets) expect(indexed(w.risk, m.id)).toEqual([]);
    });
  });
});
