/**
 * The margin rules of the reference PerpEngine, step by step in the contract's own integer arithmetic.
 * Every function here mirrors one internal function of contracts/PerpEngine.sol, rounding included, so that a
 * verdict computed locally equals the contract's (test/risk/differential.test.ts proves it on Anvil).
 * All amounts are 18-decimal fixed point (WAD) bigints; prices passed in are WAD unless named `units`.
 */

export const WAD = 10n ** 18n;

/** What a position holds on chain (PerpEngine.Position). */
export interface PositionState {
  /** Base amount, WAD; long > 0, short < 0. */
  readonly size: bigint;
  /** Entry value, WAD quote. */
  readonly openNotional: bigint;
  /** Isolated margin after fees, realized PnL and settled funding, WAD quote. */
  readonly margin: bigint;
  /** The market's funding index when this position last settled funding. */
  readonly lastFundingIndex: bigint;
}

/** The risk parameters of a market (PerpEngine.Market), ratios in WAD. */
export interface MarketRiskParams {
  /** 10 ** (18 - oracle decimals): multiplies an oracle answer into a WAD price. */
  readonly priceScale: bigint;
  readonly initialMarginRatio: bigint;
  readonly maintenanceMarginRatio: bigint;
  readonly liquidationFeeRatio: bigint;
}

/** A market's funding accumulator as last settled on chain. */
export interface FundingState {
  readonly cumulativeFundingIndex: bigint;
  readonly fundingRatePerSecond: bigint;
  /** Unix seconds of the last settlement. */
  readonly lastFundingTime: bigint;
}

export interface Health {
  /** margin + unrealized PnL - funding owed, WAD. */
  readonly marginBalance: bigint;
  /** ceil(notional * maintenanceMarginRatio), WAD. */
  readonly maintenanceRequirement: bigint;
  readonly liquidatable: boolean;
}

/** ceil(a / b) for a >= 0, b > 0. */
export function ceilDiv(a: bigint, b: bigint): bigint {
  return a === 0n ? 0n : (a - 1n) / b + 1n;
}

/** ceil(a * b / WAD) for a, b >= 0. */
export function ceilMul(a: bigint, b: bigint): bigint {
  return ceilDiv(a * b, WAD);
}

export function abs(x: bigint): bigint {
  return x < 0n ? -x : x;
}

/** Value of a position at a price, rounded against the trader: a long's down, a short's up. */
export function notional(size: bigint, price: bigint): bigint {
  return size > 0n ? (size * price) / WAD : ceilMul(-size, price);
}

/** Funding the position owes since it last settled: ceil(size * (index - lastIndex) / WAD), toward +infinity. */
export function fundingOwed(size: bigint, lastIndex: bigint, index: bigint): bigint {
  const x = size * (index - lastIndex);
  // bigint division truncates toward zero, which is the ceiling for negatives, as in Solidity.
  return x <= 0n ? x / WAD : (x + WAD - 1n) / WAD;
}

/** The market's funding index at `timestamp`, as the contract computes it lazily at mark `price`. */
export function fundingIndexAt(funding: FundingState, price: bigint, timestamp: bigint): bigint {
  const elapsed = timestamp - funding.lastFundingTime;
  return funding.cumulativeFundingIndex + (funding.fundingRatePerSecond * elapsed * price) / WAD;
}

/** Margin balance and maintenance requirement at a mark price and funding index (PerpEngine._health). */
export function health(p: PositionState, maintenanceMarginRatio: bigint, price: bigint, fundingIndex: bigint): Health {
  if (p.size === 0n) return { marginBalance: p.margin, maintenanceRequirement: 0n, liquidatable: false };
  const value = notional(p.size, price);
  const pnl = p.size > 0n ? value - p.openNotional : p.openNotional - value;
  const marginBalance = p.margin + pnl - fundingOwed(p.size, p.lastFundingIndex, fundingIndex);
  const maintenanceRequirement = ceilMul(value, maintenanceMarginRatio);
  return { marginBalance, maintenanceRequirement, liquidatable: marginBalance < maintenanceRequirement };
}

/** Initial margin requirement at a price: ceil(notional * initialMarginRatio). */
export function initialRequirement(size: bigint, price: bigint, initialMarginRatio: bigint): bigint {
  return ceilMul(notional(size, price), initialMarginRatio);
}

/** What liquidate() pays its caller: floor(notional * liquidationFeeRatio), WAD quote. */
export function keeperReward(size: bigint, price: bigint, liquidationFeeRatio: bigint): bigint {
  return (notional(size, price) * liquidationFeeRatio) / WAD;
}

/**
 * Exact liquidation price in oracle units at a fixed funding index (PerpEngine._liquidationPrice):
 * for a long the highest price at which it is liquidatable (0: none), for a short the lowest (0: every price).
 */
export function liquidationPriceUnits(p: PositionState, market: MarketRiskParams, fundingIndex: bigint): bigint {
  if (p.size === 0n) return 0n;
  const mmr = market.maintenanceMarginRatio;
  const owed = fundingOwed(p.size, p.lastFundingIndex, fundingIndex);
  if (p.size > 0n) {
    const d = p.openNotional + owed - p.margin;
    if (d <= 0n) return 0n;
    // largest N with N - ceil(N * mmr / WAD) < d
    let n = (d * WAD) / (WAD - mmr);
    while (n - ceilMul(n, mmr) >= d) n--;
    while (n + 1n - ceilMul(n + 1n, mmr) < d) n++;
    // largest price with floor(size * price / WAD) <= n
    return ((n + 1n) * WAD - 1n) / (p.size * market.priceScale);
  }
  const e = p.openNotional - owed + p.margin;
  if (e < 0n) return 0n;
  // smallest N with N + ceil(N * mmr / WAD) > e
  let k = (e * WAD) / (WAD + mmr);
  while (k > 0n && k - 1n + ceilMul(k - 1n, mmr) > e) k--;
  while (k + ceilMul(k, mmr) <= e) k++;
  if (k === 0n) return 0n;
  // smallest price with ceil(|size| * price / WAD) >= k
  return ((k - 1n) * WAD) / (-p.size * market.priceScale) + 1n;
}
