/**
 * Perp v2 through the seam: its book's rules for the record book, its accounts for the cross-margin core loop
 * (src/accountKeeper.ts), its head prices for the watcher (ViewPrices), and its liquidation calls for the executor.
 *
 * The liquidator is either the keeper's own PerpV2Liquidator contract (`liquidator`: it takes positions over and holds
 * their collateral; its operators are the keeper's signers; a batch liquidates several targets and cancels makers'
 * excess orders first, all in one transaction, each item skipped rather than reverted when it is no longer
 * liquidatable), or, without one, each signer's own Vault account, one `ClearingHouse.liquidate` per transaction.
 */
import {
  type Address,
  decodeAbiParameters,
  decodeEventLog,
  decodeFunctionData,
  encodeFunctionData,
  type Hex,
  type Log,
} from "viem";
import { perpV2LiquidatorAbi } from "../../../abi/PerpV2Liquidator.ts";
import type { AccountAdapter } from "../../accountKeeper.ts";
import type { Logger } from "../../ops/logger.ts";
import type { StateRules } from "../../state/recordBook.ts";
import type { ViewMarket } from "../../watcher/viewPrices.ts";
import type { LiquidationProtocol, LiquidationTarget, TargetOutcome } from "../adapter.ts";
import type { PriceView } from "../types.ts";
import { accountBalanceAbi, baseTokenAbi } from "./abi.ts";
import { reduce } from "./book.ts";
import { perpV2Competitors } from "./competitors.ts";
import type { PerpV2Decoder, PerpV2Event } from "./events.ts";
import { accountFigures, freeCollateralByRatio } from "./figures.ts";
import { type FollowUpPlans, MAX_FOLLOW_UPS, planFollowUps } from "./followUps.ts";
import type { PerpV2Inventory } from "./inventory.ts";
import { encodeLiquidate, planTargets } from "./liquidation.ts";
import type { PerpV2MarginModel } from "./margin.ts";
import { FUNDING_PERIOD, RATIO_ONE } from "./math.ts";
import { receiptLiquidations, revertMeaning } from "./outcomes.ts";
import { type PerpV2Account, type PerpV2BookView, type PerpV2Global, type PerpV2Market, targetKey } from "./records.ts";

export const PERP_V2_ADAPTER = "perp-v2";
/**
 * Gas limits, margin included (the floor is the limit; the gas multiplier pads only eth_estimateGas): one liquidation
 * (measured 1.00-1.42M, the first of a block in a market the most; through the contract the 63/64 rule takes a little
 * more), each market of the account beyond the first (its contracts loop over them), a maker market's
 * cancelAllExcessOrders (measured 0.68-0.71M), and one close of the liquidator's position (measured 0.46-0.60M).
 */
const LIQUIDATION_GAS_LIMIT = 1_750_000n;
const PER_EXTRA_MARKET_GAS = 800_000n;
const CANCEL_ORDERS_GAS = 900_000n;
const CLOSE_GAS = 800_000n;
/** A liquidation's gas (1.0 to 1.4M measured), for a target the simulation skipped (liquidatorGasUsed). */
const SKIPPED_TARGET_GAS = 1_400_000n;

/**
 * Kept back from the liquidator's free collateral when takeovers are planned within it: between the head and the
 * block that mines them its own positions pay funding (at most maxFundingRate a day on their value) and prices move,
 * and a plan that fills the free collateral to the last cent fails its last item (CH_NEFCI). 1% of it, and this many
 * seconds of funding at the cap on what the liquidator holds.
 */
const COLLATERAL_RESERVE_SECONDS = 120n;

/** The book's rules: Perp v2's reducer, from the parameters discovery read. */
export function perpV2Rules(global: PerpV2Global): StateRules<PerpV2Account, PerpV2Market, PerpV2Global, PerpV2Event> {
  return { initialGlobal: global, reduce };
}

