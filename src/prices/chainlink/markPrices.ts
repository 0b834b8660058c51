/**
 * Turns the oracle answers known at a head into the markets' mark prices, by the contract's rules (markPriceOf),
 * and says what changed: price_updated when a market's answer moves, oracle_invalid once per market and reason when
 * an answer is refused or could not be read (that market is left out of the tick while it lasts), oracle_recovered
 * when it answers again.
 */
import { describeError } from "../../chain/errors.ts";
import { big, type Logger } from "../../ops/logger.ts";
import { type ChainlinkMarket, markPriceOf, type OracleReading } from "./oracle.ts";

export class MarkPrices {
  private readonly lastAnswers = new Map<number, bigint>();
  /** Markets whose oracle is refused, with the reason last reported (reported once, not every block). */
  private readonly problems = new Map<number, string>();

  constructor(private readonly log: Logger) {}

  /** Valid mark prices (WAD) by market id at a head of this number and timestamp. */
  at(
    head: bigint,
    timestamp: bigint,
    markets: readonly ChainlinkMarket[],
    readings: readonly PromiseSettledResult<OracleReading>[],
  ): Map<number, bigint> {
    const prices = new Map<number, bigint>();
    markets.forEach((market, i) => {
      const settled = readings[i];
      if (!settled) return;
      if (settled.status === "rejected") {
        if (!this.problem(market.id, "read_failed")) return;
        this.log.warn(
          {
            event: "oracle_invalid",
            market: market.name,
            reason: "read_failed",
            error: describeError(settled.reason),
            blockNumber: big(head),
          },
          `${market.name} oracle could not be read; market skipped this block`,
        );
        return;
      }
      const reading = settled.value;
      const result = markPriceOf(reading, market, timestamp);
      if (!result.ok) {
        if (!this.problem(market.id, result.reason)) return;
        this.log.warn(
          {
            event: "oracle_invalid",
            market: market.name,
            reason: result.reason,
            answer: big(reading.answer),
            updatedAt: big(reading.updatedAt),
            blockNumber: big(head),
          },
          "oracle answer refused; market skipped this block",
        );
        return;
      }
      prices.set(market.id, result.markPrice);
      if (this.problems.delete(market.id)) {
        this.log.info(
          { event: "oracle_recovered", market: market.name, blockNumber: big(head) },
          `${market.name} oracle answers again`,
        );
      }
      const previous = this.lastAnswers.get(market.id);
      if (previous !== reading.answer) {
        this.lastAnswers.set(market.id, reading.answer);
        this.log.info(
          {
            event: "price_updated",
            market: market.name,
            price: formatAnswer(reading.answer, market.priceScale),
            previous: previous === undefined ? undefined : formatAnswer(previous, market.priceScale),
            roundId: big(reading.roundId),
            blockNumber: big(head),
          },
          `${market.name} mark price ${formatAnswer(reading.answer, market.priceScale)}`,
        );
      }
    });
    return prices;
  }

  /** Records a market's oracle problem; true when it is new (worth a log line), false when already reported. */
  private problem(marketId: number, reason: string): boolean {
    if (this.problems.get(marketId) === reason) return false;
    this.problems.set(marketId, reason);
    return true;
  }
}

/** An oracle answer in the market's units ("2375", "60012.5"). */
export function formatAnswer(answer: bigint, priceScale: bigint): string {
  const decimals = 18 - (priceScale.toString().length - 1);
  const s = answer.toString().padStart(decimals + 1, "0");
  return decimals === 0 ? s : `${s.slice(0, -decimals)}.${s.slice(-decimals)}`.replace(/\.?0+$/, "");
}
