/**
 * A reference cross-margin model for tests and the benchmark: Perp v2's shape in exact bigint arithmetic, rounded like
 * Solidity (signed division truncates toward zero).
 *
 *   accountValue = collateral + Σ_i (size_i·p_i/1e18 + openNotional_i) − Σ_i size_i·(F_i(t) − F0_i)/1e18
 *   requirement  = (Σ_i |size_i|·p_i/1e18 · mmRatio_i) / 1e6                       (mmRatio 62,500: 6.25 %)
 *   slack        = accountValue − requirement; liquidatable iff slack < 0
 *
 * F_i(t) is a per-market funding accumulator (quote WAD per base WAD) growing at a rate of at most the market's
 * `rateBound` per second, so time matters. In `bounded` mode the funding each account owes is only known
 * within ± `fundingUncertainty` per base WAD: evaluations are ranges that contain the exact slack.
 */
import type { AccountRecord, Evaluation, MarginModel, PriceId, PriceView, Sensitivity } from "../../protocol/types.ts";

export const WAD = 10n ** 18n;
export const RATIO_ONE = 1_000_000n;
export const MM_RATIO = 62_500n;

export interface LinearPosition {
  /** Signed base WAD: long > 0, short < 0. */
  readonly size: bigint;
  /** Signed quote WAD (Perp v2: a long's is negative, the quote paid). */
  readonly openNotional: bigint;
  /** F_i when the account last settled funding in this market. */
  readonly fundingIndex: bigint;
}

export interface LinearAccount extends AccountRecord {
  /** Quote WAD, signed (realised PnL included). */
  readonly collateral: bigint;
  /** One per price of `prices`, in the same order. */
  readonly positions: readonly LinearPosition[];
}

export interface LinearMarket {
  mmRatio: bigint;
  /** |dF/dt| ≤ rateBound. */
  readonly rateBound: bigint;
  /** F at `time`, and its rate per second since. */
  index: bigint;
  rate: bigint;
  time: bigint;
  /** F at `at`, cached for the evaluations of one view. */
  at: bigint;
  indexAt: bigint;
}

export interface LinearModelOptions {
  /** Markets 0 .. markets − 1, one price each. */
  readonly markets: number;
  readonly mmRatio?: bigint;
  /** |dF_i/dt| ≤ this, quote WAD per base WAD per second: one for every market, or one per market. */
  readonly fundingRateBound: bigint | readonly bigint[];
  readonly exactness?: "exact" | "bounded";
  /** Bounded mode: each account's funding is known within ± this per base WAD. */
  readonly fundingUncertainty?: bigint;
  /** How long the sensitivity's perSecond is declared valid (the rate bound holds forever). Default a day. */
  readonly horizon?: bigint;
  readonly startTime?: bigint;
}

/** An account from its positions in any order (prices ascending, as AccountRecord requires). */
export function linearAccount(
  key: string,
  collateral: bigint,
  positions: readonly (LinearPosition & { readonly price: PriceId })[],
): LinearAccount {
  const sorted = [...positions].sort((a, b) => a.price - b.price);
  return {
    key,
    prices: sorted.map((p) => p.price),
    collateral,
    positions: sorted.map(({ size, openNotional, fundingIndex }) => ({ size, openNotional, fundingIndex })),
  };
}

const abs = (x: bigint): bigint => (x < 0n ? -x : x);
/** Slopes are declared a hair above their exact value: they are upper bounds, and the doubles round. */
const UP = 1 + 1e-12;

export class LinearModel implements MarginModel<LinearAccount> {
  readonly markets: LinearMarket[];
  readonly exactness: "exact" | "bounded";
  readonly fundingUncertainty: bigint;
  readonly horizon: bigint;

  constructor(options: LinearModelOptions) {
    const start = options.startTime ?? 0n;
    const bounds = options.fundingRateBound;
    this.markets = Array.from({ length: options.markets }, (_, i) => ({
      mmRatio: options.mmRatio ?? MM_RATIO,
      rateBound: typeof bounds === "bigint" ? bounds : (bounds[i] ?? 0n),
      index: 0n,
      rate: 0n,
      time: start,
      at: start,
      indexAt: 0n,
    }));
    this.exactness = options.exactness ?? "exact";
    this.fundingUncertainty = options.fundingUncertainty ?? 0n;
    this.horizon = options.horizon ?? 86_400n;
  }

  /** F_i(t). */
  fundingIndex(price: PriceId, t: bigint): bigint {
    const m = this.market(price);
    return m.index + m.rate * (t - m.time);
  }

