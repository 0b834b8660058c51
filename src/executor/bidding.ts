/**
 * What a contested liquidation bids (issue 18): on a chain that orders by priority fee, the tip is the going tip plus
 * a configured share of the expected profit after gas, per unit of gas; on a first-come chain, or with nobody
 * contesting, the going tip (planFees's answer), since a higher tip buys nothing there.
 *
 * Pure, like fees.ts, and held to its invariants: tip <= maxFee <= every cap of the transaction (maxFeePerGasCap, the
 * reward-share ceiling, txFeeCap over its gas limit), so checkFees passes on every plan it returns. On top of them the
 * bid never bids itself into a loss: the expected profit after gas at base fee + tip stays at least policy.minProfit.
 * Without a gas token price no profit is known, and no bid is made (the going tip).
 */
import {
  capFees,
  ceilingFor,
  effectiveTip,
  expectedProfit,
  type FeeContext,
  type FeePlan,
  type FeePolicy,
  type Fees,
  marketFees,
  planFees,
  replacementFees,
  type TxShape,
  type TxValue,
} from "./fees.ts";

const WAD = 10n ** 18n;
const BPS = 10_000n;

/** keeper.bidding: how a contested liquidation bids. */
export interface BiddingPolicy {
  /** How the chain orders its pool: by priority fee (a bid wins) or first come, first served (a bid buys nothing). */
  readonly ordering: "priority" | "fcfs";
  /**
   * Share of the expected profit after gas (at base fee + going tip), per unit of gas, offered as extra priority
   * fee, bps (0..10_000).
   */
  readonly profitShareBps: bigint;
  /** Cap on the bid's tip, wei; undefined: none (the fee ceiling and the profit still bound it). */
  readonly maxPriorityFeePerGas: bigint | undefined;
  /**
   * The most valuable targets of a burst sent first as singles, unsimulated where the protocol knows a single's
   * worst-case gas (LiquidationProtocol.firstOutGas), before any batch; 0: none (default 0).
   */
  readonly firstSingles?: number;
}

/** A competitor's pending liquidation of the same target: the tip it offers, wei per gas. */
export interface Contest {
  readonly competitorTip: bigint;
}

export type OutbidPlan =
  | ({ readonly ok: true } & Fees)
  | {
      readonly ok: false;
      /**
       * unprofitable: beating the competitor (or the node's replacement rule) would leave less than minProfit;
       * at_fee_cap: the bump the node asks, or a tip above the competitor's, passes a cap (the fee ceiling or
       * bidding.maxPriorityFeePerGas).
       */
      readonly reason: "unprofitable" | "at_fee_cap";
    };

/** The shape the caps price: the gas limit signed (default the estimate), the reward and the value sent. */
function shapeOf(value: TxValue): TxShape {
  return { gas: value.gasLimit ?? value.gas, reward: value.reward, value: value.value };
}

/**
 * The highest tip at which the expected profit (expectedProfit, at base fee + tip over the estimated gas) is still at
 * least minProfit: undefined when no profit is known (no gas token price, or no gas); below 0 when not even a zero tip
 * leaves minProfit.
 */
export function profitTipLimit(ctx: FeeContext, policy: FeePolicy, value: TxValue): bigint | undefined {
  const price = policy.gasTokenPrice;
  if (price === undefined || price <= 0n || value.gas <= 0n) return undefined;
  // reward - floor(cost * price / WAD) >= minProfit  <=>  cost * price < (reward - minProfit + 1) * WAD
  const room = value.reward - policy.minProfit + 1n;
  if (room <= 0n) return -1n;
  const maxCost = (room * WAD - 1n) / price; // wei: gas * (base + tip) + value <= maxCost
  const left = maxCost - (value.value ?? 0n);
  if (left < 0n) return -1n;
  return left / value.gas - ctx.baseFeePerGas;
}

/**
 * Fees for a new liquidation at this head. Uncontested (no `contest`), on a first-come chain, or without a gas token
 * price: exactly planFees's answer. Contested on a priority chain: the going tip plus profitShareBps of the expected
 * profit at the going tip per unit of gas, raised to the competitor's tip + 1 wei when that still leaves minProfit;
 * then capped by bidding.maxPriorityFeePerGas (never below the going tip), by the highest tip that leaves minProfit,
 * and, with the max fee (base x multiplier + tip), by the fee ceiling as planFees caps it. Refusals are planFees's.
 */
