/**
 * What a liquidation may pay for gas, and whether it still pays the keeper. Pure: the executor feeds it the
 * node's suggestion and the latest base fee.
 */
import { WAD } from "../risk/math.ts";

export interface FeeInputs {
  /** Base fee of the latest block, wei. */
  readonly baseFeePerGas: bigint;
  /** The node's EIP-1559 suggestion (viem's estimateFeesPerGas). */
  readonly suggestedMaxFeePerGas: bigint;
  readonly suggestedPriorityFeePerGas: bigint;
  /** Floor on the tip, wei. */
  readonly minPriorityFeePerGas: bigint;
  /** Ceiling on the fee cap, wei; undefined: none. */
  readonly maxFeePerGasCap: bigint | undefined;
}

export type FeePlan =
  | { readonly ok: true; readonly maxFeePerGas: bigint; readonly maxPriorityFeePerGas: bigint }
  | { readonly ok: false; readonly reason: "base_fee_above_cap" };

/**
 * The tip is the node's suggestion raised to the floor; the fee cap keeps the suggestion's headroom over the base
 * fee and moves with the tip; a configured ceiling caps both. Refused when the ceiling cannot cover the base fee.
 */
export function planFees(i: FeeInputs): FeePlan {
  let tip =
    i.suggestedPriorityFeePerGas > i.minPriorityFeePerGas ? i.suggestedPriorityFeePerGas : i.minPriorityFeePerGas;
  let maxFee = i.suggestedMaxFeePerGas - i.suggestedPriorityFeePerGas + tip;
  if (maxFee < i.baseFeePerGas + tip) maxFee = i.baseFeePerGas + tip;
  const cap = i.maxFeePerGasCap;
  if (cap !== undefined) {
    if (cap <= i.baseFeePerGas) return { ok: false, reason: "base_fee_above_cap" };
    if (maxFee > cap) maxFee = cap;
    if (tip > maxFee - i.baseFeePerGas) tip = maxFee - i.baseFeePerGas;
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
