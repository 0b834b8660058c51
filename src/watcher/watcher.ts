/**
 * Follows one exchange contract: backfills its events with eth_getLogs from the deployment block, then follows
 * new heads (announced over a WebSocket subscription, or polled for), and reads every market's oracle at each new
 * head. A head that extends the last one (its parent is the block last processed) costs one round trip: its logs by
 * block hash and every oracle's answer at that hash, in one JSON-RPC batch. It hands decoded events to the state in
 * chain order and a tick (block, time, mark prices) to the keeper after each head.
 *
 * The facade the rest of the keeper uses, over small parts with one job each (README.md): the head source, the
 * pure reconcile and the step acting on it, the follow step for one head, the resumable backfill and the finality
 * floor, all sharing one WatcherState. A failed step blames the endpoint it was pinned to.
 */

import { Backfill } from "./backfill.ts";
import { HeadSource } from "./headSource.ts";
import { WatcherState } from "./state.ts";
import { step } from "./step.ts";
import type { StateAtBlock, Tick, WatchedEvent, WatcherOptions } from "./types.ts";

export { StartBlockError } from "./errors.ts";
export type {
  BookCheck,
  Head,
  HeadSubscription,
  StateAtBlock,
  Tick,
  WatchedBook,
  WatchedEvent,
  WatcherOptions,
} from "./types.ts";

/** `E`, `C`, `S`: the exchange's events, book changes and book state, which the watcher only carries. */
export class Watcher<E extends WatchedEvent = WatchedEvent, C = unknown, S = unknown> {
  private readonly s: WatcherState;
  private readonly heads: HeadSource;
  private readonly backfiller: Backfill;

  constructor(o: WatcherOptions<E, C, S>) {
    this.s = new WatcherState(o as unknown as WatcherOptions);
    this.heads = new HeadSource(this.s);
    this.backfiller = new Backfill(this.s, this.heads);
  }

  get processedBlock(): bigint {
    return this.s.processed;
  }

  get latestTick(): Tick | undefined {
    return this.s.lastTick;
  }

  /** The chain's finalized block as last read, if the RPC serves it. */
  get finalizedBlock(): bigint | undefined {
    return this.s.finality.finalized;
  }

  /**
   * Starts from a snapshot's block instead of the deployment block: the book is restored to its state (onRestore)
   * and the backfill replays from the block after it. The caller checked the block is still canonical.
   */
  resume(from: StateAtBlock<S>): void {
    this.backfiller.resume(from);
  }

  /**
   * The book at a final block, for a snapshot: the newest block held at the window's floor (the chain's finalized
   * block, or reorgDepth under the last block processed). Undefined before the backfill completes or while no
   * block that old is held. Synchronous: a consistent copy.
   */
  finalState(): StateAtBlock<S> | undefined {
    const { s } = this;
    if (!s.complete) return undefined;
    return s.finality.finalState(s.window, s.o.book, s.processed) as StateAtBlock<S> | undefined;
  }

  /**
   * Indexes every event from the deployment block (or the snapshot's, see resume) to the current head. Aborting
   * `signal` ends it after the range being applied (a stop never waits for a long backfill). Asked again after a
   * failure, it resumes (see backfill.ts).
   */
  async backfill(signal?: AbortSignal): Promise<void> {
    try {
      await this.backfiller.run(signal);
    } catch (error) {
      this.s.blame(error);
      throw error;
    }
  }

  /**
   * Our own receipt says the book is wrong at `blockNumber` (a position our liquidation found gone is still open in
   * the book after that block): the endpoint that answered that block's logs is demoted, and the blocks from there
   * are indexed again, from another endpoint, at the next step.
   */
  contradicted(blockNumber: bigint, detail: string): void {
    this.s.contradicted(blockNumber, detail);
  }

  /**
   * One step of following: checks that the last head it saw is still on the chain, indexes new blocks up to the
   * head and emits a tick. Returns false when idle.
   *
   * A reorganisation (the last head's hash changed, or the chain no longer reaches it) is rolled back: the newest
   * block the watcher holds whose hash is still canonical is the common ancestor, every book change above it is
   * undone, and the new branch is indexed from there. Only a reorganisation deeper than the blocks held (reorgDepth),
   * or one that removed a market's listing, rebuilds the state from the deployment block.
   */
  async poll(signal?: AbortSignal): Promise<boolean> {
    try {
      return await step(this.s, this.heads, signal);
    } catch (error) {
      this.s.blame(error);
      throw error;
    }
  }

  /**
   * Polls until the signal aborts. A failed I/O step is logged and retried with a backoff growing from the poll
   * interval to 30 s; a deterministic failure (see isRetryable) ends the run with that error.
   */
  async run(signal: AbortSignal): Promise<void> {
    await this.heads.run(signal, (sig) => this.poll(sig));
  }
}
