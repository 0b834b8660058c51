/**
 * Perp v2's integer arithmetic, bit for bit (Solidity 0.7.6, checked by SafeMath: no wrap-around).
 * References are to @perp/curie-contract 2.8.4, contracts/.
 */

export const WAD = 10n ** 18n;
/** FixedPoint96.Q96 = 2^96. */
export const Q96 = 1n << 96n;
/** Ratios (mmRatio, penalty, maxFundingRate...) are 1e6-scaled uint24. */
export const RATIO_ONE = 1_000_000n;
/** Funding.sol:36 `_DEFAULT_FUNDING_PERIOD = 1 days`. */
export const FUNDING_PERIOD = 86_400n;
/** AccountBalance.sol:37 `_DUST = 10 wei`: smaller taker sizes read as 0. */
export const DUST = 10n;
/** AccountBalance.sol:38 `_MIN_PARTIAL_LIQUIDATE_POSITION_VALUE = 100e18`: at or below it a position goes whole. */
export const MIN_PARTIAL_LIQUIDATE_POSITION_VALUE = 100n * WAD;
/** PerpSafeCast.toUint24 reverts above this. */
export const UINT24_MAX = (1n << 24n) - 1n;

export const abs = (x: bigint): bigint => (x < 0n ? -x : x);
export const min = (a: bigint, b: bigint): bigint => (a < b ? a : b);
export const max = (a: bigint, b: bigint): bigint => (a > b ? a : b);

/** FullMath.mulDiv on uint256: floor(a·b/d). */
export function fullMulDiv(a: bigint, b: bigint, d: bigint): bigint {
  return (a * b) / d;
}

/** PerpMath.mulDiv(int256, int256, uint256) (PerpMath.sol:87-101): |a·b|/d floored, then the sign: toward zero. */
export function mulDivTrunc(a: bigint, b: bigint, d: bigint): bigint {
  const q = (abs(a) * abs(b)) / d;
  return a < 0n !== b < 0n && a !== 0n && b !== 0n ? -q : q;
}

/** PerpMath.mulRatio(uint256, uint24) = FullMath.mulDiv(value, ratio, 1e6): floor. */
export function mulRatio(value: bigint, ratio: bigint): bigint {
  return (value * ratio) / RATIO_ONE;
}

/** SignedSafeMath.div: toward zero (JavaScript's bigint division does the same). */
export function divTrunc(a: bigint, d: bigint): bigint {
  return a / d;
}

/** Division toward −∞. */
export function floorDiv(a: bigint, d: bigint): bigint {
  const q = a / d;
  return a % d !== 0n && a < 0n !== d < 0n ? q - 1n : q;
}

/** Division toward +∞ for d > 0. */
export function ceilDiv(a: bigint, d: bigint): bigint {
  return -floorDiv(-a, d);
}

/**
 * SettlementTokenMath.formatSettlementToken(int256) then parseSettlementToken (SettlementTokenMath.sol:211-217,
 * ClearingHouse.getAccountValue at ClearingHouse.sol:583-585): an 18-decimal amount rounded down (toward −∞) to the
 * settlement token's decimals, back in 18 decimals.
 */
export function floorToSettlement(amountX18: bigint, decimals: number): bigint {
  const unit = 10n ** BigInt(18 - decimals);
  return floorDiv(amountX18, unit) * unit;
}

/** AccountBalance.getTakerPositionSize / getTotalPositionSize (AccountBalance.sol:359-379): dust reads as 0. */
export function dustFiltered(size: bigint): bigint {
  return abs(size) < DUST ? 0n : size;
}

/** AccountBalance._getPositionValue (AccountBalance.sol:479-487): size·price/1e18 toward zero, 0 for no size. */
export function positionValue(size: bigint, price: bigint): bigint {
  return size === 0n ? 0n : mulDivTrunc(size, price, WAD);
}

/** PerpMath.formatX10_18ToX96: floor(v·2^96/1e18). */
export function x18ToX96(value: bigint): bigint {
  return (value * Q96) / WAD;
}

/** All X96 prices whose formatX96ToX10_18 is `valueX18` (the event's marketTwap): [lo, hi]. */
export function x96RangeOf(valueX18: bigint): readonly [bigint, bigint] {
  return [ceilDiv(valueX18 * Q96, WAD), ceilDiv((valueX18 + 1n) * Q96, WAD) - 1n];
}

/**
 * Exchange._getDeltaTwapX96 (Exchange.sol:644-656): market minus index TWAP (X96), clamped to ±index·maxFundingRate.
 * Non-decreasing in the market TWAP.
 */
export function deltaTwapX96(marketTwapX96: bigint, indexTwapX96: bigint, maxFundingRate: bigint): bigint {
  const maxDelta = mulRatio(indexTwapX96, maxFundingRate);
  if (marketTwapX96 > indexTwapX96) return min(marketTwapX96 - indexTwapX96, maxDelta);
  return -min(indexTwapX96 - marketTwapX96, maxDelta);
}

/** The largest |deltaTwapX96| the clamp allows at an index TWAP (WAD). */
export function maxDeltaTwapX96(indexTwap: bigint, maxFundingRate: bigint): bigint {
  return mulRatio(x18ToX96(indexTwap), maxFundingRate);
}

/** The range of deltaTwapX96 given a marketTwap known to 1e-18 (as events and WAD reads give it) and the index TWAP. */
export function deltaTwapRange(
  marketTwap: bigint,
  indexTwap: bigint,
  maxFundingRate: bigint,
): readonly [bigint, bigint] {
  const [lo, hi] = x96RangeOf(marketTwap);
  const i = x18ToX96(indexTwap);
  return [deltaTwapX96(lo, i, maxFundingRate), deltaTwapX96(hi, i, maxFundingRate)];
}

/**
 * Funding.calcPendingFundingPaymentWithLiquidityCoefficient for a taker (Funding.sol:42-57, no liquidity term):
 * mulDiv(base, growthDelta, 2^96) toward zero, then / 1 day toward zero. Positive: the trader pays.
 * Monotone in growthDelta (non-decreasing for base > 0, non-increasing for base < 0).
 */
export function takerFunding(base: bigint, growthDelta: bigint): bigint {
  return divTrunc(mulDivTrunc(base, growthDelta, Q96), FUNDING_PERIOD);
}

/** takerFunding over a range of growth deltas: [lowest, highest] payment. */
export function takerFundingRange(base: bigint, deltaLo: bigint, deltaHi: bigint): readonly [bigint, bigint] {
  const a = takerFunding(base, deltaLo);
  const b = takerFunding(base, deltaHi);
  return a <= b ? [a, b] : [b, a];
}