/** The account a target key (`${trader}/${priceId}`) belongs to. */
export function accountOfTarget(key: string): string {
  const slash = key.indexOf("/");
  return slash < 0 ? key : key.slice(0, slash);
}

/** Perp v2's accounts for the core loop. */
export function perpV2Accounts(o: {
  readonly model: PerpV2MarginModel;
  readonly clearingHouse: Address;
  /** Whether a batch may carry several targets of one account (the liquidator contract skips what is no longer due). */
  readonly batch: boolean;
  /**
   * The liquidator's free collateral (quote WAD) as last read; undefined: not known (no limit applied). Each head's
   * takeovers are planned within it: a target's size is cut to what fits, and one that does not fit is left.
   */
  readonly freeCollateral?: () => bigint | undefined;
  /** Inventory mode hold: the notional (quote WAD) takeovers may still add; undefined: no limit. */
  readonly exposureLeft?: () => bigint | undefined;
  /** The keeper's own liquidator account (lower case): never a target (PerpV2Inventory watches it instead). */
  readonly holder?: string;
  /** With the liquidator contract: the calls each target's account still needs after it, in the same transaction. */
  readonly followUps?: FollowUpPlans;
  readonly log?: Logger;
}): AccountAdapter<PerpV2Account, PerpV2Market, PerpV2Global> {
  let budgetOf: PriceView | undefined;
  let budget: bigint | undefined;
  let exposure: bigint | undefined;
  let short = false;
  return {
    model: o.model,
    findings(account, evaluation, view, book) {
      if (account.trader === o.holder) return [];
      if (view !== budgetOf) {
        budgetOf = view;
        budget = o.freeCollateral?.();
        // the read is a head behind the book (made at each head, answered after the head is planned): what the
        // liquidator took over in this head's block is in the book, not in the read. The book's own figure for it
        // at this head counts that; the lower of the two is planned within.
        const own = o.holder === undefined ? undefined : book.accounts.get(o.holder);
        const fromBook =
          budget === undefined || !own ? undefined : freeCollateralByRatio(own, book, view, book.global.imRatio);
        if (budget !== undefined && fromBook !== undefined) {
          const low = fromBook[0] < 0n ? 0n : fromBook[0];
          if (low < budget) budget = low;
        }
        if (budget !== undefined) {
          const figures = own ? accountFigures(own, book, view) : undefined;
          const held = figures?.kind === "priced" ? figures.totalAbsPositionValue : 0n;
          const reserve =
            budget / 100n +
            (held * book.global.maxFundingRate * COLLATERAL_RESERVE_SECONDS) / (RATIO_ONE * FUNDING_PERIOD);
          budget = budget > reserve ? budget - reserve : 0n;
        }
        exposure = o.exposureLeft?.();
        short = false;
      }
      const plan = planTargets(account, evaluation, book, view, {
        clearingHouse: o.clearingHouse,
        ...(budget === undefined ? {} : { maxCost: budget }),
        ...(exposure === undefined ? {} : { maxNotional: exposure }),
      });
      const capped =
        budget !== undefined &&
        (plan.targets.length > 0
          ? plan.targets[0]?.size !== 0n
          : planTargets(account, evaluation, book, view, { clearingHouse: o.clearingHouse }).targets.length > 0);
      if (capped && !short) {
        short = true;
        o.log?.warn(
          {
            event: "liquidator_collateral_short",
            account: account.key,
            budgetLeft: budget?.toString(),
            blockNumber: view.blockNumber.toString(),
          },
          "the liquidator's free collateral does not cover every takeover at this head: taking what fits; deposit more",
        );
      }
      // each call re-judges the account on what the last one left: one market per head (the largest first), so that
      // two of its markets are never in two transactions of one block (the second would find it healthy)
      const targets = plan.targets.slice(0, 1);
      const makerOrders = plan.prerequisites.length > 0;
      if (makerOrders && !o.batch) return []; // cancelAllExcessOrders first needs the liquidator contract
      // the calls its account needs after this one go in the same transaction (the contract judges each in turn),
      // where the free collateral is not already short
      // (none when it is: an older plan never rides along), and each is counted against the budget at its first's cost
      let calls = 1n;
      if (o.followUps && o.batch) {
        for (const t of targets) {
          const roomy = !capped && (budget === undefined || budget > t.capacity * BigInt(MAX_FOLLOW_UPS + 1));
          const followUps = roomy
            ? planFollowUps(account, evaluation, book, view, { priceId: t.market, size: t.size })
            : [];
          o.followUps.set(t.key, followUps);
          calls = BigInt(1 + followUps.length);
        }
      }
      if (budget !== undefined) {
        for (const t of targets) budget = budget > t.capacity * calls ? budget - t.capacity * calls : 0n;
      }
      if (exposure !== undefined)
        for (const t of targets) exposure = exposure > t.notional ? exposure - t.notional : 0n;
      return targets.map((t) => ({
        target: { key: t.key, account: t.account, trader: t.owner, marketId: t.market, size: t.size },
        state: account,
        shortfall: t.shortfall,
        expectedReward: t.expectedReward,
      }));
    },
    targetKeys: (account) => [...account.positions.values()].map((p) => targetKey(account.trader, p.priceId)),
    pricesOf: (market) => [market.priceId, market.indexTwapId, market.marketTwapId],
    accountOf: accountOfTarget,
  };
}

