import { describe, expect, it } from "vitest";
import { markPriceOf } from "../../src/prices/chainlink/oracle.ts";
import { listedMarket } from "../helpers/events.ts";

const market = listedMarket();
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
