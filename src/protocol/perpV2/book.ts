/**
 * The Perp v2 book: immutable records per trader, per market, and the exchange's parameters, rebuilt from events
 * alone, and a pure reducer that says what one event changes (before and after records, so a reorganisation is
 * undone by writing the befores back). References are to @perp/curie-contract 2.8.4, contracts/.
 *
 * What the events say (checked in the Solidity):
 * - A taker position changes only in AccountBalance.settleBalanceAndDeregister (AccountBalance.sol:102-118), always
 *   followed by ClearingHouse's PositionChanged (ClearingHouse.sol:698-741, 840-900): takerPositionSize moves by
 *   exchangedPositionSize exactly; PositionChanged.openNotional is read back after the realized PnL left the open
 *   notional and after a possible deregistration (ClearingHouse.sol:730, 885), so it IS the post-trade taker open
 *   notional (0 when the market was deregistered). quitMarket's PositionClosed deletes the market (AccountBalance.sol:152-175).
 * - Deregistration (AccountBalance.sol:444-455): |size| < 10 wei, |openNotional| < 10 wei and no open order deletes the
 *   market's record, size included. A remove of liquidity emits PositionChanged before LiquidityChanged
 *   (ClearingHouse.sol:264-283) while the chain removed the order first, so the rule is applied again on LiquidityChanged.
 * - Owed realized PnL moves only through AccountBalance._modifyOwedRealizedPnl, which emits PnlRealized for every
 *   non-zero amount (AccountBalance.sol:424-429): realized PnL of trades and liquidations, funding settled
 *   (ClearingHouse.sol:973), the liquidation penalty (635) and the insurance fund's share (646), maker fees (112, 205),
 *   the insurance fund's trading fee (844), quitMarket's PnL (172). The one exception is the Vault's withdrawal of the
 *   settlement token: settleOwedRealizedPnl zeroes it silently and adds it to the balance ROUNDED DOWN to the token's
 *   decimals (Vault.sol:680-687, SettlementTokenMath.sol:211-217): balance + owed loses owed mod 1e12 there, so the book
 *   keeps the two apart, exactly.
 * - Every funding settlement of (trader, base) sets lastTwPremiumGrowthGlobalX96 to the market's global growth of that
 *   block (ClearingHouse._settleFunding, 965-983); it precedes every PositionChanged, LiquidityChanged and PositionClosed of
 *   that pair in the same call, and Vault withdrawals settle every market of the trader (Vault.sol:679, 292-302).
 * - The global growth changes only in Exchange.settleFunding, once per block and market, with FundingUpdated carrying the
 *   TWAPs the step used (Exchange.sol:240-255, 547-611): growth += clamp(marketTwapX96 − indexTwapX96)·(t − lastSettled).
 *   The event's marketTwap is the X96 TWAP floored to 18 decimals, so the book keeps the growth as a [lo, hi] range.
 */
import type { Address } from "viem";
import type { AccountKey, PriceId } from "../types.ts";
import type { PerpV2Event } from "./events.ts";
import { abs, DUST, deltaTwapRange, dustFiltered, floorDiv, fullMulDiv } from "./math.ts";
import {
  accountWith,
  emptyAccount,
  marketIds,
  type PerpV2Account,
  PerpV2BookError,
  type PerpV2BookView,
  type PerpV2Change,
  type PerpV2Global,
  type PerpV2Market,
  type PerpV2Order,
  type PerpV2Position,
  targetKey,
} from "./records.ts";

export * from "./records.ts";

/** AccountBalance._deregisterBaseToken's rule: nothing left in the market. */
function deregistered(p: PerpV2Position): boolean {
  return abs(p.takerSize) < DUST && abs(p.takerOpenNotional) < DUST && p.orders.length === 0;
}

function withPosition(
  positions: ReadonlyMap<Address, PerpV2Position>,
  base: Address,
  next: PerpV2Position | undefined,
): ReadonlyMap<Address, PerpV2Position> {
  const out = new Map(positions);
  if (next === undefined) out.delete(base);
  else out.set(base, next);
  return out;
}

