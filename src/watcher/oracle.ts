import type { Address, PublicClient } from "viem";
import { mockV3AggregatorAbi } from "../../abi/MockV3Aggregator.ts";
import type { Market } from "../state/book.ts";

/** One answer of a Chainlink aggregator (AggregatorV3Interface.latestRoundData). */
export interface OracleReading {
  readonly roundId: bigint;
  readonly answer: bigint;
  readonly updatedAt: bigint;
}

export type MarkPriceResult =
  | { readonly ok: true; readonly markPrice: bigint; readonly reading: OracleReading }
  | {
      readonly ok: false;
      readonly reason: "non_positive_answer" | "stale" | "future_timestamp";
      readonly reading: OracleReading;
    };

/** Reads the aggregator's latest round at a block. */
export async function readOracle(client: PublicClient, oracle: Address, blockNumber: bigint): Promise<OracleReading> {
  const [roundId, answer, , updatedAt] = await client.readContract({
    address: oracle,
    abi: mockV3AggregatorAbi,
    functionName: "latestRoundData",
    blockNumber,
  });
  return { roundId, answer, updatedAt };
}

/**
 * The mark price a reading gives, by the contract's own rules (PerpEngine._markPrice): a positive answer no older
 * than the market's maxOracleAge at `timestamp`. A refused reading never becomes a price.
 */
export function markPriceOf(reading: OracleReading, market: Market, timestamp: bigint): MarkPriceResult {
  if (reading.answer <= 0n) return { ok: false, reason: "non_positive_answer", reading };
  if (reading.updatedAt === 0n) return { ok: false, reason: "stale", reading };
  if (reading.updatedAt > timestamp) return { ok: false, reason: "future_timestamp", reading };
  if (timestamp - reading.updatedAt > market.maxOracleAge) return { ok: false, reason: "stale", reading };
  return { ok: true, markPrice: reading.answer * market.priceScale, reading };
}
