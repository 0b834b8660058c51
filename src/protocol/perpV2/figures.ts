/**
 * An account's figures at a price view, in the contracts' integer arithmetic (@perp/curie-contract 2.8.4):
 *
 *   ClearingHouse.getAccountValue = floor6( balance·1e12 + owedRealizedPnl − Σ pendingFunding + Σ positionValue
 *                                           + Σ takerOpenNotional [+ pending maker fees + makers' pool quote] )·1e12
 *   (ClearingHouse.sol:583-585, Vault.sol:956-969, 861-879, AccountBalance.sol:251-271, 501-522)
 *   getMarginRequirementForLiquidation = mulRatio(Σ |positionValue_i|, mmRatio)   (AccountBalance.sol:388-407)
 *   positionValue_i = mulDiv(dustFiltered(size_i), referencePrice_i, 1e18) toward zero   (AccountBalance.sol:479-487)
 *
 * Only the pending funding is not known from events: each market's global growth is known up to its last
 * FundingUpdated (book.ts), and the growth since then is clamp(marketTwap − indexTwap)·(t − lastSettled), evaluated
 * with the TWAPs at the time of the call (Exchange.sol:580-608). With the market TWAP and the index TWAP in the view
 * it is known to the wei the 18-decimal market TWAP leaves; with the index TWAP alone it is bounded by the clamp,
 * ±index·maxFundingRate per second; with neither it is unbounded. Makers (open orders: pool balances, fees, the
 * liquidity's funding) and non-settlement collateral are not followed: their accounts get an open bound (confirm by read).
 */
import type { Address } from "viem";
import type { PriceId, PriceView } from "../types.ts";
import {
  abs,
  deltaTwapRange,
  dustFiltered,
  floorToSettlement,
  maxDeltaTwapX96,
  mulRatio,
  positionValue,
  takerFundingRange,
} from "./math.ts";
import type { PerpV2Account, PerpV2BookView, PerpV2Market, PerpV2Position } from "./records.ts";

/** A slack or value bound that is not a bound (an open side). */
export const UNBOUNDED = 1n << 255n;

export interface PositionFigures {
  readonly baseToken: Address;
  readonly priceId: PriceId;
  /** getTotalPositionSize for a taker: the stored size, dust read as 0. */
  readonly size: bigint;
  readonly value: bigint;
  readonly openNotional: bigint;
  /** Pending funding (positive: the trader pays), [lo, hi]; UNBOUNDED sides when it cannot be bounded. */
  readonly funding: readonly [bigint, bigint];
  /** Seconds of funding not yet in the market's global growth. */
  readonly tail: bigint;
  /** The growth rate range the bound used for that tail (X96 per second), and the clamp's maximum. */
  readonly rate?: { readonly lo: bigint; readonly hi: bigint; readonly max: bigint };
  readonly orders: number;
}

export type AccountFigures =
  | { readonly kind: "unpriced"; readonly missing: readonly PriceId[] }
  | {
      readonly kind: "priced";
      /** ClearingHouse.getAccountValue's range (18 decimals, floored to the settlement token's). */
      readonly accountValue: readonly [bigint, bigint];
      readonly requirement: bigint;
      readonly totalAbsPositionValue: bigint;
      readonly positions: readonly PositionFigures[];
      /** Open orders somewhere: the figures ignore their pool balances, fees and funding. */
      readonly maker: boolean;
      /** Non-settlement collateral: left out of the value (it only adds to it). */
      readonly otherCollateral: boolean;
    };

/** The time the market's funding runs to (a paused market's stops at its pause: Exchange.sol:553). */
function marketTime(m: PerpV2Market, at: PriceView): bigint {
  return m.status === "open" ? at.timestamp : m.pausedAt;
}

function fundingOf(p: PerpV2Position, m: PerpV2Market, base: bigint, at: PriceView, maxFundingRate: bigint) {
  if (base === 0n) return { funding: [0n, 0n] as const, tail: 0n };
  // lastSettled 0: never settled, the growth is the stored one (Exchange.sol:580-582)
  const tail = m.lastSettled === 0n ? 0n : marketTime(m, at) - m.lastSettled;
  let gLo = m.growth.lo;
  let gHi = m.growth.hi;
  let rate: PositionFigures["rate"];
  if (tail > 0n) {
    const index = at.prices.get(m.indexTwapId);
    if (index === undefined) return { funding: [-UNBOUNDED, UNBOUNDED] as const, tail };
    const maxRate = maxDeltaTwapX96(index, maxFundingRate);
    const market = m.status === "open" ? at.prices.get(m.marketTwapId) : undefined;
    const [lo, hi] = market === undefined ? [-maxRate, maxRate] : deltaTwapRange(market, index, maxFundingRate);
    rate = { lo, hi, max: maxRate };
    gLo += lo * tail;
    gHi += hi * tail;
  }
  const funding = takerFundingRange(base, gLo - p.anchor.hi, gHi - p.anchor.lo);
  return rate ? { funding, tail, rate } : { funding, tail };
}

