import type { Book, BookChange, TrackedPosition } from "./book.ts";
import { LiquidationIndex } from "./liquidationIndex.ts";
import { fundingIndexAt } from "./math.ts";
import { type Candidate, confirm } from "./scan.ts";

/**
 * The risk model: follows the book's changes into the liquidation index and answers, for a market's mark price
 * and time, exactly which positions are below maintenance margin. Pure and synchronous.
 */
export class RiskEngine {
  readonly index = new LiquidationIndex();

  constructor(private readonly book: Book) {
    for (const market of book.markets.values()) this.index.addMarket(market.id, market.maintenanceMarginRatio);
    for (const position of book.positions.values()) this.index.upsert(position);
  }

  /** Indexes the book as it stands, from scratch (after a bulk of changes it did not follow one by one). */
  rebuild(): void {
    this.index.clear();
    for (const market of this.book.markets.values()) this.index.addMarket(market.id, market.maintenanceMarginRatio);
    for (const position of this.book.positions.values()) this.index.upsert(position);
  }

  /** Forgets everything (the book was reset); changes from the rebuilt book follow. */
  reset(): void {
    this.index.clear();
  }

  /** Follows one change the book reported. */
  apply(change: BookChange): void {
    switch (change.type) {
      case "market": {
        const market = this.book.markets.get(change.marketId);
        if (market) this.index.addMarket(market.id, market.maintenanceMarginRatio);
        return;
      }
      case "funding":
        return; // keys are relative to the funding index: accrual moves every key of the market alike
      case "position":
        if (change.after) this.index.upsert(change.after);
        else this.index.remove(change.key);
        return;
    }
  }

  /** Whether one position is below maintenance margin at `markPrice` (WAD) at unix time `timestamp`. */
  isLiquidatable(position: TrackedPosition, markPrice: bigint, timestamp: bigint): boolean {
    const market = this.book.markets.get(position.marketId);
    if (!market) return false;
    return confirm(position, market, markPrice, fundingIndexAt(market.funding, markPrice, timestamp)) !== undefined;
  }

  /** Positions of the market below maintenance margin at `markPrice` (WAD) at unix time `timestamp`. */
  liquidatable(marketId: number, markPrice: bigint, timestamp: bigint): Candidate[] {
    const market = this.book.markets.get(marketId);
    if (!market) return [];
    const fundingIndex = fundingIndexAt(market.funding, markPrice, timestamp);
    const found: Candidate[] = [];
    this.index.candidates(marketId, markPrice, fundingIndex, (position) => {
      const candidate = confirm(position, market, markPrice, fundingIndex);
      if (candidate) found.push(candidate);
    });
    return found;
  }
}
