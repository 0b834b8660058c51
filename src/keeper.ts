/**
 * The keeper's core loop, wired: events go to the book, the book's changes to the risk model and the executor;
 * each tick's mark prices go to the risk model, and its findings to the executor.
 */

import type { Executor } from "./executor/executor.ts";
import { big, type Logger } from "./ops/logger.ts";
import type { Finding } from "./protocol/adapter.ts";
import type { Book, BookChange, BookState } from "./protocol/perpEngine/book.ts";
import type { ExchangeEvent } from "./protocol/perpEngine/events.ts";
import { describePosition } from "./protocol/perpEngine/format.ts";
import type { RiskEngine } from "./protocol/perpEngine/riskEngine.ts";
import { type Candidate, findingOf } from "./protocol/perpEngine/scan.ts";
import type { LogRef } from "./state/events.ts";
import type { Tick } from "./watcher/watcher.ts";

export interface KeeperParts {
  readonly book: Book;
  readonly risk: RiskEngine;
  readonly executor: Executor;
  readonly log: Logger;
}

/** Sees each head before the normal path does (issue 9: liquidations prepared on a pending update fire first). */
export interface TickHook {
  onTick(tick: Tick): void;
}

/** position_flagged lines written per turn of the event loop. */
const FLAG_LOG_SLICE = 5;

export class Keeper {
  /**
   * By market, the positions found below maintenance at its last tick: a position is reported when it enters
   * this set, so again after it recovered or changed and crossed once more.
   */
  private readonly flagged = new Map<number, Set<string>>();
  private lastTick: Tick | undefined;
  /**
   * Replayed history (a backfill) is applied to the book alone, and the risk index rebuilt from the book once, before
   * it is next asked: a position that changed a hundred times in history is indexed once, not a hundred times.
   */
  private indexStale = false;
  liquidationsOurs = 0;
  /** By market, the block at which its mark price last moved (between two heads the keeper saw). */
  private readonly priceMoved = new Map<number, bigint>();
  /** The precomputer, when pending oracle updates are acted on. */
  hook: TickHook | undefined;

  constructor(private readonly p: KeeperParts) {}

  /** Forgets the chain's state before it is rebuilt (after a reorganisation); attempts under way go on. */
  reset(): void {
    this.p.book.reset();
    this.p.risk.reset();
    this.indexStale = false;
    this.flagged.clear();
  }

  /** The risk index follows the book (rebuilt from it after replayed history). */
  private indexed(): void {
    if (!this.indexStale) return;
    this.p.risk.rebuild();
    this.indexStale = false;
  }

  /**
   * Replaces the chain's state with a snapshot's: the book, and the risk index rebuilt from it. Attempts under way
   * go on (the executor reconciles them with the chain, not the book).
   */
  restore(state: BookState): void {
    this.reset();
    this.p.book.restore(state);
    this.indexStale = true;
  }

  /**
   * Undoes what a reorganisation removed: the book goes back to `cursor`, and the risk index and the executor hear
   * each position change reversed. Changes come in the order they were applied.
   */
  rollback(changes: readonly BookChange[], cursor: LogRef | undefined): void {
    this.p.book.rewind(changes, cursor);
    const stale = this.indexStale;
    for (let i = changes.length - 1; i >= 0; i--) {
      const change = changes[i] as BookChange;
      if (change.type !== "position") continue;
      const undone: BookChange = { type: "position", key: change.key, before: change.after, after: change.before };
      if (!stale) this.p.risk.apply(undone);
      this.p.executor.onTargetChanged(change.key);
      for (const keys of this.flagged.values()) keys.delete(change.key);
    }
  }

  /** Applies one chain event in order; `live` events (not replayed history) are reported. Returns what changed. */
  handleEvent(event: ExchangeEvent, live = true): BookChange | undefined {
    const change = this.p.book.apply(event);
    if (!change) return undefined;
    if (live && !this.indexStale) this.p.risk.apply(change);
    else this.indexStale = true;
    if (change.type === "position") {
      this.p.executor.onTargetChanged(change.key);
      for (const keys of this.flagged.values()) keys.delete(change.key);
    }
    if (event.kind === "positionLiquidated" && live) {
      const ours = this.p.executor.isOurs(event.keeper);
      if (ours) this.liquidationsOurs++;
      this.p.log.info(
        {
          event: "position_liquidated",
          trader: event.trader,
          marketId: event.marketId,
          liquidator: event.keeper,
          ours,
          blockNumber: big(event.ref.blockNumber),
          txHash: event.ref.transactionHash,
        },
        ours ? "position liquidated by this keeper" : "position liquidated by another keeper",
      );
    }
    return change;
  }

  /**
   * Plans again, at the last head, those of these positions still below maintenance there: freed by an inclusion
   * pass after this head's planning ran (our cancel mined, the nonce taken by another sender).
   */
  replan(keys: readonly string[]): void {
    const tick = this.lastTick;
    if (!tick || keys.length === 0) return;
    this.indexed();
    const wanted = new Set(keys);
    const markets = new Set<number>();
    for (const key of keys) {
      const position = this.p.book.positions.get(key);
      if (position) markets.add(position.marketId);
    }
    const found: Candidate[] = [];
    for (const marketId of markets) {
      const price = tick.prices.get(marketId);
      if (price === undefined) continue;
      for (const c of this.p.risk.liquidatable(marketId, price, tick.timestamp)) {
        if (wanted.has(c.position.key)) found.push(c);
      }
    }
    if (found.length > 0) this.p.executor.submit(found.map(findingOf), tick);
  }

