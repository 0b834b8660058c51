/**
 * The finality floor: the block under which the chain is taken as final. It is the chain's `finalized` block where
 * the RPC serves the tag (asked once every FINALIZED_EVERY heads, riding in that head's batch), never more than
 * MAX_WINDOW_BLOCKS under the head; otherwise `reorgDepth` under the head. The window holds the blocks above it, and
 * the newest block at or under it is the anchor a snapshot is taken at.
 *
 * Invariant: asking never fails a step (a refusal leaves the configured depth standing in), and the floor never
 * rises above the head.
 */

import type { PublicClient } from "viem";
import type { StateAtBlock, WatchedBook } from "./types.ts";
import type { UnfinalizedBlocks } from "./unfinalized.ts";

/** The finalized block is asked once every this many heads (one call more in that head's batch). */
export const FINALIZED_EVERY = 32n;
/** The most blocks the window holds, however far behind the chain's finality lags. */
export const MAX_WINDOW_BLOCKS = 8192n;

export class Finality {
  /** The chain's finalized block, where the RPC serves the tag. */
  finalized: bigint | undefined;
  /** The head at which it was last asked (undefined: ask at the next chance). */
  askedAt: bigint | undefined;

  constructor(private readonly reorgDepth: bigint) {}

  /**
   * The floor of the window under `head`: the chain's finalized block where the RPC serves it (at most
   * MAX_WINDOW_BLOCKS under the head), otherwise reorgDepth under the head. Blocks at or under it are final.
   */
  floor(head: bigint): bigint {
    const f = this.finalized;
    if (f === undefined || f > head) return head - this.reorgDepth;
    return f < head - MAX_WINDOW_BLOCKS ? head - MAX_WINDOW_BLOCKS : f;
  }

  /** The finalized block, asked every FINALIZED_EVERY heads alongside other calls; never fails a step. */
  ask(client: PublicClient, head: bigint): Promise<void> | undefined {
    if (this.askedAt !== undefined && head - this.askedAt < FINALIZED_EVERY) return undefined;
    this.askedAt = head;
    return client.getBlock({ blockTag: "finalized" }).then(
      (b) => {
        if (b.number !== null) this.finalized = b.number;
      },
      () => {}, // not served (or not now): the configured depth stands in
    );
  }

  /**
   * The book at a final block, for a snapshot: the newest block held at the window's floor under `processed`.
   * Undefined while no block that old is held. Synchronous: a consistent copy.
   */
  finalState(window: UnfinalizedBlocks, book: WatchedBook, processed: bigint): StateAtBlock | undefined {
    const at = window.at(this.floor(processed));
    if (!at) return undefined;
    const cursor = at.firstAbove ? at.firstAbove.cursorBefore : book.cursor;
    return {
      blockNumber: at.entry.number,
      blockHash: at.entry.hash,
      state: book.stateBefore(at.changes, cursor),
    };
  }
}
