/**
 * The snapshot format: what is written reads back equal, field by field, and anything damaged, cut short, or of
 * another chain, exchange or version is refused whole with a reason. And a book's state at an earlier block
 * (stateBefore) equals the book that only ever saw the events up to that block.
 */
import { describe, expect, it } from "vitest";
import { Book, type BookChange } from "../../src/protocol/perpEngine/book.ts";
import type { ExchangeEvent } from "../../src/protocol/perpEngine/events.ts";
import { parseSnapshot, type Snapshot, SnapshotError, snapshotChunks } from "../../src/protocol/perpEngine/snapshot.ts";
import type { LogRef } from "../../src/state/events.ts";
import { listedEvent } from "../helpers/events.ts";

const EXCHANGE: `0x${string}` = "0x00000000000000000000000000000000000000e1";
const HASH = `0x${"ab".repeat(32)}` as const;
let index = 0;
const ref = (blockNumber: bigint): LogRef => ({
  blockNumber,
  logIndex: index++,
  blockHash: `0x${blockNumber.toString(16).padStart(64, "0")}`,
  transactionHash: `0x${"cd".repeat(32)}`,
});
const trader = (i: number) => `0x${i.toString(16).padStart(40, "0")}` as const;

function positionEvent(block: bigint, t: number, marketId: number, size: bigint, margin: bigint): ExchangeEvent {
  return {
    kind: "positionChanged",
    ref: ref(block),
    trader: trader(t),
    marketId,
    sizeDelta: size,
    price: 1n,
    size,
    openNotional: size < 0n ? -size * 7n : size * 7n,
    margin,
    fundingIndex: -3n * BigInt(t),
  };
}

function sampleBook(): Book {
  const book = new Book();
  book.apply(listedEvent(ref(1n), { marketId: 0, name: "BTC-USD" }));
  book.apply(listedEvent(ref(1n), { marketId: 1, name: "ETH-USD", oracle: trader(99) }));
  book.apply({
    kind: "fundingUpdated",
    ref: ref(2n),
    marketId: 1,
    cumulativeFundingIndex: -12345n,
    fundingRatePerSecond: -5n,
    timestamp: 1700000000n,
  });
  for (let t = 1; t <= 50; t++)
    book.apply(positionEvent(3n, t, t % 2, t % 3 ? 10n ** 18n * BigInt(t) : -BigInt(t), BigInt(t) - 20n));
  return book;
}

function snapshotOf(book: Book): Snapshot {
  return {
    chainId: 31337,
    exchange: EXCHANGE,
    blockNumber: 3n,
    blockHash: HASH,
    markets: [...book.markets.values()],
    positions: [...book.positions.values()],
    cursor: book.cursor,
  };
}

const encode = (s: Snapshot) => [...snapshotChunks(s)].join("");
const expected = { chainId: 31337, exchange: EXCHANGE };

function problem(content: string, exp = expected): string {
  try {
    parseSnapshot(content, exp);
  } catch (error) {
    if (error instanceof SnapshotError) return error.problem;
    throw error;
  }
  return "accepted";
}

