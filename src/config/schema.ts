import { z } from "zod";

const address = z.string().regex(/^0x[0-9a-fA-F]{40}$/, "must be a 0x-prefixed 20-byte hex address");
const decimalString = z.string().regex(/^\d+(\.\d+)?$/, 'must be a non-negative decimal string, e.g. "1.5"');

/** config/<network>.json: where the exchange is and how the keeper behaves. */
export const keeperConfigSchema = z
  .object({
    network: z
      .object({
        name: z.string().min(1),
        chainId: z.number().int().positive(),
        /** Default RPC endpoint; RPC_URL in the environment overrides it. */
        rpcUrl: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }).optional(),
      })
      .strict(),
    exchange: z
      .object({
        adapter: z.literal("perp-engine"),
        address,
        deployBlock: z.number().int().nonnegative(),
      })
      .strict(),
    keeper: z
      .object({
        pollIntervalMs: z.number().int().min(20).max(60_000).default(1000),
        maxLogRange: z.number().int().positive().max(1_000_000).default(2000),
        maxConcurrentLiquidations: z.number().int().min(1).max(64).default(4),
        /** Smallest keeper reward worth sending for, in collateral (e.g. USDC). */
        minKeeperReward: decimalString.default("0"),
        gasLimitMultiplierPercent: z.number().int().min(100).max(500).default(130),
        minPriorityFeeGwei: decimalString.default("0.001"),
        /** Ceiling on maxFeePerGas; a base fee above it skips the liquidation. */
        maxFeePerGasGwei: decimalString.optional(),
        /** Price of the chain's gas token in collateral (e.g. "3000" for ETH in USDC): enables the profit check. */
        gasTokenPrice: decimalString.optional(),
        /** With gasTokenPrice: smallest reward less expected gas worth sending for, in collateral. */
        minProfit: decimalString.default("0"),
        receiptTimeoutMs: z.number().int().min(1000).default(120_000),
        rpcTimeoutMs: z.number().int().min(100).default(10_000),
        dryRun: z.boolean().default(false),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export type KeeperConfig = z.infer<typeof keeperConfigSchema>;
