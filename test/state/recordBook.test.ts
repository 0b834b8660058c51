import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { BookError } from "../../src/state/errors.ts";
import type { LogRef } from "../../src/state/events.ts";
import { type Applied, RecordBook, type RecordChange, type StateRules } from "../../src/state/recordBook.ts";

/** A toy exchange: markets listed, accounts holding a balance per market, a global fee. */
interface Account {
  readonly key: string;
  readonly balances: ReadonlyMap<number, bigint>;
}
type Event =
  | { readonly ref: LogRef; readonly kind: "list"; readonly id: number }
  | { readonly ref: LogRef; readonly kind: "move"; readonly key: string; readonly id: number; readonly amount: bigint }
  | { readonly ref: LogRef; readonly kind: "fee"; readonly fee: bigint };
type Change = RecordChange<Account, { id: number }, bigint>;

const rules: StateRules<Account, { id: number }, bigint, Event> = {
  initialGlobal: 0n,
  reduce(book, e): Change[] {
    switch (e.kind) {
      case "list":
        return book.markets.has(e.id) ? [] : [{ type: "market", id: e.id, before: undefined, after: { id: e.id } }];
      case "fee":
        return [{ type: "global", before: book.global, after: e.fee }];
      case "move": {
        if (!book.markets.has(e.id)) throw new BookError(`market ${e.id} never listed`);
        const before = book.accounts.get(e.key);
        const balances = new Map(before?.balances);
        const next = (balances.get(e.id) ?? 0n) + e.amount;
        if (next === 0n) balances.delete(e.id);
        else balances.set(e.id, next);
        const after = balances.size === 0 ? undefined : { key: e.key, balances };
        return [{ type: "account", key: e.key, before, after }];
      }
    }
  },
};

let n = 0;
const ref = (blockNumber: bigint): LogRef => ({
  blockNumber,
  logIndex: n++,
  blockHash: `0x${blockNumber.toString(16).padStart(64, "0")}`,
  transactionHash: `0x${"1".padStart(64, "0")}`,
});

const view = (b: RecordBook<Account, { id: number }, bigint, Event>) => ({
  markets: [...b.markets.keys()].sort(),
  accounts: [...b.accounts.values()].map((a) => [a.key, [...a.balances]]).sort(),
  global: b.global,
});

describe("RecordBook", () => {
  it("applies in order, ignores what it already applied, and leaves book and cursor untouched when the reducer throws", () => {
    const book = new RecordBook(rules);
    const list = { ref: ref(1n), kind: "list", id: 1 } as const;
    expect(book.apply(list)?.changes).toHaveLength(1);
    expect(book.apply(list)).toBeUndefined(); // the same event again
    const move = { ref: ref(2n), kind: "move", key: "a", id: 1, amount: 5n } as const;
    book.apply(move);
    const before = view(book);
    const cursor = book.cursor;
    expect(() => book.apply({ ref: ref(3n), kind: "move", key: "a", id: 9, amount: 1n })).toThrow(BookError);
    expect(view(book)).toEqual(before);
    expect(book.cursor).toBe(cursor);
    expect(book.counts()).toEqual({ markets: 1, accounts: 1 });
  });

  it("rewinds any suffix of random events to exactly the state before it, and stateBefore agrees without touching the book", () => {
    const eventArb = fc.oneof(
      fc.record({ kind: fc.constant("list" as const), id: fc.integer({ min: 0, max: 3 }) }),
      fc.record({
        kind: fc.constant("move" as const),
        key: fc.constantFrom("a", "b", "c"),
        id: fc.integer({ min: 0, max: 3 }),
        amount: fc.bigInt({ min: -3n, max: 3n }),
      }),
      fc.record({ kind: fc.constant("fee" as const), fee: fc.bigInt({ min: 0n, max: 9n }) }),
    );
    fc.assert(
      fc.property(fc.array(eventArb, { maxLength: 40 }), fc.nat(), (raw, cutAt) => {
        const book = new RecordBook(rules);
        const applied: Applied<Account, { id: number }, bigint>[] = [];
        const states: ReturnType<typeof view>[] = [];
        const cursors: (LogRef | undefined)[] = [];
        let block = 1n;
        for (const e of raw) {
          states.push(view(book));
          cursors.push(book.cursor);
          try {
            const a = book.apply({ ...e, ref: ref(block++) } as Event);
            applied.push(a ?? { ref: book.cursor as LogRef, changes: [] });
          } catch {
            states.pop();
            cursors.pop();
          }
        }
        const cut = applied.length === 0 ? 0 : cutAt % (applied.length + 1);
        const now = view(book);
        const earlier = book.stateBefore(applied.slice(cut), cursors[cut] ?? book.cursor);
        expect(view(book)).toEqual(now); // stateBefore leaves the book as it is
        const copy = new RecordBook(rules);
        copy.restore(earlier);
        const expected = cut < states.length ? states[cut] : now;
        expect(view(copy)).toEqual(expected);
        book.rewind(applied.slice(cut), cursors[cut] ?? book.cursor);
        expect(view(book)).toEqual(expected);
      }),
      { numRuns: 300 },
    );
  });
});
