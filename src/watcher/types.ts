/**
 * What the watcher's parts share: the head it is handed, the tick it hands on, the checkpoint it follows from, and
 * the options it is built with. Types only: no behaviour.
 */

import type { Address, Hex, PublicClient } from "viem";
import type { Endpoints } from "../chain/endpoints.ts";
import type { Subscription } from "../chain/subscription.ts";
import type { Logger } from "../ops/logger.ts";
import type { ChainLog } from "../protocol/adapter.ts";
import type { LogRef } from "../state/events.ts";
import type { AheadPrices, PriceSource } from "./prices.ts";

/** A decoded exchange event, as far as the watcher needs it: where it sits in the chain. */
export interface WatchedEvent {
  readonly ref: LogRef;
}

/**
 * The exchange's book, as far as the watcher needs it; what it holds and how events change it are the exchange's.
 * `C`: what one applied event changed (kept per block, to be undone by a rollback); `S`: the book's whole state.
 */
export interface WatchedBook<C = unknown, S = unknown> {
  /** The last event applied: events at or before it are ignored. */
  readonly cursor: LogRef | undefined;
  /** Markets listed: while there are none, no price read pins a head's block. */
  readonly marketCount: number;
  /** The state before these changes (applied in this order, undone newest first), with its cursor: for a snapshot. */
  stateBefore(changes: readonly C[], cursor: LogRef | undefined): S;
  /** The last event a state had applied. */
  cursorOf(state: S): LogRef | undefined;
  /** What it holds, for log lines (backfill_completed): { markets: 2, positions: 1000 }. */
  counts(): Record<string, number>;
}

/** A state of the book at a block: what a snapshot holds, and what the watcher resumes from. */
export interface StateAtBlock<S = unknown> {
  readonly blockNumber: bigint;
  readonly blockHash: Hex;
  readonly state: S;
}

/** A block by number and hash: the last block followed (the checkpoint), or one the window holds. */
export interface Checkpoint {
  readonly number: bigint;
  readonly hash: Hex;
}

/** What the chain says at one head. */
export interface Tick {
  readonly blockNumber: bigint;
  /** The head's hash: what reads made for this tick are pinned to. */
  readonly blockHash?: Hex;
  readonly timestamp: bigint;
  /** The head's base fee, wei (0 before London): what the executor prices gas from. */
  readonly baseFeePerGas: bigint;
  /** Valid mark prices (WAD) by market id; a market whose oracle was refused is absent. */
  readonly prices: ReadonlyMap<number, bigint>;
  /** performance.now() when the keeper learned of this head (its announcement, or the poll's answer). */
  readonly receivedAt?: number;
  /** Each market's oracle answer time (updatedAt, unix seconds) known at this head, refused answers included. */
  readonly oracleUpdatedAt?: ReadonlyMap<number, bigint>;
  /** The prices the next block is expected to see (watcher/prices.ts AheadPrices): liquidations sent for it. */
  readonly ahead?: AheadPrices;
}

/** A live head subscription (renewed when it was open but announced nothing while blocks came). */
export type HeadSubscription = Subscription;

/** A block header, as far as the watcher needs it. */
export interface Head {
  readonly number: bigint;
  readonly hash: Hex;
  readonly parentHash: Hex;
  readonly timestamp: bigint;
  readonly baseFeePerGas: bigint | null;
  /** The header's logs bloom: what the block's logs are checked against (absent: not checked). */
  readonly logsBloom?: Hex | null;
}

/**
 * Reads the exchange's own state at a block and compares it with the book: a description of the first disagreement,
 * or undefined when they agree. What the book is checked against after a backfill, before it is trusted.
 */
export type BookCheck<B = WatchedBook> = (client: PublicClient, blockHash: Hex, book: B) => Promise<string | undefined>;

/**
 * `E`, `C`, `S`: the exchange's events, book changes and book state (the watcher only carries them). The callbacks are
 * methods, so that options typed by an exchange's own records are options of the neutral watcher too.
 */
export interface WatcherOptions<E extends WatchedEvent = WatchedEvent, C = unknown, S = unknown> {
  readonly client: PublicClient;
  /** The exchange's contracts, whose logs are its events; the first is the one deployed at `fromBlock`. */
  readonly addresses: readonly Address[];
  /** First block to index (the exchange's deployment block). */
  readonly fromBlock: bigint;
  readonly book: WatchedBook<C, S>;
  /** Where each head's mark prices come from. */
  readonly prices: PriceSource;
  readonly log: Logger;
  decode(logs: readonly ChainLog[]): E[];
  /**
   * Whether decoding needs each log's block time (`blockTimestamp`): where an endpoint leaves it out, the watcher
   * fills it in from the block's header (timestamps.ts) before decoding.
   */
  readonly timedLogs?: boolean;
  /**
   * Applies each decoded event, in chain order, and returns what it changed in the book (undefined: nothing, e.g. an
   * event already applied). `live`: seen while following the head, not replayed by a backfill or a rebuild.
   */
  onEvent(event: E, live: boolean): C | undefined;
  /**
   * The chain reorganised above a block the watcher still holds: undo these changes (in the order they were
   * applied; undo newest first) and set the book's cursor back to `cursor`. The new branch's events follow.
   */
  onRollback(changes: readonly C[], cursor: LogRef | undefined): void;
  /** Whether undoing this change un-lists a market: a reorganisation that does rebuilds from the deployment block. */
  removesListing(change: C): boolean;
  /** Replaces all state with a snapshot's (see resume); needed only when resuming. */
  onRestore?(state: S): void;
  readonly onTick: (tick: Tick) => void;
  /**
   * The chain reorganised deeper than the blocks the watcher holds (or un-listed a market): forget all state; the
   * watcher re-indexes from the deployment block.
   */
  readonly onReorg: () => void;
  readonly maxLogRange: bigint;
  readonly pollIntervalMs: number;
  /** Blocks under the head kept with their book changes, so that a reorganisation is rolled back, not rebuilt. */
  readonly reorgDepth: bigint;
  /**
   * Subscribes to new heads: each call of `onHead` wakes the watcher at once with the
   * head's header, or without one when the subscription is (re)established: the watcher then asks for the head, to
   * fill whatever came while it was not subscribed. A poll for the head covers what a subscription misses: after
   * 5 s (or pollIntervalMs, if longer) without an announcement.
   */
  readonly subscribeHeads?: (onHead: (head: Head | undefined) => void) => HeadSubscription;
  /** The client for backfill log ranges (one request each, large answers allowed); default `client`. */
  readonly logsClient?: PublicClient;
  /**
   * Every endpoint on its own, with its standing: each step is pinned to one (the one with the freshest head), and one
   * whose answers the chain contradicts is demoted. Default: `client` (and `logsClient`) as the only endpoint.
   */
  readonly endpoints?: Endpoints;
  /** The exchange's state read at the backfill's head and compared with the book (see BookCheck). */
  readonly checkBook?: BookCheck<WatchedBook<C, S>>;
  /** eth_getLogs ranges fetched at once (applied in block order). */
  readonly logConcurrency?: number;
  /** No new head for this long is reported (head_stalled); undefined: 3 block times, at least 30 s. */
  readonly headStallMs?: number;
  /**
   * The keeper's freshness by the rule /healthz follows (src/ops/freshness.ts): while it is healthy (current, or a
   * quiet chain whose head every endpoint agrees the keeper has), no head_stalled is said.
   */
  readonly freshness?: () => { readonly healthy: boolean } | undefined;
}
