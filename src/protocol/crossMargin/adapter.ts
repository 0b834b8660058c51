/**
 * The cross-margin exchange through the seam: its accounts for the core loop (src/accountKeeper.ts) and its
 * liquidation calls for the executor. Its prices are pulled: a call that flags an account carries the newest update
 * bytes of every market the account holds and pays the oracle's fee (`value`); continuing a flagged account needs no
 * price and carries none.
 *
 * Two ways to bring the price, as real exchanges take it (exchange.priceUpdates):
 * - attach: `liquidate(accountId, priceUpdateData)` payable (D8X, SmarDex USDN), `liquidateMany(ids, data)` for a batch;
 * - erc7412: `multicall([fulfillOracleQuery(query + data), liquidate(accountId)])` (Synthetix v3), one account a call.
 */
import {
  type Abi,
  type Address,
  decodeErrorResult,
  decodeEventLog,
  encodeAbiParameters,
  encodeFunctionData,
  type Hex,
  type Log,
} from "viem";
import { iCrossMarginEngineAbi } from "../../../abi/ICrossMarginEngine.ts";
import type { AccountAdapter } from "../../accountKeeper.ts";
import { intrinsicGas } from "../../executor/gas.ts";
import type { Finding, LiquidationProtocol, LiquidationTarget, TargetOutcome } from "../adapter.ts";
import type { PriceId, PriceView } from "../types.ts";
import { crossMarginCompetitors } from "./competitors.ts";
import { type CrossMarginEvaluation, crossMarginMargin, evaluateAccount } from "./margin.ts";
import { liquidationCapacity } from "./math.ts";
import type { CrossMarginAccount, CrossMarginBookView, CrossMarginGlobal, CrossMarginMarket } from "./records.ts";

/** The errors Pyth's contract reverts with (PythErrors.sol), beside the exchange's own. */
export const pythErrorsAbi = [
  { type: "error", name: "InsufficientFee", inputs: [] },
  { type: "error", name: "StalePrice", inputs: [] },
  { type: "error", name: "InvalidArgument", inputs: [] },
  { type: "error", name: "PriceFeedNotFound", inputs: [] },
  { type: "error", name: "PriceFeedNotFoundWithinRange", inputs: [] },
  { type: "error", name: "NoFreshUpdate", inputs: [] },
  { type: "error", name: "InvalidUpdateData", inputs: [] },
  { type: "error", name: "InvalidUpdateDataSource", inputs: [] },
  { type: "error", name: "InvalidWormholeVaa", inputs: [] },
] as const satisfies Abi;

const ERRORS_ABI = [...iCrossMarginEngineAbi.filter((i) => i.type === "error"), ...pythErrorsAbi] as Abi;

/** Gas of closing one position in a liquidation call, with a margin (Anvil: 45-75k, a payout included). */
const CLOSE_GAS = 80_000n;
/**
 * A batch's gas planned without a simulation, worst cases over what Anvil measured (CrossMarginEngine with MockPyth):
 * the call and its one payout, each price update applied, an account flagged (health read, collateral seized, listed)
 * or continued, each position closed, and each market's window walked cold once.
 */
const PLAN_TX_GAS = 60_000n;
const PLAN_UPDATE_GAS = 60_000n;
const PLAN_FLAG_GAS = 50_000n;
const PLAN_CONTINUE_GAS = 15_000n;
const PLAN_CLOSE_GAS = 45_000n;
const PLAN_MARKET_GAS = 25_000n;
const PLAN_WINDOW_ENTRY_GAS = 7_500n;

/** What a liquidation carries for the prices it needs: the update bytes and the fee. */
export interface PriceAttachment {
  readonly updates: readonly Hex[];
  readonly feeds: readonly Hex[];
  /** Wei: the call's msg.value. */
  readonly fee: bigint;
  /** Publish time of the oldest message carried; undefined: none carried. */
  readonly oldest?: bigint;
}

/** Where the attachment comes from: the stream's newest messages and the oracle's fee. */
export interface PriceAttacher {
  /** The newest update bytes of these markets' feeds, deduplicated, and the fee; undefined: a price is missing. */
  attach(prices: readonly PriceId[]): PriceAttachment | undefined;
}

