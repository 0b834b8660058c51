/** Human-facing figures of a position, in decimal.js: for logs and the status view, never for decisions. */
import { Decimal } from "decimal.js";
import { fromUnits, fromWad } from "../../ops/decimals.ts";
import type { Market, TrackedPosition } from "./book.ts";
import { abs, health, liquidationPriceUnits, notional } from "./math.ts";

export interface PositionView {
  readonly trader: string;
  readonly market: string;
  readonly side: "long" | "short";
  readonly size: string;
  readonly entryPrice: string;
  readonly markPrice: string;
  readonly notional: string;
  readonly marginBalance: string;
  readonly maintenanceRequirement: string;
  /** marginBalance / notional. */
  readonly marginRatio: string;
  /** notional / marginBalance. */
  readonly leverage: string;
  readonly liquidationPrice: string;
  /** (mark - liquidation price) / mark, signed so that positive means room before liquidation. */
  readonly distanceToLiquidation: string;
}

export function describePosition(
  p: TrackedPosition,
  market: Market,
  markPrice: bigint,
  fundingIndex: bigint,
): PositionView {
  const h = health(p, market.maintenanceMarginRatio, markPrice, fundingIndex);
  const value = fromWad(notional(p.size, markPrice));
  const balance = fromWad(h.marginBalance);
  const mark = fromWad(markPrice);
  const liq = fromUnits(liquidationPriceUnits(p, market, fundingIndex), market.priceScale);
  const long = p.size > 0n;
  const distance = mark.isZero() ? new Decimal(0) : (long ? mark.minus(liq) : liq.minus(mark)).div(mark);
  return {
    trader: p.trader,
    market: market.name,
    side: long ? "long" : "short",
    size: fromWad(abs(p.size)).toSignificantDigits(12).toString(),
    entryPrice: fromWad(p.openNotional)
      .div(fromWad(abs(p.size)))
      .toDecimalPlaces(4)
      .toString(),
    markPrice: mark.toDecimalPlaces(4).toString(),
    notional: value.toDecimalPlaces(2).toString(),
    marginBalance: balance.toDecimalPlaces(2).toString(),
    maintenanceRequirement: fromWad(h.maintenanceRequirement).toDecimalPlaces(2).toString(),
    marginRatio: value.isZero() ? "0" : balance.div(value).toDecimalPlaces(6).toString(),
    leverage: balance.lte(0) ? "inf" : value.div(balance).toDecimalPlaces(2).toString(),
    liquidationPrice: liq.toDecimalPlaces(4).toString(),
    distanceToLiquidation: distance.toDecimalPlaces(6).toString(),
  };
}

export { fromUnits, fromWad };
