/**
 * Perp v2 liquidation: what the contract will take (AccountBalance.getLiquidatablePositionSize), which market to
 * liquidate first, what the keeper earns and what it costs its own margin, and the calls (what a receipt says:
 * outcomes.ts).
 * References are to @perp/curie-contract 2.8.4, contracts/.
 *
 * One call, ClearingHouse._liquidate (ClearingHouse.sol:600-696), on (trader, base, size):
 * - requires the market open (CH_MNO), no open order in any open market (CH_CLWTISO), the account liquidatable
 *   (CH_EAV), a taker position (CH_PSZ), size of the position's sign or 0 (CH_WLD);
 * - settles funding, then takes min(|size|, max) where max = getLiquidatablePositionSize(trader, base, accountValue)
 *   (size 0 or above max: max), at the MARK price: notional = mulDiv(size, mark, 1e18);
 * - penalty = mulRatio(|notional|, liquidationPenaltyRatio); the liquidator gets floor(penalty/2) as a discount on its
 *   open notional, or all of it when the account value was < 0 (the insurance fund gets the rest, as owed PnL);
 * - the liquidator takes the position over and must pass _requireEnoughFreeCollateral at imRatio (CH_NEFCI); a
 *   negative account value after it needs the insurance fund's capacity (CH_IIC); bad debt is settled after.
 *
 * Order: the largest position first. In the partial regime a call on market i takes at most
 * min(|pv_i|, Σ|pv|/2) of notional (the cap min(1, Σ|pv|/(2·|pv_i|))), which only the largest position reaches; the
 * reward is proportional to the notional taken; each unit of notional taken raises the slack by (mmRatio − penalty);
 * and only small positions can hit the cap's toUint24 overflow: mulDiv(Σ|pv|, 1e6, 2·|pv_i|) > 2^24 − 1 reverts the
 * view and the call ("SafeCast: value doesn't fit in 24 bits") when |pv_i| < Σ|pv|/33.55 and |pv_i| > $100, while the
 * margin ratio is at least mmRatio/2 (AccountBalance.sol:322-330). Each call re-evaluates on the remaining state, so
 * only the first target's figures are exact; the account's events make it dirty and the next head plans again.
 */
import { type Address, encodeFunctionData, type Hex } from "viem";
import type { AccountKey, Evaluation, PriceId, PriceView, TargetKey } from "../types.ts";
import { clearingHouseAbi } from "./abi.ts";
import { accountFigures, UNBOUNDED } from "./figures.ts";
import {
  abs,
  MIN_PARTIAL_LIQUIDATE_POSITION_VALUE,
  mulDivTrunc,
  mulRatio,
  positionValue,
  RATIO_ONE,
  UINT24_MAX,
  WAD,
} from "./math.ts";
import { type PerpV2Account, type PerpV2BookView, targetKey } from "./records.ts";

export type SizeResult = { readonly ok: true; readonly size: bigint } | { readonly ok: false; readonly revert: string };

export const UINT24_REVERT = "SafeCast: value doesn't fit in 24 bits";

/**
 * AccountBalance.getLiquidatablePositionSize (AccountBalance.sol:292-333), bit for bit: 0 when accountValue ≥ mmReq or
 * no position; the whole position when |value| ≤ $100; else, when accountValue ≥ mmReq/2 (SignedSafeMath: toward zero),
 * size·min(1e6, floor(Σ|pv|·1e6 / (2·|pv|)))/1e6 toward zero (reverting when the ratio exceeds uint24); else all.
 */
export function contractLiquidatableSize(a: {
  readonly accountValue: bigint;
  readonly marginRequirement: bigint;
  /** getTotalPositionSize (dust read as 0). */
  readonly positionSize: bigint;
  readonly mark: bigint;
  readonly totalAbsPositionValue: bigint;
}): SizeResult {
  if (a.accountValue >= a.marginRequirement || a.positionSize === 0n) return { ok: true, size: 0n };
  const valueAbs = abs(positionValue(a.positionSize, a.mark));
  if (valueAbs <= MIN_PARTIAL_LIQUIDATE_POSITION_VALUE) return { ok: true, size: a.positionSize };
  let ratio = RATIO_ONE;
  if (a.accountValue >= a.marginRequirement / 2n) {
    ratio = (a.totalAbsPositionValue * RATIO_ONE) / (valueAbs * 2n);
    if (ratio > UINT24_MAX) return { ok: false, revert: UINT24_REVERT };
    if (ratio > RATIO_ONE) ratio = RATIO_ONE;
  }
  return { ok: true, size: mulDivTrunc(a.positionSize, ratio, RATIO_ONE) };
}

