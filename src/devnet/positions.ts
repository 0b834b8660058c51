/**
 * The devnet's traders and positions: the textbook examples and a spread of longs and shorts at leverages from
 * 2x to each market's maximum.
 */
import { parseUnits } from "viem";
import { ceilMul, WAD } from "../protocol/perpEngine/math.ts";
import { COLLATERAL_DECIMALS, DEVNET_MARKETS, type DevExchange, ORACLE_DECIMALS } from "./exchange.ts";

export interface PositionSpec {
  /** Index of the trader's account in Anvil's mnemonic (0 owns the exchange, 1 is the keeper). */
  readonly trader: number;
  readonly marketId: number;
  readonly side: "long" | "short";
  /** Margin left after the trading fee, in collateral (decimal string). */
  readonly margin: string;
  readonly leverage: number;
  readonly label?: string;
}

export const BTC = 0;
export const ETH = 1;

/** The examples traders learn liquidation from (docs/risk.md works them through). */
export const TEXTBOOK_POSITIONS: readonly PositionSpec[] = [
  {
    trader: 2,
    marketId: BTC,
    side: "long",
    margin: "1000",
    leverage: 10,
    label: "10x long BTC at 60,000, 1,000 margin",
  },
  { trader: 3, marketId: ETH, side: "long", margin: "500", leverage: 20, label: "20x long ETH, 500 margin" },
];

export const SPREAD_LEVERAGES = [2, 3, 5, 8, 10, 12, 15, 18, 20] as const;

/** Textbook examples plus, for both markets and sides, one position per leverage of SPREAD_LEVERAGES. */
export function devnetPositions(): PositionSpec[] {
  const specs: PositionSpec[] = [...TEXTBOOK_POSITIONS];
  let trader = 4;
  for (const side of ["long", "short"] as const) {
    for (const [i, leverage] of SPREAD_LEVERAGES.entries()) {
      for (const marketId of [BTC, ETH]) {
        specs.push({ trader, marketId, side, leverage, margin: String(500 + 250 * i) });
      }
      trader++;
    }
  }
  return specs;
}

/** How many Anvil accounts the devnet needs. */
export function accountsNeeded(specs: readonly PositionSpec[]): number {
  return Math.max(...specs.map((s) => s.trader)) + 1;
}

/**
 * Opens a position at the current oracle price: size = margin * leverage / price, with the trading fee added to
 * the deposit (rounded up to whole collateral units) so that the position holds at least `margin` after it.
 */
export async function openPosition(ex: DevExchange, spec: PositionSpec): Promise<void> {
  const market = DEVNET_MARKETS[spec.marketId];
  if (!market) throw new Error(`unknown market ${spec.marketId}`);
  const wallet = ex.trader(spec.trader);
  const answer = await ex.price(spec.marketId);
  const price = answer * 10n ** BigInt(18 - ORACLE_DECIMALS);
  const marginWad = parseUnits(spec.margin, 18);
  const notional = marginWad * BigInt(spec.leverage);
  const size = (notional * WAD) / price;
  const fee = ceilMul(ceilMul(size, price), parseUnits(market.tradingFeeRatio, 18));
  const scale = 10n ** BigInt(18 - COLLATERAL_DECIMALS);
  const deposit = (marginWad + fee + scale - 1n) / scale;
  await ex.fund(wallet, deposit);
  await ex.trade(wallet, spec.marketId, spec.side === "long" ? size : -size, deposit);
}

export async function openPositions(ex: DevExchange, specs: readonly PositionSpec[]): Promise<void> {
  // one trader's transactions in order; different traders in parallel
  const byTrader = new Map<number, PositionSpec[]>();
  for (const s of specs) byTrader.set(s.trader, [...(byTrader.get(s.trader) ?? []), s]);
  await Promise.all(
    [...byTrader.values()].map(async (list) => {
      for (const s of list) await openPosition(ex, s);
    }),
  );
}
