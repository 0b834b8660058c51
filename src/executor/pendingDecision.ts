/**
 * What to do about a transaction of ours that is not mined yet, at a new head. Pure: the executor supplies the
 * attempt's state, whether its targets are still worth liquidating, and the fees a new transaction would pay now;
 * it does the I/O the answer calls for. Time is counted in blocks.
 */
import type { AttemptStatus, SignedTx } from "./attempt.ts";
import { CANCEL_GAS, ceilingFor, checkFees, type FeePolicy, type Fees, replacementFees, type TxShape } from "./fees.ts";

export interface PendingView {
  readonly status: AttemptStatus;
  /** Head block number now. */
  readonly head: bigint;
  /** The latest transaction at the attempt's nonce. */
  readonly latest: Pick<SignedTx, "purpose" | "sentAtBlock" | "maxFeePerGas" | "maxPriorityFeePerGas">;
  /** Some target is still liquidatable by the risk model at this head (undefined: no valid price to judge). */
  readonly wanted: boolean | undefined;
  /** Blocks without inclusion after which a transaction counts as stuck. */
  readonly stuckBlocks: bigint;
  /**
   * Sent behind a pending oracle update (backrun): "hold" while the update is pending and a target is liquidatable
   * at its price (never bumped: a bump would order it over the update), "cancel" when not; undefined: not tied.
   */
  readonly tied?: "hold" | "cancel";
}

export type PendingDecision =
  | { readonly type: "wait" }
  /** No target is worth it any more: replace the liquidation by a cancel at its nonce. */
  | { readonly type: "cancel" }
  /** Stuck: ask the node whether it still has the transaction, then decideStuck. */
  | { readonly type: "check" };

export function decidePending(v: PendingView): PendingDecision {
  if (v.tied === "hold") return { type: "wait" };
  if (v.tied === "cancel") return v.status === "pending" ? { type: "cancel" } : { type: "wait" };
  if (v.status === "pending" && v.latest.purpose === "liquidate" && v.wanted === false) return { type: "cancel" };
  if (v.head - v.latest.sentAtBlock >= v.stuckBlocks) return { type: "check" };
  return { type: "wait" };
}

export type Resend =
  /** Same purpose, fees raised by the replacement rule. */
  | { readonly type: "replace"; readonly purpose: SignedTx["purpose"]; readonly fees: Fees }
  /** Dropped, and its fees still do: send the same signed bytes again (same hash). */
  | { readonly type: "rebroadcast" }
  /** Dropped: sign it again at the same nonce with today's fees (nothing in the pool to outbid). */
  | { readonly type: "resign"; readonly purpose: SignedTx["purpose"]; readonly fees: Fees }
  /** Stuck, but the fee ceiling allows no higher bid: wait. */
  | { readonly type: "hold"; readonly reason: "at_fee_cap" };

/**
 * For a stuck transaction (`known`: the node still has it) or a dropped one, what to send at its nonce. A cancel is
 * a replacement like any other; a liquidation nobody wants is never sent again, its nonce is filled by a cancel.
 * `liquidation`: the attempt's gas limit and expected reward. What is signed is held to the caps of what it is (a
 * liquidation: every cap over its gas and reward; a cancel: over 21000 gas), whatever `now` offers.
 */
export function decideStuck(
  latest: Pick<SignedTx, "purpose" | "maxFeePerGas" | "maxPriorityFeePerGas">,
  known: boolean,
  wanted: boolean | undefined,
  now: Fees,
  policy: FeePolicy,
  liquidation: { readonly gas: bigint; readonly reward: bigint; readonly value?: bigint },
): Resend {
  const purpose: SignedTx["purpose"] = latest.purpose === "liquidate" && wanted !== false ? "liquidate" : "cancel";
  const tx: TxShape = purpose === "cancel" ? { gas: CANCEL_GAS } : liquidation;
  if (known) {
    const fees = replacementFees(latest, now, policy, tx);
    if (!fees.ok) return { type: "hold", reason: fees.reason };
    return { type: "replace", purpose, fees };
  }
  // dropped: nothing in the pool to outbid; today's fees (or its own, if higher), within the caps
  const ceiling = ceilingFor(policy, tx);
  let maxFee = max(latest.maxFeePerGas, now.maxFeePerGas);
  if (ceiling !== undefined && maxFee > ceiling) maxFee = ceiling;
  let tip = max(latest.maxPriorityFeePerGas, now.maxPriorityFeePerGas);
  if (tip > maxFee) tip = maxFee;
  const same = maxFee === latest.maxFeePerGas && tip === latest.maxPriorityFeePerGas;
  // the caps allow nothing better than what it had: the same signed bytes again
  if (purpose === latest.purpose && same && checkFees(latest, tx, policy).ok) return { type: "rebroadcast" };
  if (maxFee === 0n) return { type: "hold", reason: "at_fee_cap" };
  return { type: "resign", purpose, fees: { maxFeePerGas: maxFee, maxPriorityFeePerGas: tip } };
}

function max(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}
