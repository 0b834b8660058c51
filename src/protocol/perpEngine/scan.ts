import type { Finding } from "../adapter.ts";
import type { Market, TrackedPosition } from "./book.ts";
import { fundingIndexAt, type Health, health, keeperReward } from "./math.ts";

/** A position confirmed below maintenance margin by the exact arithmetic, at one mark price and funding index. */
export interface Candidate {
  readonly position: TrackedPosition;
  readonly health: Health;
  readonly markPrice: bigint;
  readonly fundingIndex: bigint;
  /** What liquidate() would pay at this price, WAD quote. */
  readonly keeperReward: bigint;
}

/** A PerpEngine candidate as the executor takes it: the position is the target, and the account. */
export function findingOf(c: Candidate): Finding {
  const p = c.position;
  return {
    target: { key: p.key, trader: p.trader, marketId: p.marketId },
    state: p,
    shortfall: c.health.maintenanceRequirement - c.health.marginBalance,
    expectedReward: c.keeperReward,
  };
}

/** Confirms one position with the exact arithmetic; undefined when it is not liquidatable. */
export function confirm(
  position: TrackedPosition,
  market: Market,
  markPrice: bigint,
  fundingIndex: bigint,
): Candidate | undefined {
  const h = health(position, market.maintenanceMarginRatio, markPrice, fundingIndex);
  if (!h.liquidatable) return undefined;
  return {
    position,
    health: h,
    markPrice,
    fundingIndex,
    keeperReward: keeperReward(position.size, markPrice, market.liquidationFeeRatio),
  };
}

/** The baseline: every position of a market checked with the exact arithmetic. O(n). */
export function scanLiquidatable(
  positions: Iterable<TrackedPosition>,
  market: Market,
  markPrice: bigint,
  timestamp: bigint,
): Candidate[] {
  const fundingIndex = fundingIndexAt(market.funding, markPrice, timestamp);
  const found: Candidate[] = [];
  for (const position of positions) {
    if (position.marketId !== market.id) continue;
    const candidate = confirm(position, market, markPrice, fundingIndex);
    if (candidate) found.push(candidate);
  }
  return found;
}
