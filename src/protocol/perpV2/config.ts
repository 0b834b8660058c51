/**
 * The config of the `perp-v2` adapter: the `exchange` object of a keeper config that names a Perp v2 ClearingHouse
 * (one arm of src/config/schema.ts's `exchange`, discriminated on `adapter`).
 *
 *   {
 *     "adapter": "perp-v2",
 *     "address": "0x82ac…",            the ClearingHouse; everything else is discovered from it (./discover.ts)
 *     "deployBlock": 513075,           where indexing (and the search for markets) starts
 *     "liquidator": "0x…",             the keeper's PerpV2Liquidator; absent: each signer liquidates from its own
 *                                      Vault account
 *     "inventory": { "mode": "close", "closeWithinBlocks": 5, "maxSlippageBps": 100, "maxExposure": "0" },
 *     "minFreeCollateral": "5000",     alert when the liquidator's free collateral falls below it
 *     "lookahead": true                send for the next block the accounts its expected marks make liquidatable
 *   }
 */
import { z } from "zod";
import { checkedAddress } from "../../config/address.ts";
import { ConfigError } from "../../config/errors.ts";

const decimalString = z.string().regex(/^\d+(\.\d+)?$/, 'must be a non-negative decimal string, e.g. "1.5"');

const isZero = (v: string) => /^0+(\.0+)?$/.test(v);

/** What the liquidator does with the positions it takes over (the liquidated traders' positions, at the mark). */
export const perpV2InventorySchema = z
  .object({
    /**
     * close: every position taken over is closed through the pool in the liquidation's own transaction (the keeper's
     * PerpV2Liquidator: liquidateAndClose), at most maxSlippageBps from the mark; a close that fails is retried with
     * every later batch, and said (inventory_close_overdue) once closeWithinBlocks blocks pass with it still held.
     * hold: nothing is closed (the operator hedges elsewhere, or closes by hand: perp-keeper collateral close), and a
     * takeover is cut so that the notional held stays within maxExposure.
     */
    mode: z.enum(["close", "hold"]).default("close"),
    closeWithinBlocks: z.number().int().min(1).max(10_000).default(5),
    /** The pool price the close may reach, in basis points from the mark price (100 = 1%). */
    maxSlippageBps: z.number().int().min(1).max(5_000).default(100),
    /** hold: the notional (quote, at the mark, all markets) the liquidator may hold. */
    maxExposure: decimalString.default("0"),
  })
  .strict()
  .refine((i) => i.mode !== "hold" || !isZero(i.maxExposure), {
    message: "mode hold keeps positions up to maxExposure: set maxExposure above 0 (or use mode close)",
    path: ["maxExposure"],
  });

export const perpV2ExchangeSchema = z
  .object({
    adapter: z.literal("perp-v2"),
    /** The ClearingHouse. */
    address: checkedAddress,
    /** The block the ClearingHouse was deployed in (or earlier): the backfill and the market search start there. */
    deployBlock: z.number().int().nonnegative(),
    /**
     * The keeper's own PerpV2Liquidator (contracts/): the account that takes positions over, holds their collateral,
     * batches liquidations and closes what it took; its operators are the keeper's signers. Absent: each signer
     * liquidates from its own Vault account, one call at a time, and keeps what it takes over.
     */
    liquidator: checkedAddress.optional(),
    inventory: perpV2InventorySchema.prefault({}),
    /** Settlement token (USDC) the liquidator's free collateral should not fall below: an alert, not a stop. */
    minFreeCollateral: decimalString.optional(),
    /**
     * Look ahead: while accounts are near maintenance, each head's marks are read a second time as the next block
     * will see them (its number and expected time: the mark follows the pool's TWAP), and the accounts it will find
     * liquidatable are sent for that block. One more eth_call per head, in the head's round trip.
     */
    lookahead: z.boolean().default(true),
  })
  .strict();

/** The config as given (defaults optional). */
export type PerpV2ExchangeConfigInput = z.input<typeof perpV2ExchangeSchema>;
/** The config after parsing: defaults filled, addresses checksummed. */
export type PerpV2ExchangeConfig = z.output<typeof perpV2ExchangeSchema>;

/** Parses the `exchange` object of a perp-v2 config; every problem is named with its path, as parseConfig does. */
export function parsePerpV2ExchangeConfig(raw: unknown, path = "exchange"): PerpV2ExchangeConfig {
  const result = perpV2ExchangeSchema.safeParse(raw);
  if (!result.success) {
    const problems = result.error.issues.map((i) => `  ${[path, ...i.path.map(String)].join(".")}: ${i.message}`);
    throw new ConfigError(`invalid ${path}:\n${problems.join("\n")}`);
  }
  return result.data;
}
