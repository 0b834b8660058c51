/**
 * What a transaction may pay for gas, decided from the head the watcher already has: no per-transaction fee calls.
 * Pure: the executor feeds it the head's base fee, the tip from policy (or one eth_feeHistory per block) and the
 * expected reward; replacement fees follow the node's bump rule. Refusals are values, never exceptions.
 *
 * The invariant every signed transaction satisfies (checkFees, called where the executor signs): tip <= maxFee <=
 * every cap (maxFeePerGasCap; for a liquidation with a priced gas token, the reward-share ceiling), and gas limit x
 * maxFee <= txFeeCap (the node's rpc.txfeecap). New transactions, replacements, re-signs and cancels are all held to it.
 */
/** 10^18: quote amounts and prices are WAD fixed-point. */
const WAD = 10n ** 18n;

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
  /**
   * Most a transaction may offer in all (gas limit x maxFeePerGas), wei: the node refuses more (geth and Erigon
   * `rpc.txfeecap`, 1 ETH by default). Undefined: none.
   */
  readonly txFeeCap?: bigint | undefined;
}

/** Gas limit of a cancel (a plain transfer of nothing to ourselves). */
export const CANCEL_GAS = 21_000n;

/** What one transaction's fees are held to: its gas limit and, for a liquidation, its expected reward (WAD). */
export interface TxShape {
  readonly gas: bigint;
  readonly reward?: bigint;
  /** Wei the transaction sends (a pull oracle's fee): a cost beside its gas; absent: 0. */
  readonly value?: bigint;
}

/** A liquidation's value: expected reward, gas it is expected to use, and the gas limit it is signed with. */
export interface TxValue {
  readonly reward: bigint;
  /** Gas expected to be used (the estimate): the profit check. */
  readonly gas: bigint;
  /** Gas limit signed (default `gas`): what the caps price, as the node does. */
  readonly gasLimit?: bigint;
  /** Wei sent with it (a pull oracle's update fee): a cost the reward must cover beside gas; absent: 0. */
  readonly value?: bigint;
}

/** Fees as the chain stands at a head: its base fee and the tip the policy picked for that block. */
export interface FeeContext {
  readonly baseFeePerGas: bigint;
  readonly priorityFeePerGas: bigint;
}

export type FeePlan =
  | ({ readonly ok: true } & Fees)
  | {
      readonly ok: false;
      /** tx_fee_above_cap: gas limit x (base fee + 1 wei) is already above txFeeCap. */
      readonly reason: "base_fee_above_cap" | "tx_fee_above_cap" | "unprofitable";
      readonly expectedProfit?: bigint;
    };

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
 * fee cap is held to maxRewardShareBps of the reward and to txFeeCap over its gas limit; a cancel passes neither.
 */
export function planFees(ctx: FeeContext, policy: FeePolicy, value?: TxValue): FeePlan {
  const base = ctx.baseFeePerGas;
  const tip = ctx.priorityFeePerGas;
  if (value && policy.gasTokenPrice !== undefined && policy.gasTokenPrice > 0n && value.gas > 0n) {
    const profit = expectedProfit(value.reward, value.gas, base, tip, policy.gasTokenPrice, value.value);
    if (profit < policy.minProfit) return { ok: false, reason: "unprofitable", expectedProfit: profit };
  }
  const cap = feeCeiling(policy, value);
  if (cap !== undefined && cap <= base) {
    const gas = value?.gasLimit ?? value?.gas;
    const txFee = gas !== undefined && policy.txFeeCap !== undefined && gas * (base + 1n) > policy.txFeeCap;
    return { ok: false, reason: txFee ? "tx_fee_above_cap" : "base_fee_above_cap" };
  }
  const fees = capFees(marketFees(ctx, policy), cap, base);
  return { ok: true, ...fees };
}

/** What a transaction offers at this head before any cap: base fee x multiplier + tip, and the tip. */
export function marketFees(ctx: FeeContext, policy: FeePolicy): Fees {
  const tip = ctx.priorityFeePerGas;
  return { maxFeePerGas: ceilBps(ctx.baseFeePerGas, policy.baseFeeMultiplierBps) + tip, maxPriorityFeePerGas: tip };
}

/**
 * Fees `wanted` held under `ceiling`: the max fee lowered to it, the tip to what is left above `base` (or to the max
 * fee). Never refuses: a ceiling under the base fee gives fees that wait in the pool for the base fee to fall.
 */
export function capFees(wanted: Fees, ceiling: bigint | undefined, base = 0n): Fees {
  let max = wanted.maxFeePerGas;
  let tip = wanted.maxPriorityFeePerGas;
  if (ceiling !== undefined && max > ceiling) max = ceiling;
  const room = max > base ? max - base : max;
  if (tip > room) tip = room;
  return { maxFeePerGas: max, maxPriorityFeePerGas: tip };
}

/**
 * Fees a transaction would offer now, held to its caps (with `gas`: a cancel's or a gap filler's, txFeeCap too; the
 * per-transaction caps are applied again where each is decided). Unlike planFees it never refuses: a base fee above
 * the ceiling gives fees at the ceiling, never an uncapped fallback.
 */
export function currentFees(ctx: FeeContext, policy: FeePolicy, gas?: bigint): Fees {
  const cap = gas === undefined ? policy.maxFeePerGasCap : ceilingFor(policy, { gas });
  return capFees(marketFees(ctx, policy), cap, ctx.baseFeePerGas);
}