export function bid(
  ctx: FeeContext,
  policy: FeePolicy,
  bidding: BiddingPolicy,
  value: TxValue,
  contest?: Contest,
): FeePlan {
  const plan = planFees(ctx, policy, value);
  if (!plan.ok || contest === undefined || bidding.ordering === "fcfs") return plan;
  const tip = bidTip(ctx, policy, bidding, value, contest.competitorTip);
  if (tip === undefined) return plan;
  return {
    ok: true,
    ...capFees(
      marketFees({ ...ctx, priorityFeePerGas: tip }, policy),
      ceilingFor(policy, shapeOf(value)),
      ctx.baseFeePerGas,
    ),
  };
}

/** The bid's tip before the fee ceiling; undefined: no bid (no profit known). */
function bidTip(
  ctx: FeeContext,
  policy: FeePolicy,
  bidding: BiddingPolicy,
  value: TxValue,
  competitorTip: bigint,
): bigint | undefined {
  const price = policy.gasTokenPrice;
  const limit = profitTipLimit(ctx, policy, value);
  if (price === undefined || limit === undefined) return undefined;
  const going = ctx.priorityFeePerGas;
  const profit = expectedProfit(value.reward, value.gas, ctx.baseFeePerGas, going, price, value.value);
  const share = bidding.profitShareBps < 0n ? 0n : bidding.profitShareBps > BPS ? BPS : bidding.profitShareBps;
  // profit (WAD collateral) x share, in wei of gas token (x WAD / price), per unit of gas
  const extra = profit > 0n ? (profit * share * WAD) / (BPS * price * value.gas) : 0n;
  let tip = going + extra;
  const beat = competitorTip + 1n;
  if (tip < beat && beat <= limit) tip = beat;
  if (bidding.maxPriorityFeePerGas !== undefined && tip > bidding.maxPriorityFeePerGas) {
    tip = bidding.maxPriorityFeePerGas;
  }
  if (tip > limit) tip = limit;
  return tip < going ? going : tip;
}

/**
 * Replacement fees for our pending liquidation (`previous`, at our nonce) that outbid a competitor's pending one of
 * the same target: at least the node's replacement rule (replacementFees) and the bid at this head, with an effective
 * tip (min(tip, maxFee - base fee)) above `competitorTip`; held to the fee ceiling, bidding.maxPriorityFeePerGas and
 * the profit bound (expected profit at base fee + tip at least minProfit; without a gas token price, no profit is
 * known and only the caps bound it). Refused `unprofitable` when beating it would leave less than minProfit,
 * `at_fee_cap` when a cap stands in the way. The chain's ordering is the caller's to weigh: on a first-come chain an
 * outbid buys nothing.
 */
export function outbid(
  previous: Fees,
  competitorTip: bigint,
  ctx: FeeContext,
  policy: FeePolicy,
  bidding: BiddingPolicy,
  value: TxValue,
): OutbidPlan {
  const base = ctx.baseFeePerGas;
  const limit = profitTipLimit(ctx, policy, value);
  const beat = competitorTip + 1n;
  if (limit !== undefined && limit < beat) return { ok: false, reason: "unprofitable" };
  const priority: BiddingPolicy = { ...bidding, ordering: "priority" };
  const plan = bid(ctx, policy, priority, value, { competitorTip });
  let tip = plan.ok ? plan.maxPriorityFeePerGas : ctx.priorityFeePerGas;
  if (tip < beat) tip = beat;
  const now = marketFees({ baseFeePerGas: base, priorityFeePerGas: tip }, policy);
  const r = replacementFees(previous, now, policy, shapeOf(value));
  if (!r.ok) return { ok: false, reason: "at_fee_cap" };
  if (limit !== undefined && r.maxPriorityFeePerGas > limit) return { ok: false, reason: "unprofitable" };
  if (bidding.maxPriorityFeePerGas !== undefined && r.maxPriorityFeePerGas > bidding.maxPriorityFeePerGas) {
    return { ok: false, reason: "at_fee_cap" };
  }
  if (effectiveTip(r, base) <= competitorTip) return { ok: false, reason: "at_fee_cap" };
  return r;
}
