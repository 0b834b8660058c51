import { describe, expect, it } from "vitest";
import type { Market } from "../../src/state/book.ts";
import { markPriceOf } from "../../src/watcher/oracle.ts";

const market: Market = {
  id: 0,
  name: "BTC-USD",
  oracle: "0x0000000000000000000000000000000000000001",
  priceScale: 10n ** 10n,
  initialMarginRatio: 5n * 10n ** 16n,
  maintenanceMarginRatio: 25n * 10n ** 15n,
  liquidationFeeRatio: 5n * 10n ** 15n,
  tradingFeeRatio: 5n * 10n ** 14n,
  maxOracleAge: 3600n,
  funding: { cumulativeFundingIndex: 0n, fundingRatePerSecond: 0n, lastFundingTime: 0n },
};
const reading = (answer: bigint, updatedAt: bigint) => ({ roundId: 1n, answer, updatedAt });

describe("mark price from an oracle reading", () => {
  it("scales a fresh positive answer to 18 decimals", () => {
    expect(markPriceOf(reading(6_000_000_000_000n, 1000n), market, 1000n)).toMatchObject({
      ok: true,
      markPrice: 60_000n * 10n ** 18n,
    });
  });

  it("accepts an answer exactly maxOracleAge old and refuses one a second older", () => {
    expect(markPriceOf(reading(1n, 1000n), market, 4600n).ok).toBe(true);
    expect(markPriceOf(reading(1n, 1000n), market, 4601n)).toMatchObject({ ok: false, reason: "stale" });
  });

  it("refuses zero, negative, never-updated and future answers", () => {
    expect(markPriceOf(reading(0n, 1000n), market, 1000n)).toMatchObject({ ok: false, reason: "non_positive_answer" });
    expect(markPriceOf(reading(-5n, 1000n), market, 1000n)).toMatchObject({ ok: false, reason: "non_positive_answer" });
    expect(markPriceOf(reading(5n, 0n), market, 1000n)).toMatchObject({ ok: false, reason: "stale" });
    expect(markPriceOf(reading(5n, 1001n), market, 1000n)).toMatchObject({ ok: false, reason: "future_timestamp" });
  });
});