/**
 * The most a transaction may offer per gas: the configured ceiling, and for a liquidation with a priced gas token,
 * the fee at which its worst-case gas (gas x max fee) takes maxRewardShareBps of the reward; with a gas limit, the
 * node's txFeeCap over it. Replacements and re-signs are held to it as well, so a bumped liquidation never pays more
 * than its reward allows. Gas: `gasLimit` when given, else `gas`.
 */
export function feeCeiling(policy: FeePolicy, value?: TxValue): bigint | undefined {
  if (!value) return policy.maxFeePerGasCap;
  return ceilingFor(policy, { gas: value.gasLimit ?? value.gas, reward: value.reward, value: value.value });
}

/** The ceiling on maxFeePerGas for one transaction: every cap that applies to it. Undefined: none. */
export function ceilingFor(policy: FeePolicy, tx: TxShape): bigint | undefined {
  let cap = policy.maxFeePerGasCap;
  const lower = (c: bigint) => {
    if (cap === undefined || c < cap) cap = c;
  };
  if (tx.reward !== undefined && policy.gasTokenPrice !== undefined && policy.gasTokenPrice > 0n && tx.gas > 0n) {
    // gas * maxFee * price / WAD <= reward * share  =>  maxFee <= reward * share * WAD / (price * gas); the value sent
    // (a pull oracle's fee) is paid whatever the gas price, so the share applies to the reward net of it
    const net = tx.reward - ((tx.value ?? 0n) * policy.gasTokenPrice) / WAD;
    lower(net > 0n ? (net * policy.maxRewardShareBps * WAD) / (BPS * policy.gasTokenPrice * tx.gas) : 0n);
  }
  if (policy.txFeeCap !== undefined && tx.gas > 0n) lower(policy.txFeeCap / tx.gas);
  return cap;
}

export type FeeCheck =
  | { readonly ok: true }
  | {
      readonly ok: false;
      readonly reason: "negative_fee" | "tip_above_max_fee" | "max_fee_above_cap" | "tx_fee_above_cap";
    };

/**
 * The last word before signing: tip <= maxFee <= every cap of this transaction (maxFeePerGasCap, the reward share),
 * gas x maxFee <= txFeeCap. Every signing path goes through it; a violation is a refusal, never a signed transaction.
 */
export function checkFees(fees: Fees, tx: TxShape, policy: FeePolicy): FeeCheck {
  const { maxFeePerGas: max, maxPriorityFeePerGas: tip } = fees;
  if (max < 0n || tip < 0n) return { ok: false, reason: "negative_fee" };
  if (tip > max) return { ok: false, reason: "tip_above_max_fee" };
  if (policy.txFeeCap !== undefined && tx.gas * max > policy.txFeeCap) return { ok: false, reason: "tx_fee_above_cap" };
  const cap = ceilingFor({ ...policy, txFeeCap: undefined }, tx);
  if (cap !== undefined && max > cap) return { ok: false, reason: "max_fee_above_cap" };
  return { ok: true };
}

export type ReplacementPlan = ({ readonly ok: true } & Fees) | { readonly ok: false; readonly reason: "at_fee_cap" };

/**
 * Fees to replace a transaction at the same nonce: both fields raised by at least the bump rule and at least to what
 * a new transaction would pay now, held to the ceiling of the replacement (`tx`: its gas and reward; without it,
 * maxFeePerGasCap alone); refused when the bumped fees would pass it (the node would reject an under-bumped
 * replacement anyway). The tip never exceeds the max fee, whatever tip the market asks.
 */
export function replacementFees(previous: Fees, now: Fees, policy: FeePolicy, tx?: TxShape): ReplacementPlan {
  const bump = BPS + policy.replacementBumpBps;
  const bumpedTip = ceilBps(previous.maxPriorityFeePerGas, bump) + 1n;
  const bumpedMax = ceilBps(previous.maxFeePerGas, bump) + 1n;
  let tip = bumpedTip > now.maxPriorityFeePerGas ? bumpedTip : now.maxPriorityFeePerGas;
  let maxFee = bumpedMax > now.maxFeePerGas ? bumpedMax : now.maxFeePerGas;
  if (maxFee < tip) maxFee = tip;
  const cap = tx === undefined ? policy.maxFeePerGasCap : ceilingFor(policy, tx);
  if (cap !== undefined && maxFee > cap) {
    if (bumpedMax > cap || bumpedTip > cap) return { ok: false, reason: "at_fee_cap" };
    maxFee = cap;
    if (tip > maxFee) tip = maxFee; // still >= bumpedTip: that is within the cap
  }
  return { ok: true, maxFeePerGas: maxFee, maxPriorityFeePerGas: tip };
}

/**
 * The keeper's profit in collateral (WAD) if the transaction uses `gas` at the price it would pay now (base fee
 * plus tip) and sends `valueWei` (a pull oracle's update fee), with the gas token priced at `gasTokenPrice`
 * collateral per whole token (WAD).
 */
export function expectedProfit(
  reward: bigint,
  gas: bigint,
  baseFeePerGas: bigint,
  maxPriorityFeePerGas: bigint,
  gasTokenPrice: bigint,
  valueWei = 0n,
): bigint {
  const costWei = gas * (baseFeePerGas + maxPriorityFeePerGas) + valueWei;
  return reward - (costWei * gasTokenPrice) / WAD;
}

/** The tip a transaction pays at this base fee: min(tip, max fee - base fee). */
export function effectiveTip(tx: Fees, baseFee: bigint): bigint {
  const room = tx.maxFeePerGas > baseFee ? tx.maxFeePerGas - baseFee : 0n;
  return tx.maxPriorityFeePerGas < room ? tx.maxPriorityFeePerGas : room;
}
