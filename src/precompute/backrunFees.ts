/**
 * Fees that order a liquidation after the oracle update it depends on, and never before it (issue 9, `backrun`).
 * Pure.
 *
 * A fee-ordered block builder sorts by what a transaction pays above the base fee, its effective tip
 * `min(maxPriorityFeePerGas, maxFeePerGas - baseFee)`; some (Anvil's `--order fees`) sort by the fee cap instead. Both
 * fields one wei under the update's make ours lower under either rule and at every base fee:
 * `min(tip - 1, maxFee - 1 - b) = min(tip, maxFee - b) - 1`. The policy may only lower them further (its ceiling, the
 * reward's share), which keeps the order. A transaction at these fees is never replaced while its update is pending:
 * a bump would lift it over the update.
 */
import type { Fees } from "../executor/fees.ts";

/** What the update transaction offers: EIP-1559 fields, or for a legacy transaction its gas price in both. */
export interface UpdateFees {
  readonly maxFeePerGas: bigint;
  readonly maxPriorityFeePerGas: bigint;
}

export type BackrunFees =
  | ({ readonly ok: true } & Fees)
  | {
      readonly ok: false;
      /** `update_tip_zero`: nothing pays less than a zero tip; `fee_ceiling_below_base_fee`: ours could not be mined. */
      readonly reason: "update_tip_zero" | "fee_ceiling_below_base_fee";
    };

const BPS = 10_000n;

/**
 * Our fees just under the update's. `ceiling`: the most the policy lets this liquidation offer per gas (undefined:
 * no ceiling); `baseFeePerGas`: the head's, under which nothing of ours can be mined. With a hard fee cap
 * (`cancel.cap`), the fee cap is held low enough that a cancel (both fields raised by `cancel.bumpBps`) still fits
 * under it: a backrun whose update goes away must always be replaceable.
 */
export function backrunFees(
  update: UpdateFees,
  baseFeePerGas: bigint,
  ceiling: bigint | undefined,
  cancel?: { readonly cap: bigint | undefined; readonly bumpBps: bigint },
): BackrunFees {
  const tip = updateTip(update);
  if (tip <= 0n) return { ok: false, reason: "update_tip_zero" };
  let maxFee = update.maxFeePerGas - 1n;
  if (ceiling !== undefined && ceiling < maxFee) maxFee = ceiling;
  if (cancel?.cap !== undefined) {
    // a replacement offers ceil(fee x (1 + bump)) + 1: that must stay within the cap
    const room = ((cancel.cap - 1n) * BPS) / (BPS + cancel.bumpBps) - 1n;
    if (room < maxFee) maxFee = room;
  }
  if (maxFee <= baseFeePerGas) return { ok: false, reason: "fee_ceiling_below_base_fee" };
  const ours = tip - 1n < maxFee ? tip - 1n : maxFee;
  return { ok: true, maxFeePerGas: maxFee, maxPriorityFeePerGas: ours };
}

/** The most the update can pay above any base fee: its tip, held to its fee cap. Zero: nothing orders under it. */
export function updateTip(update: UpdateFees): bigint {
  return update.maxPriorityFeePerGas < update.maxFeePerGas ? update.maxPriorityFeePerGas : update.maxFeePerGas;
}
