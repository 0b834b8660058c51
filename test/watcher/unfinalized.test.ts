import { describe, expect, it } from "vitest";
import { Book, type BookChange } from "../../src/protocol/perpEngine/book.ts";
import type { ExchangeEvent } from "../../src/protocol/perpEngine/events.ts";
import { UnfinalizedBlocks } from "../../src/watcher/unfinalized.ts";
import { listedEvent, nextRef } from "../helpers/events.ts";

const trader = "0x00000000000000000000000000000000000000a1" as const;

function positionEvent(block: bigint, size: bigint, margin: bigint): ExchangeEvent {
  return {
    kind: "positionChanged",
    ref: nextRef(block),
    trader,
    marketId: 0,
    sizeDelta: size,
    price: 1n,
    size,
    openNotional: size * 100n,
    margin,
    fundingIndex: 0n,
  };
}

const fundingEvent = (block: bigint, index: bigint): ExchangeEvent => ({
  kind: "fundingUpdated",
  ref: nextRef(block),
  marketId: 0,
  cumulativeFundingIndex: index,
  fundingRatePerSecond: 7n,
  timestamp: 1000n + index,
});

const view = (book: Book) => ({
  positions: [...book.positions.entries()],
  funding: [...book.markets.values()].map((m) => m.funding),
  cursor: book.cursor,
});

describe("rolling the book back over unfinalized blocks", () => {
  it("undoes exactly the blocks above the ancestor: positions, funding and the cursor as they were", () => {
    const book = new Book();
    const window = new UnfinalizedBlocks<BookChange>();
    const apply = (event: ExchangeEvent) => {
      const cursor = book.cursor;
      const change = book.apply(event);
      window.record(event.ref.blockNumber, `0x${event.ref.blockNumber.toString(16)}`, cursor, change);
    };
    apply(listedEvent(nextRef(10n)));
    apply(positionEvent(11n, 5n, 50n));
    apply(fundingEvent(12n, 3n));
    const atAncestor = structuredClone(view(book));
    // three more blocks: the position grows, funding moves, then it closes
    apply(positionEvent(13n, 8n, 70n));
    apply(fundingEvent(14n, 9n));
    apply(positionEvent(15n, 0n, 0n));
    expect(view(book)).not.toEqual(atAncestor);

    const cut = window.cutAbove(12n);
    expect(cut.blocks).toBe(3);
    expect(cut.changes.map((c) => c.type)).toEqual(["position", "funding", "position"]);
    book.rewind(cut.changes, cut.cursor);
    expect(view(book)).toEqual(atAncestor);
    // the new branch applies on top, including an event at the same height as a removed one
    book.apply(positionEvent(13n, 2n, 20n));
    expect(book.positions.size).toBe(1);
  });

  it("keeps the blocks above the floor, and the newest at or below it as the anchor", () => {
    const window = new UnfinalizedBlocks();
    for (let b = 1n; b <= 20n; b++) window.record(b, "0x01", undefined);
    window.prune(15n);
    expect(window.newestFirst().map((e) => e.number)).toEqual([20n, 19n, 18n, 17n, 16n, 15n]);
    const sparse = new UnfinalizedBlocks();
    for (const b of [1n, 5n, 10n, 18n]) sparse.record(b, "0x01", undefined);
    sparse.prune(12n);
    expect(sparse.newestFirst().map((e) => e.number)).toEqual([18n, 10n]);
    expect(sparse.at(12n)?.entry.number).toBe(10n); // where a snapshot at the floor is taken
  });

  it("refuses a block out of order rather than lose a change", () => {
    const window = new UnfinalizedBlocks();
    window.record(10n, "0x01", undefined);
    expect(() => window.record(9n, "0x02", undefined)).toThrow(/after block 10/);
    const change: BookChange = { type: "market", marketId: 0 };
    window.record(10n, "0x01", undefined, change);
    expect(window.cutAbove(9n).changes).toEqual([change]);
  });
});
