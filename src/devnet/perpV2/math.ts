/** Price and tick arithmetic for the Perp v2 devnet (Uniswap v3 pools with base as token0, both 18 decimals). */

const Q96 = 2n ** 96n;
const Q192 = Q96 * Q96;

/** Uniswap v3's tick range, and its full range rounded inward to the 0.3% fee tier's spacing (60). */
export const MIN_TICK = -887272;
export const MAX_TICK = 887272;
export const TICK_SPACING = 60;
export const FULL_RANGE_LOWER_TICK = -887220;
export const FULL_RANGE_UPPER_TICK = 887220;

/** Integer square root (floor). */
export function isqrt(n: bigint): bigint {
  if (n < 0n) throw new Error("isqrt of a negative number");
  if (n < 2n) return n;
  // a float guess, then one Newton step, which lands at or above the root (AM-GM), then Newton down to the floor
  let x = BigInt(Math.floor(Math.sqrt(Number(n)))) + 1n;
  x = (x + n / x) >> 1n;
  for (;;) {
    const y = (x + n / x) >> 1n;
    if (y >= x) return x;
    x = y;
  }
}

/** A decimal string ("2000", "1820.5") as a fraction num/den. */
function decimalFraction(price: string): { num: bigint; den: bigint } {
  const match = /^(\d+)(?:\.(\d+))?$/.exec(price.trim());
  if (!match) throw new Error(`not a non-negative decimal price: ${price}`);
  const fraction = match[2] ?? "";
  return { num: BigInt(`${match[1]}${fraction}`), den: 10n ** BigInt(fraction.length) };
}

/** sqrt(price)·2^96 for a price in quote per base (a decimal string or number). */
export function priceToSqrtPriceX96(price: string | number): bigint {
  const { num, den } = decimalFraction(typeof price === "number" ? toDecimalString(price) : price);
  if (num === 0n) throw new Error("price must be positive");
  return isqrt((num * Q192) / den);
}

/** The price (quote per base) of a sqrtPriceX96, as a float. */
export function sqrtPriceX96ToPrice(sqrtPriceX96: bigint): number {
  // 1e18-scaled integer first, to keep precision for large prices
  return Number((sqrtPriceX96 * sqrtPriceX96 * 10n ** 18n) / Q192) / 1e18;
}

/** A tick rounded toward zero to a multiple of the spacing (inside the usable range). */
export function roundTick(tick: number, spacing = TICK_SPACING): number {
  return Math.trunc(tick / spacing) * spacing;
}

/** The tick of a price (quote per base), rounded down to a multiple of the spacing. */
export function priceToTick(price: number, spacing = TICK_SPACING): number {
  if (!(price > 0)) throw new Error(`price must be positive: ${price}`);
  const tick = Math.floor(Math.log(price) / Math.log(1.0001));
  return Math.floor(tick / spacing) * spacing;
}

/** A number as a plain decimal string (no exponent), for prices given as numbers. */
export function toDecimalString(value: number, decimals = 12): string {
  if (!Number.isFinite(value) || value < 0) throw new Error(`not a non-negative finite number: ${value}`);
  const fixed = value.toFixed(decimals);
  return fixed.includes(".") ? fixed.replace(/\.?0+$/, "") : fixed;
}

/** An 18-decimal fixed-point value as a float (for reports and assertions with tolerance). */
export function fromX18(value: bigint): number {
  return Number(value) / 1e18;
}
