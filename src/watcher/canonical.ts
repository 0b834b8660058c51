/**
 * The chain's word on blocks the watcher holds: the I/O behind a `maybeReorg` (see reconcile.ts), the common
 * ancestor a rollback goes back to, and the check that a range's answers were of the head's chain. All asked of the
 * endpoint the step is pinned to.
 *
 * Invariant: a block the chain does not have (BlockNotFoundError) is not canonical; any other failure fails the step.
 */

import { BlockNotFoundError, type Hex, type PublicClient } from "viem";
import type { WatcherState } from "./state.ts";
import type { Checkpoint } from "./types.ts";

/** The chain's hash at a height, or undefined when it has no block there. */
export function canonicalHash(client: PublicClient, number: bigint): Promise<Hex | undefined> {
  return client.getBlock({ blockNumber: number }).then(
    (b) => b.hash,
    (error: unknown) => {
      if (error instanceof BlockNotFoundError) return undefined;
      throw error;
    },
  );
}

/** The newest block held whose hash the chain still has at its height, or undefined when none is. */
export async function commonAncestor(s: WatcherState, head: Checkpoint): Promise<Checkpoint | undefined> {
  for (const entry of s.window.newestFirst()) {
    if (entry.number > head.number) continue;
    const canonical = entry.number === head.number ? head.hash : await canonicalHash(s.ep.client, entry.number);
    if (canonical === entry.hash) return { number: entry.number, hash: entry.hash };
  }
  return undefined;
}

/**
 * A range query may answer from another fork than the head's: each block held above `above` and under the head
 * (the blocks that had events) is checked against the chain, all in one batched request.
 */
export async function heldBlocksCanonical(s: WatcherState, above: bigint, head: bigint): Promise<boolean> {
  const held = s.window.newestFirst().filter((e) => e.number > above && e.number < head);
  if (held.length === 0) return true;
  const canonical = await Promise.all(held.map((e) => canonicalHash(s.ep.client, e.number)));
  return held.every((e, i) => canonical[i] === e.hash);
}
