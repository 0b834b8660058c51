/**
 * The follow step's decision, as data: what a head just seen means against the last block followed (the
 * checkpoint) and what the window holds. Pure: no I/O, no clock, no state. Where the answer needs the chain (is a
 * block we hold still canonical?) it says which block to check (`maybeReorg`); `settle` takes the chain's answer.
 * The table is in README.md ("The follow step as a state machine"); the watcher's I/O acts on the outcome.
 *
 * Invariants: being behind is never a reorganisation; only evidence (another hash at a height the window holds, or
 * the checkpoint no longer on the chain) is. A head one past the checkpoint and on top of it is one round trip
 * (`extend`) only when a read can pin the block (some market is listed) and nothing is pending under the checkpoint.
 */

import type { Hex } from "viem";
import type { Checkpoint } from "./types.ts";

/** The head just seen, as far as reconciling it needs. */
export interface SeenHead {
  readonly number: bigint;
  readonly hash: Hex;
  readonly parentHash: Hex;
}

export interface ReconcileInput {
  readonly head: SeenHead;
  /** The last block followed (undefined: none yet, or everything was forgotten). */
  readonly checkpoint: Checkpoint | undefined;
  /** A tick was handed on since the checkpoint was set by a backfill, a rollback or a re-index. */
  readonly ticked: boolean;
  /** Some market is listed: an oracle read at the head's hash pins the block. */
  readonly hasMarkets: boolean;
  /** Every block up to the checkpoint is applied (processed is the checkpoint's number). */
  readonly caughtUp: boolean;
  /** The newest block the window holds at or under a height (undefined: none that old). */
  readonly held: (number: bigint) => Checkpoint | undefined;
}

/**
 * - `duplicate`: the head is the checkpoint, ticked at already: nothing to do.
 * - `extend`: the head's parent is the checkpoint: one round trip pinned to the head's hash.
 * - `gap`: the checkpoint stands (or there is none): (processed, head] indexed by range, every oracle read at the head.
 * - `behind`: the head is under the checkpoint, on our chain as far as anything shows: waited for.
 * - `reorg`: the checkpoint is no longer on the head's chain: rolled back to the common ancestor (or rebuilt).
 * - `maybeReorg`: the chain decides: `check` is canonical (settle) → `otherwise`, else → `reorg`.
 */
export type Reconciled =
  | { readonly kind: "duplicate" | "extend" | "gap" | "behind" | "reorg" }
  | { readonly kind: "maybeReorg"; readonly check: Checkpoint; readonly otherwise: "behind" | "gap" };

export type Settled = "behind" | "gap" | "reorg";

export function reconcile(i: ReconcileInput): Reconciled {
  const { head, checkpoint: cp } = i;
  if (!cp) return { kind: "gap" };
  if (head.number === cp.number) {
    if (head.hash !== cp.hash) return { kind: "reorg" };
    return { kind: i.ticked ? "duplicate" : "gap" };
  }
  if (head.number > cp.number) {
    const next = head.number === cp.number + 1n && head.parentHash === cp.hash;
    if (next && i.ticked && i.hasMarkets && i.caughtUp) return { kind: "extend" };
    // ahead: whether the checkpoint is still on the chain is the chain's to say
    return { kind: "maybeReorg", check: cp, otherwise: "gap" };
  }
  // behind the checkpoint: waited for, unless the window holds another block at that height
  const held = i.held(head.number);
  if (!held) return { kind: "behind" };
  if (held.number === head.number) return { kind: held.hash === head.hash ? "behind" : "reorg" };
  // the newest block held under the head: still canonical means the head is only behind on our chain
  return { kind: "maybeReorg", check: held, otherwise: "behind" };
}

/** A `maybeReorg` settled by the chain's hash at `check.number` (undefined: the chain has no such block). */
export function settle(
  d: { readonly check: Checkpoint; readonly otherwise: "behind" | "gap" },
  canonical?: Hex,
): Settled {
  return canonical === d.check.hash ? d.otherwise : "reorg";
}

/**
 * A reorganisation's remedy: rolled back to the common ancestor when one is held and the blocks above it listed no
 * market; otherwise every state is forgotten and rebuilt from the deployment block.
 */
export function remedy(ancestor: Checkpoint | undefined, removesListing: boolean): "rollback" | "rebuild" {
  return ancestor !== undefined && !removesListing ? "rollback" : "rebuild";
}
