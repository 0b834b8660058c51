/**
 * The Perp v2 book's records: per trader, per market, and the exchange's parameters. Immutable: a change replaces the
 * record (the reducer in book.ts returns before and after, and a reorganisation writes the befores back).
 * Field comments name the contract storage each one mirrors (@perp/curie-contract 2.8.4).
 */
import type { Address } from "viem";
import type { AccountKey, AccountRecord, PriceId } from "../types.ts";
import { abs, DUST } from "./math.ts";

/** The global twPremiumX96 (or a trader's snapshot of it), known within [lo, hi]. */
export interface Growth {
  readonly lo: bigint;
  readonly hi: bigint;
}

export type MarketStatus = "open" | "paused" | "closed";

export interface PerpV2Market {
  /** Its mark (reference) price in a PriceView. */
  readonly priceId: PriceId;
  /** The index TWAP over the funding interval (a ceiling of it will do), for the funding bound. */
  readonly indexTwapId: PriceId;
  /** The market (pool) TWAP over the funding interval, as formatX96ToX10_18; with the index TWAP, funding is exact. */
  readonly marketTwapId: PriceId;
  readonly baseToken: Address;
  readonly pool: Address;
  readonly feeRatio: number;
  readonly name: string;
  readonly status: MarketStatus;
  /** The block time it was paused (funding stops there). */
  readonly pausedAt: bigint;
  /** Exchange._globalFundingGrowthX96Map[base].twPremiumX96. */
  readonly growth: Growth;
  /** Exchange._lastSettledTimestampMap[base]; 0: never settled. */
  readonly lastSettled: bigint;
}

export interface PerpV2Order {
  readonly lowerTick: number;
  readonly upperTick: number;
  readonly liquidity: bigint;
  readonly baseDebt: bigint;
  readonly quoteDebt: bigint;
}

/** One registered base token of a trader (AccountBalance._accountMarketMap[trader][base] and its open orders). */
export interface PerpV2Position {
  readonly baseToken: Address;
  readonly priceId: PriceId;
  /** takerPositionSize as stored (dust included): Σ PositionChanged.exchangedPositionSize. */
  readonly takerSize: bigint;
  /** takerOpenNotional: the latest PositionChanged.openNotional. */
  readonly takerOpenNotional: bigint;
  /** lastTwPremiumGrowthGlobalX96: the market's growth when the trader last settled funding there. */
  readonly anchor: Growth;
  readonly orders: readonly PerpV2Order[];
}

export interface PerpV2Account extends AccountRecord {
  /** The trader's address, lower case (also the key). */
  readonly trader: Address;
  /** Vault._balance[trader][settlementToken], in the token's units. */
  readonly balance: bigint;
  /** AccountBalance._owedRealizedPnlMap[trader], quote WAD. */
  readonly owedRealizedPnl: bigint;
  /** balance scaled to WAD plus owed realized PnL: the collateral the account value starts from. */
  readonly collateral: bigint;
  /** Non-settlement collateral balances by token (lower case), in each token's units. */
  readonly otherCollateral: ReadonlyMap<Address, bigint>;
  /** By base token (lower case). */
  readonly positions: ReadonlyMap<Address, PerpV2Position>;
}

export interface PerpV2Global {
  readonly mmRatio: bigint;
  readonly imRatio: bigint;
  readonly liquidationPenaltyRatio: bigint;
  readonly maxFundingRate: bigint;
  readonly twapInterval: bigint;
  readonly settlementToken: Address;
  readonly settlementDecimals: number;
  readonly insuranceFund: Address;
  /** Base token (lower case) to its market's priceId. */
  readonly marketsByBase: ReadonlyMap<Address, PriceId>;
}

export interface PerpV2BookView {
  readonly markets: ReadonlyMap<PriceId, PerpV2Market>;
  readonly accounts: ReadonlyMap<AccountKey, PerpV2Account>;
  readonly global: PerpV2Global;
}

/** A liquidation an event reports (the penalty; the liquidator's share is half of it, all of it on bad debt). */
export interface PerpV2LiquidationSeen {
  readonly target: string;
  readonly liquidator: Address;
  readonly penalty: bigint;
  /** The trader has no position left in that market. */
  readonly full: boolean;
}

export type PerpV2Change =
  | {
      readonly type: "market";
      readonly id: PriceId;
      readonly before: PerpV2Market | undefined;
      readonly after: PerpV2Market;
    }
  | {
      readonly type: "account";
      readonly key: AccountKey;
      readonly before: PerpV2Account | undefined;
      readonly after: PerpV2Account;
      readonly liquidation?: PerpV2LiquidationSeen;
    }
  | { readonly type: "global"; readonly before: PerpV2Global; readonly after: PerpV2Global };

/** An event that cannot follow from the book (a market never listed: the start block is wrong). */
export class PerpV2BookError extends Error {
  override name = "PerpV2BookError";
}

/** The target key of one market of an account (types.ts: `${account}/${priceId}`). */
export function targetKey(trader: Address, priceId: PriceId): string {
  return `${trader.toLowerCase()}/${priceId}`;
}

/** The price ids of a market numbered k (0, 1, ...): dense, three per market. */
export function marketIds(k: number): { priceId: PriceId; indexTwapId: PriceId; marketTwapId: PriceId } {
  return { priceId: 3 * k, indexTwapId: 3 * k + 1, marketTwapId: 3 * k + 2 };
}

export function emptyAccount(trader: Address): PerpV2Account {
  const key = trader.toLowerCase() as Address;
  return {
    key,
    trader: key,
    prices: [],
    balance: 0n,
    owedRealizedPnl: 0n,
    collateral: 0n,
    otherCollateral: new Map(),
    positions: new Map(),
  };
}

/** The prices an account depends on: the mark of every market it holds, and the funding prices where base ≠ 0. */
function pricesOf(positions: ReadonlyMap<Address, PerpV2Position>, markets: ReadonlyMap<PriceId, PerpV2Market>) {
  const ids = new Set<PriceId>();
  for (const p of positions.values()) {
    const hasOrders = p.orders.length > 0;
    if (abs(p.takerSize) >= DUST || hasOrders) ids.add(p.priceId);
    if (p.takerSize !== 0n || hasOrders) {
      const m = markets.get(p.priceId);
      if (m) {
        ids.add(m.indexTwapId);
        ids.add(m.marketTwapId);
      }
    }
  }
  return [...ids].sort((a, b) => a - b);
}

/** A new account record from parts (recomputes collateral and prices). */
export function accountWith(
  account: PerpV2Account,
  changes: Partial<Pick<PerpV2Account, "balance" | "owedRealizedPnl" | "otherCollateral" | "positions">>,
  book: Pick<PerpV2BookView, "markets" | "global">,
): PerpV2Account {
  const balance = changes.balance ?? account.balance;
  const owedRealizedPnl = changes.owedRealizedPnl ?? account.owedRealizedPnl;
  const positions = changes.positions ?? account.positions;
  return {
    ...account,
    ...changes,
    balance,
    owedRealizedPnl,
    collateral: balance * 10n ** BigInt(18 - book.global.settlementDecimals) + owedRealizedPnl,
    prices: changes.positions ? pricesOf(positions, book.markets) : account.prices,
  };
}
