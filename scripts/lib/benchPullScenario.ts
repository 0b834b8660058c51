/**
 * The pull-oracle benchmark's scenario on the cross-margin exchange (src/devnet/crossMargin): its markets with small
 * liquidation windows, its population and its crash.
 *
 * Markets: ETH at 3000 and BTC at 60000 (the devnet's Synthetix-like settings), each with a rolling liquidation window
 * of `windowSeconds` (default 5) and maxLiquidationLimitAccumulationMultiplier `multiplier` (default 0.02): a cap of
 * (0.0002 + 0.0005) x skewScale x multiplier x windowSeconds a window, 70 ETH and 2.45 BTC by default.
 *
 * Population, for `n` accounts the crash (ETH 3000 -> 2600, BTC 60000 -> 52000, one Hermes message) makes
 * liquidatable, and `healthy` it leaves healthy:
 * - five large accounts, each beyond one window's cap in a market: ETH 80 and 75, BTC 3.0 and 2.6, and one with
 *   ETH 72 and BTC 2.5 (cross margin);
 * - the rest small (notional about 1500 USD a position), in turn: ETH long, BTC long, ETH and BTC long (cross
 *   margin), ETH long with a small BTC short (cross margin: the short's gain does not save it);
 * - healthy: ETH shorts (the crash pays them), well-collateralised ETH longs, and ETH and BTC longs.
 */
import { parseUnits } from "viem";
import {
  type CrossMarginAccountSpec,
  type CrossMarginMarketSpec,
  DEFAULT_CROSS_MARGIN_MARKETS,
} from "../../src/devnet/crossMargin/deploy.ts";

export const CRASH = { ETH: "2600", BTC: "52000" } as const;

/** The devnet's markets with the bench's liquidation windows. */
export function benchMarkets(windowSeconds: number, multiplier: string): CrossMarginMarketSpec[] {
  return DEFAULT_CROSS_MARGIN_MARKETS.map((m) => ({
    ...m,
    config: {
      ...m.config,
      maxSecondsInLiquidationWindow: BigInt(windowSeconds),
      maxLiquidationLimitAccumulationMultiplier: parseUnits(multiplier, 18),
    },
  }));
}

export type AccountKind =
  | "large ETH"
  | "large BTC"
  | "large ETH+BTC"
  | "ETH"
  | "BTC"
  | "ETH+BTC"
  | "ETH+BTC short"
  | "healthy";

export interface BenchAccount extends Omit<CrossMarginAccountSpec, "trader"> {
  readonly kind: AccountKind;
}

const LARGE: readonly BenchAccount[] = [
  { kind: "large ETH", collateral: "8000", positions: [{ market: "ETH", size: "80" }] },
  { kind: "large ETH", collateral: "7000", positions: [{ market: "ETH", size: "75" }] },
  { kind: "large BTC", collateral: "6000", positions: [{ market: "BTC", size: "3" }] },
  { kind: "large BTC", collateral: "5500", positions: [{ market: "BTC", size: "2.6" }] },
  {
    kind: "large ETH+BTC",
    collateral: "14000",
    positions: [
      { market: "ETH", size: "72" },
      { market: "BTC", size: "2.5" },
    ],
  },
];

/** `n` accounts the crash makes liquidatable (at least 10), then `healthy` it does not, interleaved. */
export function population(n: number, healthy: number): BenchAccount[] {
  if (n < LARGE.length * 2) throw new Error(`the bench needs at least ${LARGE.length * 2} liquidatable accounts`);
  const liquidatable: BenchAccount[] = [...LARGE];
  for (let i = 0; liquidatable.length < n; i++) {
    const extra = (i % 7) * 10;
    switch (i % 8) {
      case 0:
      case 1:
      case 2:
        liquidatable.push({
          kind: "ETH",
          collateral: String(150 + extra),
          positions: [{ market: "ETH", size: "0.5" }],
        });
        break;
      case 3:
      case 4:
        liquidatable.push({
          kind: "BTC",
          collateral: String(150 + extra),
          positions: [{ market: "BTC", size: "0.025" }],
        });
        break;
      case 5:
      case 6:
        liquidatable.push({
          kind: "ETH+BTC",
          collateral: String(300 + extra),
          positions: [
            { market: "ETH", size: "0.5" },
            { market: "BTC", size: "0.025" },
          ],
        });
        break;
      default:
        liquidatable.push({
          kind: "ETH+BTC short",
          collateral: "200",
          positions: [
            { market: "ETH", size: "0.5" },
            { market: "BTC", size: "-0.01" },
          ],
        });
    }
  }
  const safe: BenchAccount[] = Array.from({ length: healthy }, (_, i) => {
    switch (i % 3) {
      case 0:
        return { kind: "healthy", collateral: "200", positions: [{ market: "ETH", size: "-0.5" }] };
      case 1:
        return { kind: "healthy", collateral: "600", positions: [{ market: "ETH", size: "0.5" }] };
      default:
        return {
          kind: "healthy",
          collateral: "1500",
          positions: [
            { market: "ETH", size: "0.5" },
            { market: "BTC", size: "0.025" },
          ],
        };
    }
  });
  // healthy accounts spread among the others, so that account ids say nothing of health
  const out: BenchAccount[] = [];
  const every = healthy > 0 ? Math.max(1, Math.floor(liquidatable.length / healthy)) : Number.POSITIVE_INFINITY;
  let h = 0;
  for (const [i, a] of liquidatable.entries()) {
    out.push(a);
    if ((i + 1) % every === 0 && h < safe.length) out.push(safe[h++] as BenchAccount);
  }
  while (h < safe.length) out.push(safe[h++] as BenchAccount);
  return out;
}