export type PriceUpdateMode = "attach" | "erc7412";

/** ERC-7412's oracle query for Pyth prices of `feeds`, with the exchange's staleness tolerance. */
export function fulfillData(feeds: readonly Hex[], maxAge: bigint, updates: readonly Hex[]): Hex {
  return encodeAbiParameters(
    [{ type: "uint8" }, { type: "uint64" }, { type: "bytes32[]" }, { type: "bytes[]" }],
    [1, maxAge, [...feeds], [...updates]],
  );
}

/** Whether one of a flagged account's markets has room in its liquidation window at `now` (or no cap). */
export function windowRoom(
  account: CrossMarginAccount,
  book: Pick<CrossMarginBookView, "markets">,
  now: bigint,
): boolean {
  return account.prices.some((id) => {
    const market = book.markets.get(id);
    if (!market?.config) return false;
    const capacity = liquidationCapacity(market.config, market.window, now);
    return capacity === undefined || capacity > 0n;
  });
}

function sameTargets(a: readonly LiquidationTarget[], b: readonly LiquidationTarget[]): boolean {
  return a.length === b.length && a.every((t, i) => t.key === b[i]?.key);
}

/** The accounts of the book for the core loop. */
export function crossMarginAccounts(o: {
  readonly book: () => CrossMarginBookView;
  /** The time the next block is expected at: when a window frees, and what a flag is judged at. */
  readonly nextTimestamp: () => bigint;
}): AccountAdapter<CrossMarginAccount, CrossMarginMarket, CrossMarginGlobal> & {
  evaluate(account: CrossMarginAccount, prices: ReadonlyMap<PriceId, bigint>): CrossMarginEvaluation;
} {
  const model = crossMarginMargin(o.book);
  /** Room left in each market's window at the view being judged (by price id; undefined: no cap). */
  let room: { view: PriceView | undefined; left: Map<PriceId, bigint | undefined> } = {
    view: undefined,
    left: new Map(),
  };
  return {
    model,
    evaluate: (account, prices) => evaluateAccount(account, o.book(), { prices }),
    findings(account, evaluation, _view, book) {
      if (evaluation.kind !== "exact") return [];
      const global = book.global.config;
      if (!global) return [];
      const target: LiquidationTarget = {
        key: account.key,
        account: account.key,
        trader: account.owner,
        marketId: account.prices[0] ?? 0,
      };
      const shortfall = evaluation.requirement - evaluation.balance;
      // the windows' room in the next block, shared by the accounts of one tick: a flag takes what it can, and a
      // flagged account is continued only while room is left (sent for more, the rest would be skipped, gas spent)
      if (room.view !== _view) room = { view: _view, left: new Map() };
      const now = o.nextTimestamp();
      const take = (): boolean => {
        let any = false;
        for (const id of account.prices) {
          const market = book.markets.get(id);
          if (!market?.config) continue;
          const left = room.left.has(id) ? room.left.get(id) : liquidationCapacity(market.config, market.window, now);
          if (left === undefined) {
            any = true;
            room.left.set(id, undefined);
            continue;
          }
          const size = account.positions.get(id)?.size ?? 0n;
          const amount = size < 0n ? -size : size;
          if (left > 0n) any = true;
          room.left.set(id, left > amount ? left - amount : 0n);
        }
        return any;
      };
      if (account.flagged) {
        // continued when one of its markets' windows has room in the next block
        if (!take()) return [];
        const reward = global.stepReward < global.maxKeeperReward ? global.stepReward : global.maxKeeperReward;
        return [{ target, state: account, shortfall, expectedReward: reward }];
      }
      take();
      const health = model.figures(account, _view).health;
      return [{ target, state: account, shortfall, expectedReward: health?.liquidationReward ?? 0n } satisfies Finding];
    },
    targetKeys: (account) => [account.key],
    pricesOf: (market) => [market.priceId],
    accountOf: (key) => key,
  };
}

