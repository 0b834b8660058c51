import { describe, expect, it } from "vitest";
import { Book, positionKey } from "../../src/protocol/perpEngine/book.ts";
import type { ExchangeEvent } from "../../src/protocol/perpEngine/events.ts";
import type { LogRef } from "../../src/state/events.ts";
import { listedEvent } from "../helpers/events.ts";

const TRADER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8" as const;
let log = 0;
const ref = (blockNumber: bigint, logIndex = log++): LogRef => ({
  blockNumber,
  logIndex,
  blockHash: "0x01",
  transactionHash: "0x02",
});

const listed = (r: LogRef): ExchangeEvent => listedEvent(r);

const changed = (r: LogRef, size: bigint, margin: bigint): ExchangeEvent => ({
  kind: "positionChanged",
  ref: r,
  trader: TRADER,
  marketId: 0,
  sizeDelta: size,
  price: 1n,
  size,
  openNotional: 1000n,
  margin,
  fundingIndex: 7n,
});

describe("Book", () => {
  it("rebuilds a position from the full state its events carry", () => {
    const book = new Book();
    book.apply(listed(ref(1n)));
    book.apply(changed(ref(2n), 5n, 100n));
    const change = book.apply(changed(ref(3n), 8n, 90n));
    const p = book.positions.get(positionKey(0, TRADER));
    expect(p).toMatchObject({ size: 8n, margin: 90n, openNotional: 1000n, lastFundingIndex: 7n });
    expect(change).toMatchObject({ type: "position", before: { size: 5n }, after: { size: 8n } });
  });

  it("ignores an event it has already applied (overlapping ranges never double-count)", () => {
    const book = new Book();
    const first = ref(1n);
    const second = ref(2n);
    book.apply(listed(first));
    book.apply(changed(second, 5n, 100n));
    expect(book.apply(changed(second, 5n, 100n))).toBeUndefined();
    expect(book.apply(listed(first))).toBeUndefined();
    expect(book.positions.size).toBe(1);
  });

  it("drops closed and liquidated positions", () => {
    const book = new Book();
    book.apply(listed(ref(1n)));
    book.apply(changed(ref(2n), 5n, 100n));
    book.apply(changed(ref(3n), 0n, 0n));
    expect(book.positions.size).toBe(0);
    book.apply(changed(ref(4n), -5n, 100n));
    const change = book.apply({
      kind: "positionLiquidated",
      ref: ref(5n),
      trader: TRADER,
      marketId: 0,
      keeper: TRADER,
      size: -5n,
      price: 1n,
      marginBalance: 0n,
      keeperReward: 0n,
      badDebt: 0n,
    });
    expect(change).toMatchObject({ type: "position", after: undefined, before: { size: -5n } });
    expect(book.positions.size).toBe(0);
  });

  it("refuses events of a market it never saw listed, and leaves its cursor where it was", () => {
    const book = new Book();
    book.apply(listed(ref(1n)));
    const cursor = book.cursor;
    expect(() => book.apply({ ...changed(ref(2n), 5n, 100n), marketId: 9 } as ExchangeEvent)).toThrow(/market 9/);
    expect(book.cursor).toBe(cursor);
    expect(book.positions.size).toBe(0);
    expect(() =>
      book.apply({
        kind: "fundingUpdated",
        ref: ref(1n),
        marketId: 3,
        cumulativeFundingIndex: 0n,
        fundingRatePerSecond: 0n,
        timestamp: 0n,
      }),
    ).toThrow(/market 3, which was never listed/);
  });
});