/**
 * getLiquidatablePositionSize(trader, base, accountValue) on the book at these prices; undefined when the book cannot
 * say (unpriced, or a maker: its total size includes its pool balance).
 */
export function liquidatableSize(
  account: PerpV2Account,
  baseToken: Address,
  accountValue: bigint,
  at: PriceView,
  book: Pick<PerpV2BookView, "markets" | "global">,
): SizeResult | undefined {
  const f = accountFigures(account, book, at);
  if (f.kind === "unpriced" || f.maker) return undefined;
  const p = f.positions.find((x) => x.baseToken === baseToken.toLowerCase());
  if (!p || p.size === 0n) return { ok: true, size: 0n };
  const mark = at.prices.get(p.priceId);
  if (mark === undefined) return undefined;
  return contractLiquidatableSize({
    accountValue,
    marginRequirement: f.requirement,
    positionSize: p.size,
    mark,
    totalAbsPositionValue: f.totalAbsPositionValue,
  });
}

/** What one liquidation of `size` (signed like the position) at `mark` pays and costs. */
export function liquidationEffect(
  size: bigint,
  mark: bigint,
  accountValue: readonly [bigint, bigint],
  global: Pick<PerpV2BookView["global"], "liquidationPenaltyRatio" | "imRatio">,
) {
  const notional = mulDivTrunc(size, mark, WAD);
  const penalty = mulRatio(abs(notional), global.liquidationPenaltyRatio);
  // all of it only when the account value is surely < 0: otherwise count on half
  const reward = accountValue[1] < 0n ? penalty : penalty / 2n;
  // the liquidator's added debt at imRatio (Vault.sol:815-840, AccountBalance.getTotalDebtValue): a long taken over
  // owes its open notional (notional − discount), a short its base at the reference price (≈ notional)
  const debt = size > 0n ? abs(notional) - reward : abs(notional);
  const cost = (debt * global.imRatio + RATIO_ONE - 1n) / RATIO_ONE + 1n;
  return { notional, penalty, reward, cost };
}

export interface PerpV2Call {
  readonly to: Address;
  readonly data: Hex;
  readonly purpose: "liquidate" | "prepare" | "close";
}

export interface PerpV2Target {
  readonly key: TargetKey;
  readonly account: AccountKey;
  readonly owner: Address;
  readonly market: PriceId;
  readonly baseToken: Address;
  /** The size the call asks for, signed like the position; 0: as much as the contract allows. */
  readonly size: bigint;
  /** What the contract will take by the book, [least, most] in absolute value; undefined: a maker (unknown). */
  readonly expected?: readonly [bigint, bigint];
  readonly notional: bigint;
  readonly penalty: bigint;
  /** The keeper's discount (quote WAD), before the cost of closing the position taken over. */
  readonly expectedReward: bigint;
  /** Requirement − account value (quote WAD), the middle of the range. */
  readonly shortfall: bigint;
  /** The liquidator's free collateral at imRatio it takes (quote WAD, an upper bound for a flat liquidator). */
  readonly capacity: bigint;
}

export interface PerpV2Plan {
  /** To be mined first from the same signer: cancelAllExcessOrders per market with open orders. */
  readonly prerequisites: readonly PerpV2Call[];
  /** In order: the largest position first. */
  readonly targets: readonly PerpV2Target[];
}

/**
 * What to liquidate of an account the evaluation says is liquidatable (exact below requirement, or bounded with
 * high < 0; a straddling evaluation is confirmed by reads first: no targets). `maxCost` caps a target's size to the
 * liquidator's free collateral, `maxNotional` to the notional it may still hold (inventory mode hold); a capped call
 * asks for that size instead of 0.
 */