/** The liquidation calls for the executor. */
export function crossMarginProtocol(o: {
  readonly engine: Address;
  readonly book: CrossMarginBookView;
  readonly prices: PriceAttacher;
  readonly mode: PriceUpdateMode;
  /** The time the next block is expected at: when attached prices stop being accepted. */
  readonly nextTimestamp: () => bigint;
  /** The last head's timestamp (what a simulation at the head runs at); undefined before the first. */
  readonly headTimestamp: () => bigint | undefined;
}): LiquidationProtocol {
  const idOf = (t: LiquidationTarget): bigint => BigInt(t.account ?? t.key);
  const accountOf = (t: LiquidationTarget) => o.book.accounts.get(t.account ?? t.key);
  /** The prices the targets' flags need (flagged accounts need none). */
  const pricesFor = (targets: readonly LiquidationTarget[]): PriceId[] => {
    const ids = new Set<PriceId>();
    for (const t of targets) {
      const account = accountOf(t);
      if (!account || account.flagged) continue;
      for (const id of account.prices) ids.add(id);
    }
    return [...ids].sort((a, b) => a - b);
  };
  /** By calldata: the time its oldest attached price stops being accepted (publish time + the exchange's maximum age). */
  const validUntil = new Map<Hex, bigint>();
  /** The call last encoded: its targets and what it carries. */
  let last: { targets: readonly LiquidationTarget[]; value: bigint; attachment: PriceAttachment } | undefined;
  const attachment = (targets: readonly LiquidationTarget[]): PriceAttachment => {
    const prices = pricesFor(targets);
    if (prices.length === 0) return { updates: [], feeds: [], fee: 0n };
    const a = o.prices.attach(prices);
    // no fresh message for a price it needs: the call goes without, and the exchange refuses it (the risk model
    // does not find such an account: its price is absent)
    return a ?? { updates: [], feeds: [], fee: 0n };
  };
  const maxAge = () => o.book.global.config?.maxPriceAge ?? 0n;
  const encode = (targets: readonly LiquidationTarget[]): Hex => {
    const a = attachment(targets);
    last = { targets, value: a.fee, attachment: a };
    const data = encodeCall(targets, a);
    if (a.oldest !== undefined) {
      if (validUntil.size >= 4_096) validUntil.delete(validUntil.keys().next().value as Hex);
      validUntil.set(data, a.oldest + maxAge());
    }
    return data;
  };
  const encodeCall = (targets: readonly LiquidationTarget[], a: PriceAttachment): Hex => {
    const ids = targets.map(idOf);
    if (o.mode === "erc7412" && a.updates.length > 0) {
      const calls: Hex[] = [
        encodeFunctionData({
          abi: iCrossMarginEngineAbi,
          functionName: "fulfillOracleQuery",
          args: [fulfillData(a.feeds, maxAge(), a.updates)],
        }),
        ...ids.map((id) => encodeFunctionData({ abi: iCrossMarginEngineAbi, functionName: "liquidate", args: [id] })),
      ];
      return encodeFunctionData({ abi: iCrossMarginEngineAbi, functionName: "multicall", args: [calls] });
    }
    // one account or many, the batch calls: they skip (LiquidationSkipped) what liquidate would revert on, so a call
    // planned at a tick never reverts for an account someone else took first, and needs no simulation
    return a.updates.length > 0
      ? encodeFunctionData({ abi: iCrossMarginEngineAbi, functionName: "liquidateMany", args: [ids, [...a.updates]] })
      : encodeFunctionData({ abi: iCrossMarginEngineAbi, functionName: "liquidateFlaggedAccounts", args: [ids] });
  };
  return {
    address: o.engine,
    // the simulation runs at the head, the call in the next block: a market whose window frees in between has the
    // call close a position the simulation did not (measured on Anvil: 45-75k a market's close)
    gasExtra: (targets) => {
      const head = o.headTimestamp();
      if (head === undefined) return 0n;
      const next = o.nextTimestamp();
      let extra = 0n;
      for (const t of targets) {
        const account = accountOf(t);
        for (const id of account?.prices ?? []) {
          const market = o.book.markets.get(id);
          if (!market?.config) continue;
          const now = liquidationCapacity(market.config, market.window, head);
          const then = liquidationCapacity(market.config, market.window, next);
          if (now !== undefined && now === 0n && then !== undefined && then > 0n) extra += CLOSE_GAS;
        }
      }
      return extra;
    },
    // attach mode's calls skip rather than revert, on an exact model and prices the call brings itself: their gas is
    // planned from the exchange's figures, not simulated (a simulation's round trip before the first broadcast)
    ...(o.mode === "attach"
      ? {
          plannedGas: (targets: readonly LiquidationTarget[], data: Hex) => {
            const a = last && sameTargets(last.targets, targets) ? last.attachment : attachment(targets);
            let gas = intrinsicGas(data) + PLAN_TX_GAS + PLAN_UPDATE_GAS * BigInt(a?.updates.length ?? 0);
            const markets = new Set<PriceId>();
            for (const t of targets) {
              const account = accountOf(t);
              gas += account?.flagged ? PLAN_CONTINUE_GAS : PLAN_FLAG_GAS;
              for (const id of account?.prices ?? []) {
                gas += PLAN_CLOSE_GAS;
                markets.add(id);
              }
            }
            // a market's window walked (and pruned) cold once a transaction: one entry per second liquidated in it
            for (const id of markets) {
              const seconds = new Set(o.book.markets.get(id)?.window.map((e) => e.timestamp)).size + 1;
              gas += PLAN_MARKET_GAS + PLAN_WINDOW_ENTRY_GAS * BigInt(seconds);
            }
            return gas;
          },
        }
      : {}),
    encodeSingle: (t) => encode([t]),
    // ERC-7412's multicall reverts whole when one call does: one account a transaction
    ...(o.mode === "attach" ? { encodeBatch: (targets: readonly LiquidationTarget[]) => encode(targets) } : {}),
    value(targets) {
      if (last && sameTargets(last.targets, targets)) return last.value;
      return attachment(targets).fee;
    },
    underpaid: (targets, value) => value < attachment(targets).fee,
    priceExpired(data) {
      const until = validUntil.get(data);
      return until === undefined ? undefined : o.nextTimestamp() > until;
    },
    outcomes: (logs, from) => crossMarginOutcomes(logs, o.engine, from),
    revertName(data) {
      if (!data || data === "0x") return undefined;
      try {
        return decodeErrorResult({ abi: ERRORS_ABI, data }).errorName;
      } catch {
        return undefined;
      }
    },
    competitorTargets: crossMarginCompetitors(o.engine),
  };
}

