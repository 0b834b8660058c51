/** Human-facing decimals, in decimal.js: for logs, metrics and the status view, never for decisions. */
import { Decimal } from "decimal.js";

const WAD_DECIMAL = new Decimal((10n ** 18n).toString());

/** A WAD bigint as a Decimal (exact). */
export function fromWad(x: bigint): Decimal {
  return new Decimal(x.toString()).div(WAD_DECIMAL);
}

/** An oracle-unit price as a Decimal, given the market's scale. */
export function fromUnits(units: bigint, priceScale: bigint): Decimal {
  return new Decimal((units * priceScale).toString()).div(WAD_DECIMAL);
}