/**
 * Each market's prices read at every head: the mark (AccountBalance.getMarkPrice) and the index TWAP over the
 * funding interval (BaseToken.getIndexPrice), which bounds the funding accrued since the market's last update. The
 * market TWAP is not read: the interval the Exchange uses is shorter than twapInterval for a market's first
 * minutes, which no view tells; without it the funding is a proven bound, and accounts it leaves near the boundary
 * are confirmed by reads.
 */
export function perpV2PriceMarkets(book: PerpV2BookView, accountBalance: Address): readonly ViewMarket[] {
  const interval = book.global.twapInterval;
  const uint = (answer: Hex) => BigInt(answer.slice(0, 66));
  return [...book.markets.values()].flatMap((m): ViewMarket[] => [
    {
      id: m.priceId,
      name: m.name,
      read: {
        to: accountBalance,
        data: encodeFunctionData({ abi: accountBalanceAbi, functionName: "getMarkPrice", args: [m.baseToken] }),
      },
      decode: uint,
    },
    {
      id: m.indexTwapId,
      name: `${m.name} index TWAP`,
      read: {
        to: m.baseToken,
        data: encodeFunctionData({ abi: baseTokenAbi, functionName: "getIndexPrice", args: [interval] }),
      },
      decode: uint,
    },
  ]);
}