/** By account key, what a transaction's logs say happened to each account it addressed. */
export function crossMarginOutcomes(
  logs: readonly Log[],
  engine: Address,
  from: Address | undefined,
): Map<string, TargetOutcome> {
  const out = new Map<string, TargetOutcome>();
  const closed = new Set<string>();
  const address = engine.toLowerCase();
  for (const log of logs) {
    if (log.address.toLowerCase() !== address) continue;
    let decoded: { eventName: string; args: Record<string, unknown> };
    try {
      decoded = decodeEventLog({ abi: iCrossMarginEngineAbi, topics: log.topics, data: log.data }) as typeof decoded;
    } catch {
      continue;
    }
    const key = (decoded.args.accountId as bigint | undefined)?.toString(10);
    if (key === undefined) continue;
    switch (decoded.eventName) {
      case "AccountFlaggedForLiquidation":
      case "PositionLiquidated":
        closed.add(key);
        break;
      case "AccountLiquidationAttempt": {
        const reward = decoded.args.reward as bigint;
        if (reward > 0n || closed.has(key)) {
          out.set(key, { kind: "liquidated", keeper: from ?? ("0x" as Address), reward, badDebt: 0n });
        } else out.set(key, { kind: "skipped", reason: "not_liquidatable" });
        break;
      }
      case "LiquidationSkipped": {
        const reason = Number(decoded.args.reason);
        out.set(key, { kind: "skipped", reason: reason === 2 ? "no_position" : "not_liquidatable" });
        break;
      }
    }
  }
  return out;
}
