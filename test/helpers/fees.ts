import { parseGwei } from "viem";
import type { FeePolicy } from "../../src/executor/fees.ts";

/** The default fee policy as the config builds it: 2x base fee, 0.01 gwei tip floor, 12.5% bumps, no caps. */
export const FEE_POLICY: FeePolicy = {
  baseFeeMultiplierBps: 20_000n,
  minPriorityFeePerGas: parseGwei("0.01"),
  maxFeePerGasCap: undefined,
  gasTokenPrice: undefined,
  maxRewardShareBps: 9_000n,
  minProfit: 0n,
  replacementBumpBps: 1_250n,
};