/** The account's figures at these prices and time, from the book's markets and parameters. */
export function accountFigures(
  account: PerpV2Account,
  book: Pick<PerpV2BookView, "markets" | "global">,
  at: PriceView,
): AccountFigures {
  const g = book.global;
  const missing: PriceId[] = [];
  const positions: PositionFigures[] = [];
  let maker = false;
  let totalAbs = 0n;
  let value = account.collateral;
  let fundingLo = 0n;
  let fundingHi = 0n;
  let unbounded = false;
  for (const p of account.positions.values()) {
    const m = book.markets.get(p.priceId);
    if (!m) throw new Error(`account ${account.key}: market ${p.priceId} not in the book`);
    if (p.orders.length > 0) maker = true;
    const size = dustFiltered(p.takerSize);
    const price = at.prices.get(p.priceId);
    if ((size !== 0n || p.orders.length > 0) && price === undefined) {
      missing.push(p.priceId);
      continue;
    }
    const pv = positionValue(size, price ?? 0n);
    totalAbs += abs(pv);
    value += pv + p.takerOpenNotional;
    // Exchange.getPendingFundingPayment: getBase = takerPositionSize (raw) − order base debt (AccountBalance.sol:345-349)
    const base = p.takerSize - p.orders.reduce((s, o) => s + o.baseDebt, 0n);
    const f = fundingOf(p, m, base, at, g.maxFundingRate);
    if (f.funding[0] === -UNBOUNDED) unbounded = true;
    else {
      fundingLo += f.funding[0];
      fundingHi += f.funding[1];
    }
    positions.push({
      baseToken: p.baseToken,
      priceId: p.priceId,
      size,
      value: pv,
      openNotional: p.takerOpenNotional,
      funding: f.funding,
      tail: f.tail,
      ...(f.rate ? { rate: f.rate } : {}),
      orders: p.orders.length,
    });
  }
  if (missing.length > 0) return { kind: "unpriced", missing: missing.sort((a, b) => a - b) };
  const d = g.settlementDecimals;
  const lo = unbounded || maker ? -UNBOUNDED : floorToSettlement(value - fundingHi, d);
  const hi =
    unbounded || maker || account.otherCollateral.size > 0 ? UNBOUNDED : floorToSettlement(value - fundingLo, d);
  return {
    kind: "priced",
    accountValue: [lo, hi],
    requirement: mulRatio(totalAbs, g.mmRatio),
    totalAbsPositionValue: totalAbs,
    positions,
    maker,
    otherCollateral: account.otherCollateral.size > 0,
  };
}

/**
 * Vault._getFreeCollateralByRatio (Vault.sol:815-840) for an account without open orders or other collateral:
 * min(totalCollateralValue, accountValue) − mulRatio(getTotalDebtValue, ratio), where totalCollateralValue is the
 * balance with owed PnL less pending funding (Vault.sol:861-879), accountValue adds the unrealized PnL (not floored
 * here), and the debt is |min(Σ takerOpenNotional, 0) + Σ over shorts of mulDiv(base, price, 1e18)|
 * (AccountBalance.sol:226-248). Floored to the settlement token's decimals as Vault.getFreeCollateralByRatio returns it
 * (times 10^(18−d)). [lo, hi] by the pending funding's range; undefined when the book cannot say.
 */
export function freeCollateralByRatio(
  account: PerpV2Account,
  book: Pick<PerpV2BookView, "markets" | "global">,
  at: PriceView,
  ratio: bigint,
): readonly [bigint, bigint] | undefined {
  const f = accountFigures(account, book, at);
  if (f.kind === "unpriced" || f.maker || f.otherCollateral || f.accountValue[0] === -UNBOUNDED) return undefined;
  let quote = 0n;
  let baseDebt = 0n;
  let unrealized = 0n;
  let fundingLo = 0n;
  let fundingHi = 0n;
  for (const p of f.positions) {
    const raw = account.positions.get(p.baseToken)?.takerSize ?? 0n;
    quote += p.openNotional;
    unrealized += p.value + p.openNotional;
    fundingLo += p.funding[0];
    fundingHi += p.funding[1];
    if (raw < 0n) {
      const price = at.prices.get(p.priceId);
      if (price === undefined) return undefined;
      baseDebt += positionValue(raw, price);
    }
  }
  const debt = abs((quote < 0n ? quote : 0n) + baseDebt);
  const required = mulRatio(debt, ratio);
  const free = (funding: bigint) => {
    const collateral = account.collateral - funding;
    const value = collateral + unrealized;
    return floorToSettlement((value < collateral ? value : collateral) - required, book.global.settlementDecimals);
  };
  return [free(fundingHi), free(fundingLo)];
}