  /** The block at which a market's mark price last moved, as the keeper saw its heads. */
  priceMovedAt(marketId: number): bigint | undefined {
    return this.priceMoved.get(marketId);
  }

  /**
   * The positions found below maintenance at the last tick that are still open, with their market (read-only, for
   * the operations figures: src/ops/leftBehind.ts).
   */
  *liquidatableKeys(): Iterable<{ key: string; marketId: number }> {
    for (const [marketId, keys] of this.flagged) {
      if (!this.lastTick?.prices.has(marketId)) continue;
      for (const key of keys) if (this.p.book.positions.has(key)) yield { key, marketId };
    }
  }

  /** The last head's tick. */
  get tick(): Tick | undefined {
    return this.lastTick;
  }

  /** The positions of a market below maintenance at a price and time that are not the chain's yet (a pending update). */
  liquidatableAt(marketId: number, markPrice: bigint, timestamp: bigint): Finding[] {
    this.indexed();
    return this.p.risk.liquidatable(marketId, markPrice, timestamp).map(findingOf);
  }

  /** Whether a position (as the book has it now) is below maintenance at this price and time; false when gone. */
  liquidatableAtPrice(key: string, markPrice: bigint, timestamp: bigint): boolean {
    const position = this.p.book.positions.get(key);
    return position !== undefined && this.p.risk.isLiquidatable(position, markPrice, timestamp);
  }

  /**
   * Whether a position is still below maintenance at the last tick's price: false when it is gone, undefined when
   * its market had no valid price.
   */
  stillLiquidatable(key: string): boolean | undefined {
    const position = this.p.book.positions.get(key);
    if (!position) return false;
    const price = this.lastTick?.prices.get(position.marketId);
    if (price === undefined || !this.lastTick) return undefined;
    return this.p.risk.isLiquidatable(position, price, this.lastTick.timestamp);
  }

  /**
   * Settles and judges our pending transactions at this head, then finds the positions below maintenance at its
   * prices and hands them, all markets together, to the executor.
   */
  handleTick(tick: Tick): void {
    this.indexed();
    const previous = this.lastTick;
    this.lastTick = tick;
    if (previous) {
      for (const [marketId, price] of tick.prices) {
        if (previous.prices.get(marketId) !== price) this.priceMoved.set(marketId, tick.blockNumber);
      }
    }
    // liquidations prepared on this head's oracle update go out before anything is planned
    this.hook?.onTick(tick);
    const all: Candidate[] = [];
    const fresh: Candidate[] = [];
    for (const [marketId, markPrice] of tick.prices) {
      const candidates = this.p.risk.liquidatable(marketId, markPrice, tick.timestamp);
      const before = this.flagged.get(marketId);
      this.flagged.set(marketId, new Set(candidates.map((c) => c.position.key)));
      for (const c of candidates) if (!before?.has(c.position.key)) fresh.push(c);
      all.push(...candidates);
    }
    // the executor first: its simulations go out before a single log line of a crash is formatted
    if (all.length > 0) this.p.executor.submit(all.map(findingOf), tick);
    this.p.executor.onHead(tick);
    this.reportFlagged(fresh, tick);
  }

  /**
   * position_flagged for each newly found position, in slices of FLAG_LOG_SLICE per turn of the event loop, so
   * that a crash of thousands never holds up the executor's replies, signing and broadcasts behind its log lines.
   */
  private reportFlagged(candidates: readonly Candidate[], tick: Tick, from = 0): void {
    const end = Math.min(from + FLAG_LOG_SLICE, candidates.length);
    for (let i = from; i < end; i++) this.logFlagged(candidates[i] as Candidate, tick);
    if (end < candidates.length) setImmediate(() => this.reportFlagged(candidates, tick, end));
  }

  private logFlagged(c: Candidate, tick: Tick): void {
    const market = this.p.book.markets.get(c.position.marketId);
    if (!market) return;
    const view = describePosition(c.position, market, c.markPrice, c.fundingIndex);
    this.p.log.info(
      {
        event: "position_flagged",
        trader: c.position.trader,
        marketId: c.position.marketId,
        market: market.name,
        side: view.side,
        size: view.size,
        entryPrice: view.entryPrice,
        markPrice: view.markPrice,
        liquidationPrice: view.liquidationPrice,
        distanceToLiquidation: view.distanceToLiquidation,
        marginBalance: view.marginBalance,
        maintenanceRequirement: view.maintenanceRequirement,
        marginRatio: view.marginRatio,
        leverage: view.leverage,
        blockNumber: big(tick.blockNumber),
      },
      `${market.name} ${view.side} of ${c.position.trader} below maintenance margin: balance ` +
        `${view.marginBalance} < ${view.maintenanceRequirement} at mark ${view.markPrice} ` +
        `(liquidation price ${view.liquidationPrice})`,
    );
  }
}