/** The executor's calls for Perp v2. */
export function perpV2Protocol(o: {
  readonly clearingHouse: Address;
  /** The keeper's PerpV2Liquidator; undefined: each signer liquidates as itself. */
  readonly liquidator?: Address;
  readonly book: PerpV2BookView;
  readonly decoder: PerpV2Decoder;
  /** With the liquidator contract: each batch also closes what it holds (inventory mode close). */
  readonly inventory?: PerpV2Inventory;
  /** With the liquidator contract: each target's follow-up calls, after it in the same transaction. */
  readonly followUps?: FollowUpPlans;
}): LiquidationProtocol {
  const baseOf = (t: LiquidationTarget): Address => {
    const market = o.book.markets.get(t.marketId);
    if (!market) throw new Error(`no market ${t.marketId} in the book for target ${t.key}`);
    return market.baseToken;
  };
  /** Markets where the target's trader has open orders: cancelled first (CH_CLWTISO otherwise). */
  const ordersOf = (targets: readonly LiquidationTarget[]) => {
    const seen = new Set<string>();
    const orders: { maker: Address; baseToken: Address }[] = [];
    for (const t of targets) {
      const account = o.book.accounts.get(accountOfTarget(t.key));
      for (const p of account?.positions.values() ?? []) {
        const id = `${t.trader}/${p.baseToken}`;
        if (p.orders.length === 0 || seen.has(id)) continue;
        seen.add(id);
        orders.push({ maker: t.trader, baseToken: p.baseToken });
      }
    }
    return orders;
  };
  /** What a transaction closes: the inventory, and the side each takeover gives (the trader's). */
  const closesOf = (targets: readonly LiquidationTarget[]) => {
    if (!o.inventory?.closing) return [];
    return o.inventory.closesFor(
      targets.map((t) => {
        const baseToken = baseOf(t);
        const held = o.book.accounts.get(accountOfTarget(t.key))?.positions.get(baseToken.toLowerCase() as Address);
        const size = t.size !== undefined && t.size !== 0n ? t.size : (held?.takerSize ?? 0n);
        return { baseToken, side: size > 0n ? 1n : size < 0n ? -1n : 0n };
      }),
    );
  };
  /** The keeper's own position: an inventory close (PerpV2Inventory.upkeep), never an item to liquidate. */
  const upkeep = (t: LiquidationTarget) => o.inventory?.owns(t.key) === true;
  const batch = (all: readonly LiquidationTarget[]): Hex => {
    const targets = all.filter((t) => !upkeep(t));
    const orders = ordersOf(targets);
    const items = targets.flatMap((t) => [
      { trader: t.trader, baseToken: baseOf(t), positionSize: t.size ?? 0n },
      ...(o.followUps?.get(t.key) ?? []).map((f) => ({ trader: t.trader, baseToken: f.baseToken, positionSize: 0n })),
    ]);
    const inventory = o.inventory;
    return inventory?.closing
      ? encodeFunctionData({
          abi: perpV2LiquidatorAbi,
          functionName: "liquidateAndClose",
          args: [orders, items, closesOf(targets), inventory.maxSlippageBps],
        })
      : encodeFunctionData({ abi: perpV2LiquidatorAbi, functionName: "cancelAndLiquidate", args: [orders, items] });
  };
  const liquidator = o.liquidator;
  return {
    address: liquidator ?? o.clearingHouse,
    // the contract's try/catch makes its estimate meaningless (items fail out of gas and are caught), and liquidate's
    // own estimate runs short: the limits above
    gasFloor: (targets) =>
      BigInt(liquidator ? (o.inventory?.closesAtMost(targets.filter((t) => !upkeep(t)).map(baseOf)) ?? 0) : 0) *
        CLOSE_GAS +
      targets.reduce((sum, t) => {
        if (upkeep(t)) return sum;
        const account = o.book.accounts.get(accountOfTarget(t.key));
        const markets = BigInt(Math.max(1, account?.positions.size ?? 1));
        const orders = [...(account?.positions.values() ?? [])].some((p) => p.orders.length > 0);
        const calls = BigInt(1 + (liquidator ? (o.followUps?.get(t.key).length ?? 0) : 0));
        const call = LIQUIDATION_GAS_LIMIT + (markets - 1n) * PER_EXTRA_MARKET_GAS;
        return sum + calls * call + (orders ? CANCEL_ORDERS_GAS : 0n);
      }, 0n),
    ...(liquidator ? { liquidator, gasUsedIn: liquidatorGasUsed } : {}),
    encodeSingle: (t) =>
      liquidator && o.inventory && upkeep(t)
        ? encodeFunctionData({
            abi: perpV2LiquidatorAbi,
            functionName: "closeInventory",
            args: [o.inventory.closesFor([]), o.inventory.maxSlippageBps],
          })
        : liquidator
          ? batch([t])
          : encodeLiquidate(t.trader, baseOf(t), t.size ?? 0n),
    ...(liquidator ? { encodeBatch: batch } : {}),
    outcomes(logs: readonly Log[]): Map<string, TargetOutcome> {
      const out = new Map<string, TargetOutcome>();
      for (const r of receiptLiquidations(o.decoder, logs, o.book.global)) {
        const key = targetKey(r.trader, o.book.global.marketsByBase.get(r.baseToken) ?? -1);
        // several calls on one target in one transaction (follow-ups): their rewards and bad debt add up
        const before = out.get(key);
        const sum = before?.kind === "liquidated" ? before : { reward: 0n, badDebt: 0n };
        out.set(key, {
          kind: "liquidated",
          keeper: r.liquidator,
          reward: sum.reward + r.reward,
          badDebt: sum.badDebt + r.badDebt,
        });
      }
      if (!liquidator) return out;
      for (const log of logs) {
        if (log.address.toLowerCase() !== liquidator.toLowerCase()) continue;
        try {
          const e = decodeEventLog({ abi: perpV2LiquidatorAbi, data: log.data, topics: log.topics });
          if (e.eventName === "InventoryClosed" || e.eventName === "InventoryCloseFailed") {
            const market = o.book.global.marketsByBase.get(e.args.baseToken.toLowerCase() as Address);
            const key = targetKey(liquidator, market ?? -1);
            if (e.eventName === "InventoryClosed") out.set(key, { kind: "closed" });
            else {
              o.inventory?.closeFailed(e.args.baseToken, e.args.reason);
              if (!out.has(key)) out.set(key, { kind: "close_refused" });
            }
            continue;
          }
          if (e.eventName !== "LiquidationFailed") continue;
          const market = o.book.global.marketsByBase.get(e.args.baseToken.toLowerCase() as Address);
          const key = targetKey(e.args.trader, market ?? -1);
          if (out.has(key)) continue;
          // no revert data: the item ran out of gas inside the contract's try/catch, no verdict on the account
          const meaning = e.args.reason === "0x" ? "out_of_gas" : revertMeaning(e.args.reason)?.meaning;
          out.set(key, {
            kind: "skipped",
            reason:
              meaning === "gone"
                ? "no_position"
                : meaning === "out_of_gas"
                  ? "out_of_gas"
                  : meaning === "liquidator_capacity"
                    ? "liquidator_capacity"
                    : "not_liquidatable",
          });
        } catch {
          // another of the contract's events
        }
      }
      return out;
    },
    revertName: (data) => revertMeaning(data)?.name,
    competitorTargets: perpV2Competitors({ clearingHouse: o.clearingHouse, book: o.book }),
  };
}

