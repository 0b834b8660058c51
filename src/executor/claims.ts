/**
 * One owner per position: who may liquidate it now. A position is held by the planning pipeline (simulating,
 * packing, waiting for a lane) or by one attempt (a transaction of ours at one nonce). By construction:
 * - a position held by a live (non-terminal) attempt is never taken by anyone else: not by planning, not by another
 *   attempt (a reorganisation that re-claims the positions of mined attempts skips those a live attempt holds);
 * - a position is freed only by its holder (release names who frees it).
 *
 * Beside the claims: positions our own receipt showed settled (liquidated, by us or another keeper first, or no longer
 * open) are held back from planning until the book agrees, that is until the book changes them. A book that still
 * shows one of them unchanged after the receipt's block contradicts the chain: said once, for the watcher to index
 * that block again from another endpoint.
 */
import { type Attempt, isTerminal } from "./attempt.ts";

export type Holder = "planning" | Attempt;

interface Settled {
  readonly block: bigint;
  /** The book's position when the receipt was read (undefined: not in the book). */
  readonly seen: object | undefined;
  reported: boolean;
}

export class Claims {
  private readonly held = new Map<string, Holder>();
  private readonly settled = new Map<string, Settled>();
  /**
   * The book's record of each target when it was planned: what a receipt settled is compared with. The book may have
   * applied the receipt's block already when the receipt is read (then it changed since planning: nothing to hold
   * back), or not yet (then the planned record is still there: held back until the book changes it).
   */
  private readonly planned = new Map<string, object>();

  /** Remembers the record a target was planned on. */
  plannedOn(key: string, state: object): void {
    this.planned.set(key, state);
  }

  has(key: string): boolean {
    return this.held.has(key);
  }

  holder(key: string): Holder | undefined {
    return this.held.get(key);
  }

  get size(): number {
    return this.held.size;
  }

  /** Whether a live attempt other than `by` holds the position. */
  heldByOther(key: string, by?: Attempt): boolean {
    const h = this.held.get(key);
    return h !== undefined && h !== "planning" && h !== by && !isTerminal(h.status);
  }

  /**
   * Claims the positions for `by`, except those a live attempt other than `by` holds (never overwritten). Planning
   * hands over to an attempt; a terminal attempt's claim is stale and taken over. Returns the keys not claimed.
   */
  claim(keys: readonly string[], by: Holder): string[] {
    const refused: string[] = [];
    for (const key of keys) {
      if (this.heldByOther(key, by === "planning" ? undefined : by)) refused.push(key);
      else this.held.set(key, by);
    }
    return refused;
  }

  /** Frees the positions `by` holds; one held by anyone else stays held. */
  release(keys: readonly string[], by: Holder): void {
    for (const key of keys) if (this.held.get(key) === by) this.held.delete(key);
  }

  /** Every claim, for the status view and tests. */
  entries(): IterableIterator<[string, Holder]> {
    return this.held.entries();
  }

  /** Our receipt at `block` shows the position settled (or gone): held back from planning until the book agrees. */
  settledAt(key: string, block: bigint, seen: object | undefined): void {
    const planned = this.planned.get(key);
    this.planned.delete(key);
    this.settled.set(key, { block, seen: planned ?? seen, reported: false });
  }

  /** Whether the position is held back: a receipt settled it and the book still shows it as it was then. */
  heldBack(key: string, now: object | undefined): boolean {
    const s = this.settled.get(key);
    if (!s) return false;
    if (now === undefined || !same(now, s.seen)) {
      this.settled.delete(key); // the book agrees (changed or closed it): nothing to hold back
      return false;
    }
    return true;
  }

  /** The book changed the position: whatever a receipt said, it is judged afresh. */
  bookChanged(key: string): void {
    this.settled.delete(key);
  }

  /** After a reorganisation, receipts may be gone: everything is judged afresh. */
  forgetSettled(): void {
    this.settled.clear();
  }

  /**
   * Positions the book still shows unchanged although a receipt of ours settled them in a block the book has since
   * passed (`processed`): each is returned once, with the receipt's block.
   */
  contradictions(processed: bigint, current: (key: string) => object | undefined): { key: string; block: bigint }[] {
    const found: { key: string; block: bigint }[] = [];
    for (const [key, s] of this.settled) {
      if (s.reported || processed < s.block) continue;
      if (!this.heldBack(key, current(key))) continue;
      s.reported = true;
      found.push({ key, block: s.block });
    }
    return found;
  }
}

/**
 * Whether the book's record of a target is the one seen at the receipt: the same record, or one with the same fields
 * (a rollback and replay, or a restore, builds equal records anew). Nested records compare by identity, which can only
 * release a hold early, never keep one.
 */
function same(a: object, b: object | undefined): boolean {
  if (b === undefined) return false;
  if (a === b) return true;
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  const keys = Object.keys(x);
  if (keys.length !== Object.keys(y).length) return false;
  return keys.every((k) => Object.is(x[k], y[k]));
}