/** OrderBook._addLiquidityToOrder / _removeLiquidityFromOrder (OrderBook.sol:558-593, 617-664). */
function ordersAfter(orders: readonly PerpV2Order[], e: Extract<PerpV2Event, { kind: "liquidityChanged" }>) {
  const i = orders.findIndex((o) => o.lowerTick === e.lowerTick && o.upperTick === e.upperTick);
  const order = i < 0 ? undefined : orders[i];
  const out = orders.slice();
  if (e.liquidity > 0n) {
    const next: PerpV2Order = {
      lowerTick: e.lowerTick,
      upperTick: e.upperTick,
      liquidity: (order?.liquidity ?? 0n) + e.liquidity,
      baseDebt: (order?.baseDebt ?? 0n) + e.base,
      quoteDebt: (order?.quoteDebt ?? 0n) + e.quote,
    };
    if (i < 0) out.push(next);
    else out[i] = next;
    return out;
  }
  if (e.liquidity === 0n) return orders; // fees collected only
  if (!order) throw new PerpV2BookError(`liquidity removed from an order the book does not hold (${e.maker})`);
  const removed = -e.liquidity;
  if (removed > order.liquidity) throw new PerpV2BookError(`more liquidity removed than the order holds (${e.maker})`);
  const liquidity = order.liquidity - removed;
  if (liquidity === 0n) {
    out.splice(i, 1);
    return out;
  }
  out[i] = {
    ...order,
    liquidity,
    baseDebt: order.baseDebt - fullMulDiv(order.baseDebt, removed, order.liquidity),
    quoteDebt: order.quoteDebt - fullMulDiv(order.quoteDebt, removed, order.liquidity),
  };
  return out;
}

/** The market's global growth after a FundingUpdated at `timestamp` (Exchange.sol:240-255, 580-608). */
function marketAfterFunding(m: PerpV2Market, e: Extract<PerpV2Event, { kind: "fundingUpdated" }>, g: PerpV2Global) {
  const t = m.status === "open" ? e.timestamp : m.pausedAt;
  if (m.lastSettled === 0n) return { ...m, lastSettled: t };
  if (t === m.lastSettled) return m;
  const [dLo, dHi] = deltaTwapRange(e.marketTwap, e.indexTwap, g.maxFundingRate);
  const dt = t - m.lastSettled;
  return { ...m, growth: { lo: m.growth.lo + dLo * dt, hi: m.growth.hi + dHi * dt }, lastSettled: t };
}

function newPosition(m: PerpV2Market): PerpV2Position {
  return {
    baseToken: m.baseToken,
    priceId: m.priceId,
    takerSize: 0n,
    takerOpenNotional: 0n,
    anchor: m.growth,
    orders: [],
  };
}

function lower(a: Address): Address {
  return a.toLowerCase() as Address;
}

/**
 * What one event changes in the book, as before/after records (at most one change per record). Pure: the book is not
 * touched. Throws PerpV2BookError when the event cannot follow from the book (a market never listed).
 */
