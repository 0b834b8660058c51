/**
 * An exchange's book as immutable records, changed only through the exchange's pure reducer: markets by id, accounts
 * by key, and one global record (parameters). Exchange-neutral: an adapter states what its records are and how each
 * event changes them (`StateRules`); the book keeps the guarantees every exchange shares:
 * - events at or before the cursor are ignored, so overlapping log ranges never double-count;
 * - a reducer that throws (BookError: the event cannot follow from the book) leaves book and cursor untouched;
 * - each applied event's changes carry their before and after, so a rollback undoes them newest first, and the
 *   state at an earlier block (a snapshot's) is the book with them undone; records are shared, never copied.
 */

import type { LogRef } from "./events.ts";
import { compareRefs } from "./events.ts";

export interface BookView<A, M, G> {
  readonly markets: ReadonlyMap<number, M>;
  readonly accounts: ReadonlyMap<string, A>;
  readonly global: G;
}

/** One record an event replaced; `undefined` before: created, after: removed. */
export type RecordChange<A, M, G> =
  | { readonly type: "market"; readonly id: number; readonly before: M | undefined; readonly after: M | undefined }
  | { readonly type: "account"; readonly key: string; readonly before: A | undefined; readonly after: A | undefined }
  | { readonly type: "global"; readonly before: G; readonly after: G };

/** What one applied event changed, in order. */
export interface Applied<A, M, G> {
  readonly ref: LogRef;
  readonly changes: readonly RecordChange<A, M, G>[];
}

export interface StateRules<A, M, G, E extends { readonly ref: LogRef }> {
  readonly initialGlobal: G;
  /**
   * What one event changes. Pure: the book is not touched; every record the event replaces comes back with its
   * before and after (in order: a later change of the same record has the earlier one's after as its before). Throws
   * BookError when the event cannot follow from the book.
   */
  reduce(book: BookView<A, M, G>, event: E): readonly RecordChange<A, M, G>[];
}

/** The book as plain data: what a snapshot stores, and what a book is restored from. */
export interface RecordState<A, M, G> {
  readonly markets: readonly (readonly [number, M])[];
  readonly accounts: readonly (readonly [string, A])[];
  readonly global: G;
  readonly cursor: LogRef | undefined;
}

export class RecordBook<A, M, G, E extends { readonly ref: LogRef }> implements BookView<A, M, G> {
  readonly markets = new Map<number, M>();
  readonly accounts = new Map<string, A>();
  global: G;
  private last: LogRef | undefined;

  constructor(private readonly rules: StateRules<A, M, G, E>) {
    this.global = rules.initialGlobal;
  }

  get cursor(): LogRef | undefined {
    return this.last;
  }

  get marketCount(): number {
    return this.markets.size;
  }

  counts(): { markets: number; accounts: number } {
    return { markets: this.markets.size, accounts: this.accounts.size };
  }

  cursorOf(state: RecordState<A, M, G>): LogRef | undefined {
    return state.cursor;
  }

  /** Applies one event; what it changed, or undefined when it was already applied (or changed nothing). */
  apply(event: E): Applied<A, M, G> | undefined {
    if (this.last && compareRefs(event.ref, this.last) <= 0) return undefined;
    const changes = this.rules.reduce(this, event);
    this.last = event.ref;
    for (const change of changes) this.write(change, "after");
    return changes.length > 0 ? { ref: event.ref, changes } : undefined;
  }

  /** Undoes applied events (oldest first in `applied`, undone newest first) and sets the cursor back to `cursor`. */
  rewind(applied: readonly Applied<A, M, G>[], cursor: LogRef | undefined): void {
    for (let i = applied.length - 1; i >= 0; i--) {
      const { changes } = applied[i] as Applied<A, M, G>;
      for (let j = changes.length - 1; j >= 0; j--) this.write(changes[j] as RecordChange<A, M, G>, "before");
    }
    this.last = cursor;
  }

  reset(): void {
    this.markets.clear();
    this.accounts.clear();
    this.global = this.rules.initialGlobal;
    this.last = undefined;
  }

  restore(state: RecordState<A, M, G>): void {
    this.reset();
    for (const [id, m] of state.markets) this.markets.set(id, m);
    for (const [key, a] of state.accounts) this.accounts.set(key, a);
    this.global = state.global;
    this.last = state.cursor;
  }

  /** The state as it was before `applied` (oldest first), with `cursor` as its last event; the book is left as it is. */
  stateBefore(applied: readonly Applied<A, M, G>[], cursor: LogRef | undefined): RecordState<A, M, G> {
    const earlier = new RecordBook<A, M, G, E>(this.rules);
    earlier.restore(this.state());
    earlier.rewind(applied, cursor);
    return earlier.state();
  }

  state(): RecordState<A, M, G> {
    return {
      markets: [...this.markets],
      accounts: [...this.accounts],
      global: this.global,
      cursor: this.last,
    };
  }

  private write(change: RecordChange<A, M, G>, side: "before" | "after"): void {
    switch (change.type) {
      case "market": {
        const record = change[side];
        if (record === undefined) this.markets.delete(change.id);
        else this.markets.set(change.id, record);
        return;
      }
      case "account": {
        const record = change[side];
        if (record === undefined) this.accounts.delete(change.key);
        else this.accounts.set(change.key, record);
        return;
      }
      case "global":
        this.global = change[side];
        return;
    }
  }
}