/**
 * The gas a PerpV2Liquidator call needs, by what it returns: every entry point the keeper calls (liquidateBatch,
 * cancelAndLiquidate, liquidateAndClose, closeInventory) returns (count, gasUsed, done), `done` a bit per liquidation
 * item liquidated. A target's first item (a follow-up is an item of the same trader right after) that the simulation
 * skipped (healthy at the simulated state, a view reverting for a block) is given a liquidation's gas on top: if it is
 * due when the transaction runs, it must not starve the items after it. A follow-up skipped there is not: it is only
 * needed if prices moved on, and its gas would hold block space from others.
 */
export function liquidatorGasUsed(returnData: Hex, data: Hex): bigint | undefined {
  let used: bigint;
  let done: bigint;
  try {
    [, used, done] = decodeAbiParameters([{ type: "uint256" }, { type: "uint256" }, { type: "uint256" }], returnData);
  } catch {
    return undefined;
  }
  let items: readonly { readonly trader: Address }[] = [];
  try {
    const call = decodeFunctionData({ abi: perpV2LiquidatorAbi, data });
    const list = (call.args as readonly unknown[]).find(
      (a) => Array.isArray(a) && a.length > 0 && typeof (a[0] as { trader?: unknown }).trader === "string",
    );
    items = (list ?? []) as readonly { readonly trader: Address }[];
  } catch {
    return undefined;
  }
  let contingency = 0n;
  items.forEach((item, i) => {
    const first = i === 0 || items[i - 1]?.trader.toLowerCase() !== item.trader.toLowerCase();
    if (first && i < 256 && ((done >> BigInt(i)) & 1n) === 0n) contingency += SKIPPED_TARGET_GAS;
  });
  return used + contingency;
}