export function reduce(book: PerpV2BookView, e: PerpV2Event): readonly PerpV2Change[] {
  const g = book.global;
  const marketOf = (base: Address): PerpV2Market => {
    const id = g.marketsByBase.get(lower(base));
    const m = id === undefined ? undefined : book.markets.get(id);
    if (!m) throw new PerpV2BookError(`${e.kind} in block ${e.ref.blockNumber}: base token ${base} was never listed`);
    return m;
  };
  const accountChange = (
    trader: Address,
    edit: (a: PerpV2Account) => PerpV2Account,
    liquidation?: Extract<PerpV2Change, { type: "account" }>["liquidation"],
  ): PerpV2Change => {
    const key: AccountKey = lower(trader);
    const before = book.accounts.get(key);
    const after = edit(before ?? emptyAccount(key as Address));
    return liquidation ? { type: "account", key, before, after, liquidation } : { type: "account", key, before, after };
  };
  const editPosition = (a: PerpV2Account, m: PerpV2Market, edit: (p: PerpV2Position) => PerpV2Position | undefined) =>
    accountWith(
      a,
      { positions: withPosition(a.positions, m.baseToken, edit(a.positions.get(m.baseToken) ?? newPosition(m))) },
      book,
    );
  const settledAll = (a: PerpV2Account): ReadonlyMap<Address, PerpV2Position> => {
    const out = new Map<Address, PerpV2Position>();
    for (const [base, p] of a.positions) out.set(base, { ...p, anchor: marketOf(base).growth });
    return out;
  };
  const unit = 10n ** BigInt(18 - g.settlementDecimals);

  switch (e.kind) {
    case "positionChanged": {
      const m = marketOf(e.baseToken);
      return [
        accountChange(e.trader, (a) =>
          editPosition(a, m, (p) => {
            const next = {
              ...p,
              takerSize: p.takerSize + e.exchangedPositionSize,
              takerOpenNotional: e.openNotional,
              anchor: m.growth,
            };
            return deregistered(next) ? undefined : next;
          }),
        ),
      ];
    }
    case "positionLiquidated": {
      const m = marketOf(e.baseToken);
      const a = book.accounts.get(lower(e.trader));
      const left = a?.positions.get(m.baseToken);
      return [
        accountChange(e.trader, (x) => x, {
          target: targetKey(e.trader, m.priceId),
          liquidator: lower(e.liquidator),
          penalty: e.liquidationFee,
          full: left === undefined || dustFiltered(left.takerSize) === 0n,
        }),
      ];
    }
    case "positionClosed": {
      const m = marketOf(e.baseToken);
      return [accountChange(e.trader, (a) => editPosition(a, m, () => undefined))];
    }
    case "liquidityChanged": {
      const m = marketOf(e.baseToken);
      return [
        accountChange(e.maker, (a) =>
          editPosition(a, m, (p) => {
            const next = { ...p, orders: ordersAfter(p.orders, e), anchor: m.growth };
            return e.liquidity < 0n && deregistered(next) ? undefined : next;
          }),
        ),
      ];
    }
    case "fundingPaymentSettled": {
      const m = marketOf(e.baseToken);
      const a = book.accounts.get(lower(e.trader));
      if (!a?.positions.has(m.baseToken)) return [];
      return [accountChange(e.trader, (x) => editPosition(x, m, (p) => ({ ...p, anchor: m.growth })))];
    }
    case "pnlRealized":
      return [accountChange(e.trader, (a) => accountWith(a, { owedRealizedPnl: a.owedRealizedPnl + e.amount }, book))];
    case "deposited":
      return [
        accountChange(e.trader, (a) =>
          lower(e.collateralToken) === g.settlementToken
            ? accountWith(a, { balance: a.balance + e.amount }, book)
            : accountWith(a, { otherCollateral: withAmount(a.otherCollateral, e.collateralToken, e.amount) }, book),
        ),
      ];
    case "withdrawn":
      // Vault._settleAndDecreaseBalance (Vault.sol:666-688): settleAllFunding, then for the settlement token the owed
      // realized PnL moves into the balance rounded down to the token's decimals
      return [
        accountChange(e.trader, (a) =>
          lower(e.collateralToken) === g.settlementToken
            ? accountWith(
                a,
                {
                  balance: a.balance - e.amount + floorDiv(a.owedRealizedPnl, unit),
                  owedRealizedPnl: 0n,
                  positions: settledAll(a),
                },
                book,
              )
            : accountWith(
                a,
                {
                  otherCollateral: withAmount(a.otherCollateral, e.collateralToken, -e.amount),
                  positions: settledAll(a),
                },
                book,
              ),
        ),
      ];
    case "badDebtSettled":
      // Vault.settleBadDebt (Vault.sol:563-592): the insurance fund's balance pays the trader's negative balance
      return [
        accountChange(e.trader, (a) => accountWith(a, { balance: a.balance + e.amount }, book)),
        accountChange(g.insuranceFund, (a) => accountWith(a, { balance: a.balance - e.amount }, book)),
      ];
    case "collateralLiquidated":
      // Vault._liquidateCollateral (Vault.sol:759-799)
      return [
        accountChange(e.trader, (a) =>
          accountWith(
            a,
            {
              balance: a.balance + e.repaidSettlement,
              otherCollateral: withAmount(a.otherCollateral, e.collateralToken, -e.collateral),
            },
            book,
          ),
        ),
        accountChange(g.insuranceFund, (a) => accountWith(a, { balance: a.balance + e.insuranceFundFee }, book)),
      ];
    case "fundingUpdated": {
      const m = marketOf(e.baseToken);
      const after = marketAfterFunding(m, e, g);
      return after === m ? [] : [{ type: "market", id: m.priceId, before: m, after }];
    }
    case "poolAdded": {
      const base = lower(e.baseToken);
      if (g.marketsByBase.has(base)) throw new PerpV2BookError(`pool added twice for ${base}`);
      const ids = marketIds(book.markets.size);
      const market: PerpV2Market = {
        ...ids,
        baseToken: base,
        pool: lower(e.pool),
        feeRatio: e.feeRatio,
        name: base,
        status: "open",
        pausedAt: 0n,
        growth: { lo: 0n, hi: 0n },
        lastSettled: 0n,
      };
      const marketsByBase = new Map(g.marketsByBase).set(base, ids.priceId);
      return [
        { type: "market", id: ids.priceId, before: undefined, after: market },
        { type: "global", before: g, after: { ...g, marketsByBase } },
      ];
    }
    case "liquidationPenaltyRatioChanged":
      return [{ type: "global", before: g, after: { ...g, liquidationPenaltyRatio: BigInt(e.ratio) } }];
    case "maxFundingRateChanged":
      return [{ type: "global", before: g, after: { ...g, maxFundingRate: BigInt(e.rate) } }];
    case "twapIntervalChanged":
      return [{ type: "global", before: g, after: { ...g, twapInterval: e.twapInterval } }];
    case "statusUpdated": {
      const m = marketOf(e.baseToken);
      const status = e.status === 0 ? "open" : e.status === 1 ? "paused" : "closed";
      const after = { ...m, status, pausedAt: status === "paused" ? e.timestamp : m.pausedAt } as PerpV2Market;
      return [{ type: "market", id: m.priceId, before: m, after }];
    }
  }
}