describe("snapshot format", () => {
  it("reads back what it wrote, field by field (negative margins and sizes, funding, cursor)", () => {
    const s = snapshotOf(sampleBook());
    const back = parseSnapshot(encode(s), expected);
    expect(back).toEqual(s);
    expect(back.positions.some((p) => p.margin < 0n)).toBe(true);
    expect(back.positions.some((p) => p.size < 0n)).toBe(true);
    // the exchange address is matched without regard to case
    expect(
      parseSnapshot(encode(s), { ...expected, exchange: EXCHANGE.toUpperCase().replace("0X", "0x") as never }),
    ).toBeTruthy();
  });

  it("an empty book (no markets yet) round-trips too", () => {
    const s = snapshotOf(new Book());
    expect(parseSnapshot(encode(s), expected)).toEqual(s);
  });

  it("refuses a file cut short, a changed digit, a duplicated line, and a position of a market not listed", () => {
    const content = encode(snapshotOf(sampleBook()));
    const lines = content.split("\n");
    expect(problem(lines.slice(0, -3).join("\n"))).toBe("corrupt"); // cut short
    expect(problem(content.slice(0, content.length / 2))).toBe("corrupt");
    const flipped = content.replace('"7000000000000000000"', '"8000000000000000000"'); // one digit of a notional
    expect(flipped).not.toBe(content);
    expect(problem(flipped)).toBe("corrupt"); // the checksum catches it
    const duplicated = [...lines.slice(0, 5), lines[4], ...lines.slice(5)].join("\n");
    expect(problem(duplicated)).toBe("corrupt");
    expect(problem("")).toBe("corrupt");
    expect(problem("not json\n{}\n")).toBe("corrupt");
  });

  it("refuses another chain, another exchange and another format version", () => {
    const content = encode(snapshotOf(sampleBook()));
    expect(problem(content, { chainId: 1, exchange: EXCHANGE })).toBe("other_chain");
    expect(problem(content, { chainId: 31337, exchange: trader(5) })).toBe("other_exchange");
    expect(problem(content.replace('"version":1', '"version":2'))).toBe("version");
  });

  it("checks fields even when the checksum is made to match", () => {
    const s = snapshotOf(sampleBook());
    const bad = { ...s, positions: [{ ...(s.positions[0] as (typeof s.positions)[0]), marketId: 7 }] };
    expect(problem(encode(bad))).toBe("corrupt"); // market 7 was never listed
    const zero = { ...s, positions: [{ ...(s.positions[0] as (typeof s.positions)[0]), size: 0n }] };
    expect(problem(encode(zero))).toBe("corrupt");
  });
});

describe("the book at an earlier block", () => {
  it("equals the book that saw only the events up to that block, and leaves the live book as it is", () => {
    const events: ExchangeEvent[] = [];
    events.push(listedEvent(ref(1n), { marketId: 0 }));
    for (let t = 1; t <= 6; t++) events.push(positionEvent(2n, t, 0, BigInt(t) * 10n ** 18n, 100n));
    const split = events.length;
    // later blocks: one grows, one closes, one opens, funding moves, a second market is listed
    events.push(positionEvent(3n, 2, 0, 9n * 10n ** 18n, 90n));
    events.push(positionEvent(3n, 3, 0, 0n, 0n));
    events.push(positionEvent(4n, 9, 0, -(10n ** 18n), 50n));
    events.push({
      kind: "fundingUpdated",
      ref: ref(4n),
      marketId: 0,
      cumulativeFundingIndex: 77n,
      fundingRatePerSecond: 1n,
      timestamp: 5n,
    });
    events.push(listedEvent(ref(5n), { marketId: 1 }));
    const live = new Book();
    const changes: BookChange[] = [];
    events.forEach((e, i) => {
      const change = live.apply(e);
      if (i >= split && change) changes.push(change);
    });
    const earlier = new Book();
    for (const e of events.slice(0, split)) earlier.apply(e);
    const liveBefore = structuredClone({ m: [...live.markets.values()], p: [...live.positions.values()] });

    const state = live.stateBefore(changes, earlier.cursor);
    expect(state.cursor).toEqual(earlier.cursor);
    expect(state.markets).toEqual([...earlier.markets.values()]);
    const byKey = (a: { key: string }, b: { key: string }) => (a.key < b.key ? -1 : 1);
    expect([...state.positions].sort(byKey)).toEqual([...earlier.positions.values()].sort(byKey));
    expect({ m: [...live.markets.values()], p: [...live.positions.values()] }).toEqual(liveBefore);

    const restored = new Book();
    restored.restore(state);
    expect([...restored.positions.entries()].sort()).toEqual([...earlier.positions.entries()].sort());
  });
});
