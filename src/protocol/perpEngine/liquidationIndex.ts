/**
 * Positions of each market and side ordered by a funding-relative liquidation key, so that a mark-price update
 * yields every position that may be below maintenance in O(log n + k), and a position change costs O(log n).
 *
 * Derivation (docs/risk.md has it in full). With mu = maintenanceMarginRatio / WAD and I the market's funding
 * index, the exact rules imply for a long of size s:
 *     liquidatable  =>  price < W(openNotional - margin + 3) / (s(1 - mu)) - I0/(1 - mu) + I/(1 - mu)
 * and for a short of size -a:
 *     liquidatable  =>  price > W(openNotional + margin - 4) / (a(1 + mu)) - I0/(1 + mu) + I/(1 + mu)
 * (the +3 and -4 absorb every rounding step of the contract). The first two terms depend only on the position,
 * so they are its key; funding accrual moves the whole market by I/(1 -/+ mu) and never reorders it. Keys are
 * doubles widened by a relative slack, so the index may return a few positions that are not liquidatable (the
 * exact arithmetic drops them) but never misses one.
 */
import btreeModule from "sorted-btree";
import type { TrackedPosition } from "./book.ts";
import { WAD } from "./math.ts";

// sorted-btree is CommonJS with `exports.default`: Node hands over module.exports, a bundler the class.
const BTree = ((btreeModule as { default?: unknown }).default ?? btreeModule) as typeof btreeModule.default;
type Tree = btreeModule.default<IndexEntry, undefined>;

/** Relative slack on keys and thresholds: far above double rounding (1e-16), far below any price move. */
const SLACK = 1e-12;
const WAD_NUMBER = Number(WAD);

interface IndexEntry {
  readonly key: number;
  readonly seq: number;
  readonly position: TrackedPosition;
}

const byKey = (a: IndexEntry, b: IndexEntry): number => a.key - b.key || a.seq - b.seq;

interface MarketIndex {
  readonly longs: Tree;
  readonly shorts: Tree;
  /** 1 - mu and 1 + mu as doubles. */
  readonly longFactor: number;
  readonly shortFactor: number;
}

export class LiquidationIndex {
  private readonly markets = new Map<number, MarketIndex>();
  private readonly entries = new Map<string, IndexEntry>();
  private seq = 0;

  /** Registers a market's maintenance ratio (WAD); positions of unknown markets cannot be indexed. */
  addMarket(marketId: number, maintenanceMarginRatio: bigint): void {
    if (this.markets.has(marketId)) return;
    const mu = Number(maintenanceMarginRatio) / WAD_NUMBER;
    this.markets.set(marketId, {
      longs: new BTree<IndexEntry, undefined>(undefined, byKey),
      shorts: new BTree<IndexEntry, undefined>(undefined, byKey),
      longFactor: 1 - mu,
      shortFactor: 1 + mu,
    });
  }

  /** Forgets every market and position. */
  clear(): void {
    this.markets.clear();
    this.entries.clear();
  }

  get size(): number {
    return this.entries.size;
  }

  /** Inserts or replaces a position (O(log n)). */
  upsert(position: TrackedPosition): void {
    this.remove(position.key);
    if (position.size === 0n) return;
    const market = this.markets.get(position.marketId);
    if (!market) throw new Error(`position ${position.key} in unindexed market ${position.marketId}`);
    const long = position.size > 0n;
    const entry: IndexEntry = {
      key: keyOf(position, long ? market.longFactor : market.shortFactor),
      seq: this.seq++,
      position,
    };
    (long ? market.longs : market.shorts).set(entry, undefined);
    this.entries.set(position.key, entry);
  }

  /** Removes a position (O(log n)); unknown keys are ignored. */
  remove(key: string): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    this.entries.delete(key);
    const market = this.markets.get(entry.position.marketId);
    if (!market) return;
    (entry.position.size > 0n ? market.longs : market.shorts).delete(entry);
  }

  /**
   * Every position of the market that may be liquidatable at `markPrice` (WAD) and funding index `fundingIndex`:
   * a superset of the liquidatable ones, from the ends of the two sides, O(log n + k).
   */
  candidates(marketId: number, markPrice: bigint, fundingIndex: bigint, visit: (p: TrackedPosition) => void): void {
    const market = this.markets.get(marketId);
    if (!market) return;
    const price = Number(markPrice);
    const index = Number(fundingIndex);

    // longs: key > price - I/(1 - mu)
    const longShift = index / market.longFactor;
    const longThreshold = price - longShift - SLACK * (Math.abs(price) + Math.abs(longShift));
    for (const [entry] of market.longs.entriesReversed()) {
      if (entry.key <= longThreshold) break;
      visit(entry.position);
    }
    // shorts: key < price - I/(1 + mu)
    const shortShift = index / market.shortFactor;
    const shortThreshold = price - shortShift + SLACK * (Math.abs(price) + Math.abs(shortShift));
    for (const [entry] of market.shorts.entries()) {
      if (entry.key >= shortThreshold) break;
      visit(entry.position);
    }
  }
}

/** The position's funding-relative key, widened toward liquidation by the relative slack. */
function keyOf(p: TrackedPosition, factor: number): number {
  const lastIndexTerm = Number(p.lastFundingIndex) / factor;
  if (p.size > 0n) {
    const priceTerm = (Number(p.openNotional - p.margin + 3n) * WAD_NUMBER) / (Number(p.size) * factor);
    const key = priceTerm - lastIndexTerm;
    return key + SLACK * (Math.abs(priceTerm) + Math.abs(lastIndexTerm));
  }
  const priceTerm = (Number(p.openNotional + p.margin - 4n) * WAD_NUMBER) / (Number(-p.size) * factor);
  const key = priceTerm - lastIndexTerm;
  return key - SLACK * (Math.abs(priceTerm) + Math.abs(lastIndexTerm));
}
