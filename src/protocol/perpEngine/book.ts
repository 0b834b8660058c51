import type { Address, Hex } from "viem";
import { BookError } from "../../state/errors.ts";
import { compareRefs, type LogRef } from "../../state/events.ts";
import type { ExchangeEvent } from "./events.ts";
import type { FundingState, MarketRiskParams, PositionState } from "./math.ts";

export interface Market extends MarketRiskParams {
  readonly id: number;
  readonly name: string;
  readonly oracle: Address;
  readonly tradingFeeRatio: bigint;
  readonly maxOracleAge: bigint;
  funding: FundingState;
}

export interface TrackedPosition extends PositionState {
  /** `${marketId}:${trader}` with the trader address lower-cased. */
  readonly key: string;
  readonly trader: Address;
  readonly marketId: number;
}

/** What one applied event changed; the risk model follows these. */
export type BookChange =
  | { readonly type: "market"; readonly marketId: number }
  | { readonly type: "funding"; readonly marketId: number; readonly before: FundingState }
  | {
      readonly type: "position";
      readonly key: string;
      readonly before: TrackedPosition | undefined;
      readonly after: TrackedPosition | undefined;
    };

export function positionKey(marketId: number, trader: Address): string {
  return `${marketId}:${trader.toLowerCase()}`;
}

/** What a book holds, as plain data: what a snapshot stores, and what a book is restored from. */
export interface BookState {
  readonly markets: readonly Market[];
  readonly positions: readonly TrackedPosition[];
  /** The last event applied (undefined: none yet). */
  readonly cursor: LogRef | undefined;
}

/** The book at one block: what a snapshot holds, and what the watcher resumes from. */
export interface BookAtBlock {
  readonly blockNumber: bigint;
  readonly blockHash: Hex;
  readonly state: BookState;
}

/**
 * Every market and open position of one exchange, rebuilt from its events alone. Pure and synchronous: the
 * watcher feeds decoded events in chain order; an event at or before the last applied one is ignored, so
 * overlapping log ranges never double-count.
 */
export class Book {
  readonly markets = new Map<number, Market>();
  readonly positions = new Map<string, TrackedPosition>();
  private last: LogRef | undefined;

  /** Forgets everything, as before the first event (after a chain reorganisation). */
  reset(): void {
    this.markets.clear();
    this.positions.clear();
    this.last = undefined;
  }

  /**
   * Undoes changes this book reported, newest last in `changes` (they are undone newest first), and moves the cursor
   * back to `cursor`, the last event applied before the first of them: a reorganisation rolled back, not rebuilt.
   */
  rewind(changes: readonly BookChange[], cursor: LogRef | undefined): void {
    for (let i = changes.length - 1; i >= 0; i--) {
      const change = changes[i] as BookChange;
      switch (change.type) {
        case "market":
          this.markets.delete(change.marketId);
          break;
        case "funding": {
          const market = this.markets.get(change.marketId);
          if (market) market.funding = change.before;
          break;
        }
        case "position":
          if (change.before) this.positions.set(change.key, change.before);
          else this.positions.delete(change.key);
          break;
      }
    }
    this.last = cursor;
  }

  /**
   * Replaces everything with `state` (a snapshot loaded at start). The markets are copied: the book changes them in
   * place, and the state may be restored again (a backfill from the snapshot that failed and starts over).
   */
  restore(state: BookState): void {
    this.reset();
    for (const market of state.markets) this.markets.set(market.id, { ...market });
    for (const position of state.positions) this.positions.set(position.key, position);
    this.last = state.cursor;
  }

  /**
   * The state as it was before `changes` (which this book reported, oldest first) were applied, with `cursor` as
   * its last event; the book itself is left as it is. Positions are immutable records, so the copy shares them.
   */
  stateBefore(changes: readonly BookChange[], cursor: LogRef | undefined): BookState {
    const earlier = new Book();
    earlier.restore({ markets: [...this.markets.values()], positions: [], cursor: this.last });
    for (const [key, position] of this.positions) earlier.positions.set(key, position);
    earlier.rewind(changes, cursor);
    return {
      markets: [...earlier.markets.values()],
      positions: [...earlier.positions.values()],
      cursor: earlier.cursor,
    };
  }

  /** The last event applied, or undefined before the first. */
  get cursor(): LogRef | undefined {
    return this.last;
  }

  /** The last event a state had applied. */
  cursorOf(state: BookState): LogRef | undefined {
    return state.cursor;
  }

  /** Markets listed. */
  get marketCount(): number {
    return this.markets.size;
  }

  /** What it holds, for log lines. */
  counts(): { markets: number; positions: number } {
    return { markets: this.markets.size, positions: this.positions.size };
  }

  /**
   * Applies one event; returns what changed, or undefined when it was already applied. An event that cannot
   * follow from the state (a market never listed) throws BookError and leaves the book and its cursor untouched.
   */
  apply(event: ExchangeEvent): BookChange | undefined {
    if (this.last && compareRefs(event.ref, this.last) <= 0) return undefined;
    if (event.kind !== "marketListed" && !this.markets.has(event.marketId)) {
      throw new BookError(
        `${event.kind} in block ${event.ref.blockNumber} for market ${event.marketId}, which was never listed ` +
          "(is the exchange's deployBlock right?)",
      );
    }
    this.last = event.ref;
    switch (event.kind) {
      case "marketListed": {
        this.markets.set(event.marketId, {
          id: event.marketId,
          name: event.name,
          oracle: event.oracle,
          priceScale: event.priceScale,
          initialMarginRatio: event.initialMarginRatio,
          maintenanceMarginRatio: event.maintenanceMarginRatio,
          liquidationFeeRatio: event.liquidationFeeRatio,
          tradingFeeRatio: event.tradingFeeRatio,
          maxOracleAge: event.maxOracleAge,
          funding: { cumulativeFundingIndex: 0n, fundingRatePerSecond: 0n, lastFundingTime: 0n },
        });
        return { type: "market", marketId: event.marketId };
      }
      case "fundingUpdated": {
        const market = this.markets.get(event.marketId) as Market;
        const before = market.funding;
        market.funding = {
          cumulativeFundingIndex: event.cumulativeFundingIndex,
          fundingRatePerSecond: event.fundingRatePerSecond,
          lastFundingTime: event.timestamp,
        };
        return { type: "funding", marketId: event.marketId, before };
      }
      case "positionChanged":
      case "marginChanged": {
        const key = positionKey(event.marketId, event.trader);
        const before = this.positions.get(key);
        let after: TrackedPosition | undefined;
        if (event.size === 0n) {
          this.positions.delete(key);
        } else {
          after = {
            key,
            trader: event.trader,
            marketId: event.marketId,
            size: event.size,
            openNotional: event.openNotional,
            margin: event.margin,
            lastFundingIndex: event.fundingIndex,
          };
          this.positions.set(key, after);
        }
        return { type: "position", key, before, after };
      }
      case "positionLiquidated": {
        const key = positionKey(event.marketId, event.trader);
        const before = this.positions.get(key);
        this.positions.delete(key);
        return { type: "position", key, before, after: undefined };
      }
    }
  }
}

export { BookError };