function withAmount(map: ReadonlyMap<Address, bigint>, token: Address, delta: bigint): ReadonlyMap<Address, bigint> {
  const out = new Map(map);
  const next = (map.get(lower(token)) ?? 0n) + delta;
  if (next === 0n) out.delete(lower(token));
  else out.set(lower(token), next);
  return out;
}

/** A book in memory: the reducer's changes written (apply) and written back (undo, newest first). */
export class PerpV2Book implements PerpV2BookView {
  readonly markets = new Map<PriceId, PerpV2Market>();
  readonly accounts = new Map<AccountKey, PerpV2Account>();
  global: PerpV2Global;

  constructor(global: PerpV2Global) {
    this.global = global;
  }

  /** Reduces one event and writes its changes; returns them for undo. */
  apply(event: PerpV2Event): readonly PerpV2Change[] {
    const changes = reduce(this, event);
    this.write(changes);
    return changes;
  }

  write(changes: readonly PerpV2Change[]): void {
    for (const c of changes) {
      if (c.type === "market") this.markets.set(c.id, c.after);
      else if (c.type === "account") this.accounts.set(c.key, c.after);
      else this.global = c.after;
    }
  }

  undo(changes: readonly PerpV2Change[]): void {
    for (let i = changes.length - 1; i >= 0; i--) {
      const c = changes[i] as PerpV2Change;
      if (c.type === "market") {
        if (c.before === undefined) this.markets.delete(c.id);
        else this.markets.set(c.id, c.before);
      } else if (c.type === "account") {
        if (c.before === undefined) this.accounts.delete(c.key);
        else this.accounts.set(c.key, c.before);
      } else this.global = c.before;
    }
  }
}
