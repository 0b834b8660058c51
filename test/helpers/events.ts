/** Hand-made exchange events for tests of the pure core (no chain). */
import { Book, type Market } from "../../src/protocol/perpEngine/book.ts";
import type { ExchangeEvent } from "../../src/protocol/perpEngine/events.ts";
import type { LogRef } from "../../src/state/events.ts";

let logIndex = 0;

/** A fresh position in the chain: each call comes after the previous one. */
export function nextRef(blockNumber = 1n): LogRef {
  return { blockNumber, logIndex: logIndex++, blockHash: "0x01", transactionHash: "0x02" };
}

type Listing = Extract<ExchangeEvent, { kind: "marketListed" }>;

/** A MarketListed event: market 0, BTC-USD, 8-decimal oracle, 5% initial, 2.5% maintenance, unless overridden. */
export function listedEvent(ref: LogRef = nextRef(), overrides: Partial<Omit<Listing, "kind" | "ref">> = {}): Listing {
  return {
    kind: "marketListed",
    ref,
    marketId: 0,
    name: "BTC-USD",
    oracle: "0x0000000000000000000000000000000000000001",
    priceScale: 10n ** 10n,
    initialMarginRatio: 5n * 10n ** 16n,
    maintenanceMarginRatio: 25n * 10n ** 15n,
    liquidationFeeRatio: 5n * 10n ** 15n,
    tradingFeeRatio: 5n * 10n ** 14n,
    maxOracleAge: 3600n,
    ...overrides,
  };
}

/** The market a book makes of listedEvent(overrides). */
export function listedMarket(overrides: Partial<Omit<Listing, "kind" | "ref">> = {}): Market {
  const book = new Book();
  const event = listedEvent(nextRef(), overrides);
  book.apply(event);
  return book.markets.get(event.marketId) as Market;
}
