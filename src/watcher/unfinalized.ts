/**
 * The blocks above finality the watcher has applied: for each one it saw (a head it ticked at, or a block holding
 * events), its hash, the book's cursor before its first event, and what its events changed. A reorganisation is
 * undone from here, newest block first, down to the highest block whose hash is still canonical. Pure: no I/O.
 *
 * Invariant: entries are in ascending block order, and every book change of a block above the oldest entry is in
 * that block's entry (so rolling back to an entry's block undoes exactly what came after it).
 */
import type { Hex } from "viem";
import type { LogRef } from "../state/events.ts";

export interface BlockEntry<C = unknown> {
  readonly number: bigint;
  readonly hash: Hex;
  /** The book's cursor before this block's first event (undefined: before any event). */
  readonly cursorBefore: LogRef | undefined;
  readonly changes: C[];
}

export class UnfinalizedBlocks<C = unknown> {
  private readonly entries: BlockEntry<C>[] = [];

  get size(): number {
    return this.entries.length;
  }

  /** Newest first: the order in which the watcher looks for the common ancestor. */
  newestFirst(): readonly BlockEntry<C>[] {
    return [...this.entries].reverse();
  }

  /** The hash held for a block, if the window has it. */
  hashAt(number: bigint): Hex | undefined {
    for (let i = this.entries.length - 1; i >= 0; i--) {
      const e = this.entries[i] as BlockEntry<C>;
      if (e.number === number) return e.hash;
      if (e.number < number) return undefined;
    }
    return undefined;
  }

  /** Records a block (once) and, if given, a change its events made. */
  record(number: bigint, hash: Hex, cursorBefore: LogRef | undefined, change?: C): void {
    let last = this.entries[this.entries.length - 1];
    if (!last || last.number < number) {
      last = { number, hash, cursorBefore, changes: [] };
      this.entries.push(last);
    } else if (last.number > number) {
      throw new Error(`block ${number} recorded after block ${last.number}`);
    }
    if (change) last.changes.push(change);
  }

  /**
   * Removes the entries above `ancestor` and returns their changes in the order they were applied, with the cursor
   * the book had before the first of them.
   */
  cutAbove(ancestor: bigint): { changes: C[]; cursor: LogRef | undefined; blocks: number } {
    const index = this.entries.findIndex((e) => e.number > ancestor);
    if (index < 0) return { changes: [], cursor: undefined, blocks: 0 };
    const removed = this.entries.splice(index);
    return {
      changes: removed.flatMap((e) => e.changes),
      cursor: removed[0]?.cursorBefore,
      blocks: removed.length,
    };
  }

  /**
   * The newest block held at or below `number`, with every change made above it (in the order applied) and the
   * first block held above it (whose cursorBefore is the book's cursor at the end of `entry`); undefined when no
   * block that old is held.
   */
  at(number: bigint): { entry: BlockEntry<C>; changes: C[]; firstAbove: BlockEntry<C> | undefined } | undefined {
    let i = this.entries.length - 1;
    while (i >= 0 && (this.entries[i] as BlockEntry<C>).number > number) i--;
    if (i < 0) return undefined;
    const above = this.entries.slice(i + 1);
    return { entry: this.entries[i] as BlockEntry<C>, changes: above.flatMap((e) => e.changes), firstAbove: above[0] };
  }

  /**
   * Forgets blocks under `floor` (the finalized block, or reorgDepth under the head): they are final for the
   * keeper's purposes. The newest block at or below the floor stays, as an anchor: the block a snapshot is taken at,
   * and the deepest common ancestor a rollback can find.
   */
  prune(floor: bigint): void {
    let drop = 0;
    while (drop < this.entries.length - 1 && (this.entries[drop + 1] as BlockEntry<C>).number <= floor) drop++;
    if (drop > 0) this.entries.splice(0, drop);
  }

  clear(): void {
    this.entries.length = 0;
  }
}
