/**
 * The synthetic exchange of `bench:risk --book cross` (scripts/lib/benchRiskCross.ts): 8 markets, Perp-v2 shaped
 * accounts (LinearModel) in 1, 2 or 4 of them, seeded, healthy when opened at a distance from liquidation uniform in
 * 0.2 %..50 % of a move of all their prices against them (about 2 % of accounts within 1 %: the design's ρ = 2);
 * trades; a mean-reverting random walk of the prices.
 */
import { highSlack } from "../../src/protocol/types.ts";
import { type LinearAccount, LinearModel, linearAccount, WAD } from "../../src/risk/cross/linearModel.ts";

/** mulberry32: seeded so that every run builds the same books. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const MARKETS = [
  { name: "BTC", price: 60_000, weight: 0.3 },
  { name: "ETH", price: 3_000, weight: 0.25 },
  { name: "SOL", price: 150, weight: 0.12 },
  { name: "BNB", price: 600, weight: 0.08 },
  { name: "AVAX", price: 30, weight: 0.07 },
  { name: "LINK", price: 15, weight: 0.07 },
  { name: "DOGE", price: 0.15, weight: 0.06 },
  { name: "ARB", price: 1.2, weight: 0.05 },
] as const;
const NOW = 1_700_000_000n;
const wad = (x: number): bigint => BigInt(Math.round(x * 1e9)) * 10n ** 9n;
export const scale = (x: bigint, f: number): bigint => (x * BigInt(Math.round(f * 1e9))) / 1_000_000_000n;
/** Funding at most 10 % of the price a day. */
const RATE_BOUNDS = MARKETS.map((m) => wad((m.price * 0.1) / 86_400));

export class Exchange {
  readonly random: () => number;
  readonly model = new LinearModel({ markets: MARKETS.length, fundingRateBound: RATE_BOUNDS, startTime: NOW });
  prices: bigint[] = MARKETS.map((m) => wad(m.price));
  time = NOW;
  private next = 0;

  constructor(seed: number) {
    this.random = rng(seed);
    RATE_BOUNDS.forEach((bound, i) => {
      this.model.setFundingRate(i, scale(bound, (this.random() - 0.5) * 0.5), NOW - 3600n);
    });
  }

  view() {
    return { prices: new Map(this.prices.map((p, i) => [i, p])), timestamp: this.time, blockNumber: this.time - NOW };
  }

  private market(): number {
    let r = this.random();
    for (let i = 0; i < MARKETS.length; i++) {
      r -= (MARKETS[i] as { weight: number }).weight;
      if (r < 0) return i;
    }
    return MARKETS.length - 1;
  }

  /** An account healthy at the current prices, a relative move of 0.2 %..50 % of every price against it from liquidation. */
  open(): LinearAccount {
    const r = this.random;
    const u = r();
    const k = u < 2 / 3 ? 1 : u < 8 / 9 ? 2 : 4;
    const chosen = new Set<number>();
    while (chosen.size < k) chosen.add(this.market());
    const view = this.view();
    let adverse = 0;
    const positions = [...chosen].map((price) => {
      const p = this.prices[price] as bigint;
      const long = r() < 0.52;
      const notional = 50 * 10 ** (r() * 4.6); // $50 .. $2M
      const size = (wad(notional) * WAD) / p;
      const signed = long ? size : -size;
      const entry = scale(p, 1 + (r() + r() + r() - 1.5) * 0.02);
      const fundingIndex = this.model.fundingIndex(price, this.time) + scale(p, (r() - 0.5) * 0.004);
      adverse += notional * (long ? 1 - 0.0625 : 1 + 0.0625);
      return { price, size: signed, openNotional: -(signed * entry) / WAD, fundingIndex };
    });
    const key = `0x${(this.next++).toString(16).padStart(40, "0")}`;
    const bare = linearAccount(key, 0n, positions);
    const slack0 = highSlack(this.model.exact(bare, view)) as bigint;
    const target = wad(adverse * (0.002 + r() * 0.5));
    return { ...bare, collateral: target - slack0 };
  }

  /** A trade of an existing account: one position resized by ±20 %, or the collateral moved by ±3 % of it. */
  trade(account: LinearAccount): LinearAccount {
    const r = this.random;
    if (r() < 0.5 || account.prices.length === 0) {
      return { ...account, collateral: scale(account.collateral, 1 + (r() - 0.5) * 0.06) };
    }
    const i = Math.floor(r() * account.prices.length);
    const f = 0.8 + r() * 0.4;
    return {
      ...account,
      positions: account.positions.map((p, j) =>
        j === i ? { ...p, size: scale(p.size, f) || p.size, openNotional: scale(p.openNotional, f) } : p,
      ),
    };
  }

  /** One calm step: every price moves 0.05-0.2 %, back toward its start beyond ±2 %; one second passes. */
  walk(): void {
    const r = this.random;
    this.prices = this.prices.map((p, i) => {
      const step = 0.0005 + r() * 0.0015;
      const deviation = Number(p) / Number(wad(MARKETS[i]?.price ?? 1)) - 1;
      const down = deviation > 0.02 ? true : deviation < -0.02 ? false : r() < 0.5;
      return scale(p, down ? 1 - step : 1 + step);
    });
    this.time += 1n;
  }
}
