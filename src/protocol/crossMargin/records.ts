/**
 * The cross-margin exchange's book as immutable records (src/state/recordBook.ts): accounts by their uint128 id (as a
 * decimal string: ids pass 2^53), markets by a dense price id given in listing order, and the global configuration.
 * Everything here is rebuilt from the exchange's events alone (docs/cross-margin-engine.md).
 */
import type { Address } from "viem";
import type { BookView } from "../../state/recordBook.ts";
import type { AccountRecord, PriceId } from "../types.ts";
import type { CrossMarginGlobalConfig, CrossMarginMarketConfig } from "./math.ts";

export const CROSS_MARGIN_ADAPTER = "cross-margin";

/** One open position: signed base WAD, and the price its pnl runs from (the last fill). */
export interface CrossMarginPosition {
  readonly size: bigint;
  readonly entryPrice: bigint;
}

export interface CrossMarginAccount extends AccountRecord {
  /** The account id in decimal. */
  readonly key: string;
  readonly id: bigint;
  /** Lower case. */
  readonly owner: Address;
  /** Quote WAD, signed (realized pnl and fees included; 0 once seized by a flag). */
  readonly collateral: bigint;
  /** Open positions by price id (nonzero sizes only); `prices` lists their ids ascending. */
  readonly positions: ReadonlyMap<PriceId, CrossMarginPosition>;
  /** Flagged for liquidation: collateral seized, positions closed window by window until none is left. */
  readonly flagged: boolean;
}

/** One liquidation recorded in a market's rolling window. */
export interface WindowEntry {
  readonly timestamp: bigint;
  readonly amount: bigint;
}

export interface CrossMarginMarket {
  /** The keeper's dense id of the market (its price id): listing order. */
  readonly priceId: PriceId;
  /** The exchange's own id (uint128). */
  readonly marketId: bigint;
  readonly name: string;
  /** Undefined until its MarketConfigured: unpriced meanwhile. */
  readonly config: CrossMarginMarketConfig | undefined;
  /** Liquidations still counted in the rolling window at the last one's time, oldest first. */
  readonly window: readonly WindowEntry[];
}

export interface CrossMarginGlobal {
  /** Undefined until the GlobalConfigured of the exchange's constructor. */
  readonly config: CrossMarginGlobalConfig | undefined;
}

export type CrossMarginBookView = BookView<CrossMarginAccount, CrossMarginMarket, CrossMarginGlobal>;

export const INITIAL_GLOBAL: CrossMarginGlobal = { config: undefined };

/** The book's key of an account id. */
export function accountKey(id: bigint): string {
  return id.toString(10);
}

/** The market with the exchange's id `marketId`, if listed. */
export function marketById(
  book: Pick<CrossMarginBookView, "markets">,
  marketId: bigint,
): CrossMarginMarket | undefined {
  for (const m of book.markets.values()) if (m.marketId === marketId) return m;
  return undefined;
}

/** An account record with `positions` (and its price list) replaced. */
export function withPositions(
  account: CrossMarginAccount,
  positions: ReadonlyMap<PriceId, CrossMarginPosition>,
): CrossMarginAccount {
  return { ...account, positions, prices: [...positions.keys()].sort((a, b) => a - b) };
}