export function planTargets(
  account: PerpV2Account,
  evaluation: Evaluation,
  book: Pick<PerpV2BookView, "markets" | "global">,
  at: PriceView,
  options: { readonly clearingHouse: Address; readonly maxCost?: bigint; readonly maxNotional?: bigint },
): PerpV2Plan {
  const none: PerpV2Plan = { prerequisites: [], targets: [] };
  let av: readonly [bigint, bigint];
  if (evaluation.kind === "exact") {
    if (evaluation.balance >= evaluation.requirement) return none;
    av = [evaluation.balance, evaluation.balance];
  } else if (evaluation.kind === "bounded") {
    if (evaluation.high >= 0n) return none;
    const lo = evaluation.low === -UNBOUNDED ? -UNBOUNDED : evaluation.low + evaluation.requirement;
    av = [lo, evaluation.high + evaluation.requirement];
  } else return none;
  const f = accountFigures(account, book, at);
  if (f.kind === "unpriced") return none;
  const g = book.global;
  const prerequisites: PerpV2Call[] = [];
  for (const p of account.positions.values()) {
    if (p.orders.length > 0 && book.markets.get(p.priceId)?.status === "open") {
      prerequisites.push({
        to: options.clearingHouse,
        data: encodeCancelOrders(account.trader, p.baseToken),
        purpose: "prepare",
      });
    }
  }
  const shortfall = evaluation.requirement - (av[0] === -UNBOUNDED ? av[1] : (av[0] + av[1]) / 2n);
  const targets: PerpV2Target[] = [];
  const order = f.positions
    .filter((p) => p.size !== 0n && book.markets.get(p.priceId)?.status === "open")
    .sort((a, b) => (abs(b.value) > abs(a.value) ? 1 : abs(b.value) < abs(a.value) ? -1 : a.priceId - b.priceId));
  for (const p of order) {
    const mark = at.prices.get(p.priceId) as bigint;
    let expected: readonly [bigint, bigint] | undefined;
    if (!f.maker) {
      const ends = [av[0], av[1]].map((v) =>
        contractLiquidatableSize({
          accountValue: v,
          marginRequirement: f.requirement,
          positionSize: p.size,
          mark,
          totalAbsPositionValue: f.totalAbsPositionValue,
        }),
      );
      if (ends.some((r) => !r.ok)) continue; // the cap's uint24 overflow: the call would revert
      const sizes = ends.map((r) => abs((r as { size: bigint }).size));
      expected = [sizes[0] as bigint, sizes[1] as bigint].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0)) as [
        bigint,
        bigint,
      ];
    }
    const sign = p.size > 0n ? 1n : -1n;
    let size = 0n;
    let taken = expected ? expected[0] : abs(p.size);
    let effect = liquidationEffect(sign * taken, mark, av, g);
    if (options.maxCost !== undefined && effect.cost > options.maxCost) {
      taken = (((options.maxCost * RATIO_ONE) / g.imRatio) * WAD) / mark;
      while (taken > 0n && liquidationEffect(sign * taken, mark, av, g).cost > options.maxCost)
        taken = (taken * 99n) / 100n;
      if (taken === 0n) continue;
      size = sign * taken;
      effect = liquidationEffect(size, mark, av, g);
    }
    if (options.maxNotional !== undefined && abs(effect.notional) > options.maxNotional) {
      taken = (options.maxNotional * WAD) / mark;
      if (taken === 0n) continue;
      size = sign * taken;
      effect = liquidationEffect(size, mark, av, g);
    }
    targets.push({
      key: targetKey(account.trader, p.priceId),
      account: account.key,
      owner: account.trader,
      market: p.priceId,
      baseToken: p.baseToken,
      size,
      ...(expected ? { expected } : {}),
      notional: abs(effect.notional),
      penalty: effect.penalty,
      expectedReward: effect.reward,
      shortfall,
      capacity: effect.cost,
    });
  }
  return { prerequisites, targets };
}

/** liquidate(trader, baseToken, positionSize): the 3-argument form (size 0 is the 2-argument form's "as much as allowed"). */
export function encodeLiquidate(trader: Address, baseToken: Address, size: bigint): Hex {
  return encodeFunctionData({ abi: clearingHouseAbi, functionName: "liquidate", args: [trader, baseToken, size] });
}

export function encodeTarget(target: PerpV2Target, clearingHouse: Address): PerpV2Call {
  return {
    to: clearingHouse,
    data: encodeLiquidate(target.owner, target.baseToken, target.size),
    purpose: "liquidate",
  };
}

/** cancelAllExcessOrders(maker, baseToken): anyone may call it once the maker is liquidatable (CH_NEXO otherwise). */
export function encodeCancelOrders(maker: Address, baseToken: Address): Hex {
  return encodeFunctionData({ abi: clearingHouseAbi, functionName: "cancelAllExcessOrders", args: [maker, baseToken] });
}

/** closePosition: the liquidator unwinds what it took over, through the pool (fee and slippage). */
export function encodeClosePosition(baseToken: Address, oppositeAmountBound: bigint, deadline: bigint): Hex {
  return encodeFunctionData({
    abi: clearingHouseAbi,
    functionName: "closePosition",
    args: [{ baseToken, sqrtPriceLimitX96: 0n, oppositeAmountBound, deadline, referralCode: `0x${"00".repeat(32)}` }],
  });
}