  /** Settles F_i at `at` and changes its rate (within the bound): no account's sensitivity changes. */
  setFundingRate(price: PriceId, rate: bigint, at: bigint): void {
    const m = this.market(price);
    if (abs(rate) > m.rateBound) throw new Error(`funding rate ${rate} beyond the bound ${m.rateBound}`);
    m.index = this.fundingIndex(price, at);
    m.time = at;
    m.rate = rate;
    m.at = at;
    m.indexAt = m.index;
  }

  /** A market parameter change: the risk engine must be told (touchPrice). */
  setMmRatio(price: PriceId, mmRatio: bigint): void {
    if (mmRatio < 0n || mmRatio > RATIO_ONE) throw new Error(`mmRatio ${mmRatio}`);
    this.market(price).mmRatio = mmRatio;
  }

  /** The contract's exact answer, whatever the mode. */
  exact(account: LinearAccount, at: PriceView): Evaluation {
    let balance = account.collateral;
    let requirement = 0n;
    let missing: PriceId[] | undefined;
    const prices = account.prices;
    for (let i = 0; i < prices.length; i++) {
      const id = prices[i] as PriceId;
      const p = at.prices.get(id);
      if (p === undefined) {
        if (missing === undefined) missing = [id];
        else missing.push(id);
        continue;
      }
      const pos = account.positions[i] as LinearPosition;
      const m = this.market(id);
      if (m.at !== at.timestamp) {
        m.at = at.timestamp;
        m.indexAt = m.index + m.rate * (at.timestamp - m.time);
      }
      const size = pos.size;
      // |trunc(size·p / 1e18)| = trunc(|size|·p / 1e18): the position value gives the notional too
      const value = (size * p) / WAD;
      balance += value + pos.openNotional - (size * (m.indexAt - pos.fundingIndex)) / WAD;
      requirement += (value < 0n ? -value : value) * m.mmRatio;
    }
    if (missing !== undefined) return { kind: "unpriced", missing };
    return { kind: "exact", balance, requirement: requirement / RATIO_ONE };
  }

  evaluate(account: LinearAccount, at: PriceView): Evaluation {
    const exact = this.exact(account, at);
    if (this.exactness === "exact" || exact.kind !== "exact") return exact;
    // the funding owed is known within ± delta: an estimate off by a pseudo-random amount, and the range around it
    let base = 0n;
    for (const pos of account.positions) base += abs(pos.size);
    const delta = (base * this.fundingUncertainty) / WAD + 1n;
    const offset = (delta * BigInt(hash(account.key, at.timestamp))) / 2_147_483_648n - delta;
    const estimate = exact.balance - exact.requirement + offset;
    return { kind: "bounded", low: estimate - delta, high: estimate + delta, requirement: exact.requirement };
  }

  sensitivity(account: LinearAccount, _at: PriceView): Sensitivity {
    const down = new Map<PriceId, number>();
    const up = new Map<PriceId, number>();
    let perSecond = 0;
    const prices = account.prices;
    for (let i = 0; i < prices.length; i++) {
      const id = prices[i] as PriceId;
      const size = (account.positions[i] as LinearPosition).size;
      if (size === 0n) continue;
      const s = Number(size) / 1e18;
      const market = this.market(id);
      const m = Number(market.mmRatio) / 1e6;
      // d slack / d p = s − |s|·m (per WAD of price): a long loses on a fall (if m < 1), a short on a rise
      const slope = size > 0n ? s * (1 - m) : s * (1 + m);
      if (slope > 0) down.set(id, slope * UP);
      else if (slope < 0) up.set(id, -slope * UP);
      perSecond += Math.abs(s) * Number(market.rateBound);
    }
    return {
      down,
      up,
      perSecond: perSecond * UP,
      horizon: this.horizon,
      // each of the 3k + 1 truncations is off by less than a wei, at both evaluations
      rounding: BigInt(6 * prices.length + 2),
    };
  }

  private market(price: PriceId): LinearMarket {
    const m = this.markets[price];
    if (m === undefined) throw new Error(`no market for price ${price}`);
    return m;
  }
}

/** FNV-1a of the key and the time, 32 bits. */
function hash(key: string, t: bigint): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  const x = Number(t & 0xffffffffn);
  h = Math.imul(h ^ x, 0x01000193);
  h = Math.imul(h ^ (h >>> 15), 0x85ebca6b);
  return (h ^ (h >>> 13)) >>> 0;
}
