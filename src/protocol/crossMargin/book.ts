/**
 * The cross-margin exchange's reducer: what each event changes in the book, exactly as the contract changes its
 * storage (docs/cross-margin-engine.md). Pure; an event that cannot follow from the book (an unknown account or
 * market, a size that does not add up) throws BookError and leaves the book untouched.
 *
 * - collateral: + CollateralModified.amountDelta, + OrderSettled.pnl − totalFees, := 0 on a flag (seized);
 * - positions: OrderSettled sets size and entry (the fill price), PositionLiquidated sets the size left;
 * - a market's window: each PositionLiquidated's amount at its block time, entries past the window dropped;
 * - AccountLiquidationAttempt with fullLiquidation clears the flag.
 */
import { BookError } from "../../state/errors.ts";
import type { RecordChange, StateRules } from "../../state/recordBook.ts";
import type { PriceId } from "../types.ts";
import type { CrossMarginEvent } from "./events.ts";
import { liveWindow } from "./math.ts";
import {
  accountKey,
  type CrossMarginAccount,
  type CrossMarginBookView,
  type CrossMarginGlobal,
  type CrossMarginMarket,
  type CrossMarginPosition,
  INITIAL_GLOBAL,
  marketById,
  withPositions,
} from "./records.ts";

type Change = RecordChange<CrossMarginAccount, CrossMarginMarket, CrossMarginGlobal>;

const abs = (x: bigint): bigint => (x < 0n ? -x : x);

export const crossMarginRules: StateRules<CrossMarginAccount, CrossMarginMarket, CrossMarginGlobal, CrossMarginEvent> =
  {
    initialGlobal: INITIAL_GLOBAL,
    reduce,
  };

function accountOf(book: CrossMarginBookView, id: bigint, e: CrossMarginEvent): CrossMarginAccount {
  const account = book.accounts.get(accountKey(id));
  if (!account) throw new BookError(`${e.kind} at block ${e.ref.blockNumber}: account ${id} was never created`);
  return account;
}

function marketOf(book: CrossMarginBookView, id: bigint, e: CrossMarginEvent): CrossMarginMarket {
  const market = marketById(book, id);
  if (!market) throw new BookError(`${e.kind} at block ${e.ref.blockNumber}: market ${id} was never created`);
  return market;
}

function accountChange(before: CrossMarginAccount, after: CrossMarginAccount): Change {
  return { type: "account", key: before.key, before, after };
}

export function reduce(book: CrossMarginBookView, e: CrossMarginEvent): readonly Change[] {
  switch (e.kind) {
    case "globalConfigured":
      return [
        {
          type: "global",
          before: book.global,
          after: {
            config: {
              minKeeperReward: e.minKeeperReward,
              maxKeeperReward: e.maxKeeperReward,
              stepReward: e.stepReward,
              maxPriceAge: e.maxPriceAge,
            },
          },
        },
      ];
    case "marketCreated": {
      if (marketById(book, e.marketId)) throw new BookError(`market ${e.marketId} created twice`);
      const priceId: PriceId = book.markets.size;
      const market: CrossMarginMarket = { priceId, marketId: e.marketId, name: e.name, config: undefined, window: [] };
      return [{ type: "market", id: priceId, before: undefined, after: market }];
    }
    case "marketConfigured": {
      const before = marketOf(book, e.marketId, e);
      return [{ type: "market", id: before.priceId, before, after: { ...before, config: e.config } }];
    }
    case "accountCreated": {
      const key = accountKey(e.accountId);
      if (book.accounts.has(key)) throw new BookError(`account ${e.accountId} created twice`);
      const after: CrossMarginAccount = {
        key,
        id: e.accountId,
        owner: e.owner,
        collateral: 0n,
        positions: new Map(),
        prices: [],
        flagged: false,
      };
      return [{ type: "account", key, before: undefined, after }];
    }
    case "collateralModified": {
      const before = accountOf(book, e.accountId, e);
      return [accountChange(before, { ...before, collateral: before.collateral + e.amountDelta })];
    }
    case "orderSettled": {
      const before = accountOf(book, e.accountId, e);
      const market = marketOf(book, e.marketId, e);
      const held = before.positions.get(market.priceId)?.size ?? 0n;
      if (held + e.sizeDelta !== e.newSize) {
        throw new BookError(
          `OrderSettled at block ${e.ref.blockNumber}: account ${e.accountId} held ${held} in market ${e.marketId}, ` +
            `${held} + ${e.sizeDelta} is not the new size ${e.newSize}`,
        );
      }
      const positions = new Map(before.positions);
      if (e.newSize === 0n) positions.delete(market.priceId);
      else positions.set(market.priceId, { size: e.newSize, entryPrice: e.fillPrice } satisfies CrossMarginPosition);
      const after = withPositions({ ...before, collateral: before.collateral + e.pnl - e.totalFees }, positions);
      return [accountChange(before, after)];
    }
    case "accountFlagged": {
      const before = accountOf(book, e.accountId, e);
      if (before.flagged) throw new BookError(`account ${e.accountId} flagged twice`);
      return [accountChange(before, { ...before, collateral: 0n, flagged: true })];
    }
    case "positionLiquidated": {
      const before = accountOf(book, e.accountId, e);
      const market = marketOf(book, e.marketId, e);
      const held = before.positions.get(market.priceId);
      if (!before.flagged || !held || abs(held.size) - e.amountLiquidated !== abs(e.currentPositionSize)) {
        throw new BookError(
          `PositionLiquidated at block ${e.ref.blockNumber}: account ${e.accountId} ` +
            `(${before.flagged ? "flagged" : "not flagged"}) held ${held?.size ?? 0n} in market ${e.marketId}, ` +
            `less ${e.amountLiquidated} is not ${e.currentPositionSize}`,
        );
      }
      const positions = new Map(before.positions);
      if (e.currentPositionSize === 0n) positions.delete(market.priceId);
      else positions.set(market.priceId, { ...held, size: e.currentPositionSize });
      const window = market.config
        ? [
            ...liveWindow(market.config, market.window, e.timestamp),
            { timestamp: e.timestamp, amount: e.amountLiquidated },
          ]
        : [...market.window, { timestamp: e.timestamp, amount: e.amountLiquidated }];
      return [
        accountChange(before, withPositions(before, positions)),
        { type: "market", id: market.priceId, before: market, after: { ...market, window } },
      ];
    }
    case "liquidationAttempt": {
      const before = accountOf(book, e.accountId, e);
      if (!e.fullLiquidation) return [];
      if (before.positions.size > 0) {
        throw new BookError(
          `AccountLiquidationAttempt at block ${e.ref.blockNumber}: account ${e.accountId} fully liquidated with ` +
            `${before.positions.size} position(s) left in the book`,
        );
      }
      return before.flagged ? [accountChange(before, { ...before, flagged: false })] : [];
    }
  }
}
