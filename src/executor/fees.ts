/**
 * What a transaction may pay for gas, decided from the head the watcher already has: no per-transaction fee calls.
 * Pure: the executor feeds it the head's base fee, the tip from policy (or one eth_feeHistory per block) and the
 * expected reward; replacement fees follow the node's bump rule. Refusals are values, never exceptions.
 */
import { WAD } from "../risk/math.ts";

export interface Fees {
  readonly maxFeePerGas: bigint;
  readonly maxPriorityFeePerGas: bigint;
}

export interface FeePolicy {
  /** maxFeePerGas = baseFee * baseFeeMultiplierBps / 10_000 + tip: headroom for base-fee growth (2x: five full blocks). */
  readonly baseFeeMultiplierBps: bigint;
  /** Floor on the tip, wei. */
  readonly minPriorityFeePerGas: bigint;
  /** Ceiling on maxFeePerGas, wei; undefined: none. */
  readonly maxFeePerGasCap: bigint | undefined;
  /** Collateral per whole gas token (WAD): prices gas against the reward; undefined: no profit check, no share cap. */
  readonly gasTokenPrice: bigint | undefined;
  /** With gasTokenPrice: the most of the expected reward the worst-case gas cost (gas * maxFee) may take, bps. */
  readonly maxRewardShareBps: bigint;
  /** Smallest expected profit (reward less gas at base fee + tip, WAD collateral), with gasTokenPrice. */
  readonly minProfit: bigint;
  /** Replacement: both fee fields raised by at least this much (the node's rule; geth 10%, many 12.5%), bps. */
  readonly replacementBumpBps: bigint;
}

/** Fees as the chain stands at a head: its base fee and the tip the policy picked for that block. */
export interface FeeContext {
  readonly baseFeePerGas: bigint;
  readonly priorityFeePerGas: bigint;
}

export type FeePlan =
  | ({ readonly ok: true } & Fees)
  | { readonly ok: false; readonly reason: "base_fee_above_cap" | "unprofitable"; readonly expectedProfit?: bigint };

const BPS = 10_000n;

function ceilBps(x: bigint, bps: bigint): bigint {
  return (x * bps + BPS - 1n) / BPS;
}

/** The tip for a block: the policy's floor, or the observed tip (eth_feeHistory percentile) when higher. */
export function pickTip(policy: FeePolicy, observed: bigint | undefined): bigint {
  return observed !== undefined && observed > policy.minPriorityFeePerGas ? observed : policy.minPriorityFeePerGas;
}

/**
 * Fees for a new transaction at this head. With a reward and gas (a liquidation), the profit check applies and the
 * fee cap is held to maxRewardShareBps of the reward; a cancel passes neither.
 */
export function planFees(
  ctx: FeeContext,
  policy: FeePolicy,
  value?: { readonly reward: bigint; readonly gas: bigint },
): FeePlan {
  const base = ctx.baseFeePerGas;
  let tip = ctx.priorityFeePerGas;
  let maxFee = ceilBps(base, policy.baseFeeMultiplierBps) + tip;
  if (value && policy.gasTokenPrice !== undefined && policy.gasTokenPrice > 0n && value.gas > 0n) {
    const profit = expectedProfit(value.reward, value.gas, base, tip, policy.gasTokenPrice);
    if (profit < policy.minProfit) return { ok: false, reason: "unprofitable", expectedProfit: profit };
  }
  const cap = feeCeiling(policy, value);
  if (cap !== undefined) {
    if (cap <= base) return { ok: false, reason: "base_fee_above_cap" };
    if (maxFee > cap) maxFee = cap;
    if (tip > maxFee - base) tip = maxFee - base;
  }
  return { ok: true, maxFeePerGas: maxFee, maxPriorityFeePerGas: tip };
}

/**
 * The most a transaction may offer per gas: the configured ceiling, and for a liquidation with a priced gas token,
 * the fee at which its worst-case gas (gas x max fee) takes maxRewardShareBps of the reward. Replacements are held
 * to it as well, so a bumped liquidation never pays more than its reward allows.
 */
export function feeCeiling(
  policy: FeePolicy,
  value?: { readonly reward: bigint; readonly gas: bigint },
): bigint | undefined {
  let cap = policy.maxFeePerGasCap;
  if (value && policy.gasTokenPrice !== undefined && policy.gasTokenPrice > 0n && value.gas > 0n) {
    // gas * maxFee * price / WAD <= reward * share  =>  maxFee <= reward * share * WAD / (price * gas)
    const shareCap = (value.reward * policy.maxRewardShareBps * WAD) / (BPS * policy.gasTokenPrice * value.gas);
    if (cap === undefined || shareCap < cap) cap = shareCap;
  }
  return cap;
}

export type ReplacementPlan = ({ readonly ok: true } & Fees) | { readonly ok: false; readonly reason: "at_fee_cap" };

/**
 * Fees to replace a transaction at the same nonce: both fields raised by at least the bump rule and at least to what
 * a new transaction would pay now; refused when the bumped fee cap would pass the ceiling (the node would reject an
 * under-bumped replacement anyway).
 */
export function replacementFees(previous: Fees, now: Fees, policy: FeePolicy): ReplacementPlan {
  const bump = BPS + policy.replacementBumpBps;
  const bumpedTip = ceilBps(previous.maxPriorityFeePerGas, bump) + 1n;
  const bumpedMax = ceilBps(previous.maxFeePerGas, bump) + 1n;
  const tip = bumpedTip > now.maxPriorityFeePerGas ? bumpedTip : now.maxPriorityFeePerGas;
  let maxFee = bumpedMax > now.maxFeePerGas ? bumpedMax : now.maxFeePerGas;
  if (maxFee < tip) maxFee = tip;
  const cap = policy.maxFeePerGasCap;
  if (cap !== undefined && maxFee > cap) {
    if (bumpedMax > cap || bumpedTip > cap) return { ok: false, reason: "at_fee_cap" };
    maxFee = cap;
  }
  return { ok: true, maxFeePerGas: maxFee, maxPriorityFeePerGas: tip };
}

/**
 * The keeper's profit in collateral (WAD) if the transaction uses `gas` at the price it would pay now (base fee
 * plus tip), with the gas token priced at `gasTokenPrice` collateral per whole token (WAD).
 */
export function expectedProfit(
  reward: bigint,
  gas: bigint,
  baseFeePerGas: bigint,
  maxPriorityFeePerGas: bigint,
  gasTokenPrice: bigint,
): bigint {
  const costWei = gas * (baseFeePerGas + maxPriorityFeePerGas);
  return reward - (costWei * gasTokenPrice) / WAD;
}
