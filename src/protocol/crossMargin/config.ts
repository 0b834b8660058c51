/**
 * The config of the `cross-margin` adapter: the `exchange` object of a keeper config that names a Pyth-priced
 * cross-margin exchange (the reference CrossMarginEngine, docs/cross-margin-engine.md).
 *
 *   {
 *     "adapter": "cross-margin",
 *     "address": "0x…",                 the exchange; its markets, feeds and rules come from its events
 *     "deployBlock": 1234,              where indexing starts
 *     "priceUpdates": "attach",         attach: liquidate(id, updateData) payable; erc7412: multicall(fulfillOracleQuery, liquidate)
 *     "hermes": {
 *       "endpoints": ["https://hermes.pyth.network"],   HERMES_URLS (comma-separated) overrides: a URL with an API key belongs there
 *       "staleAfterMs": 5000,           an endpoint silent this long is left for the next
 *       "maxBehindSeconds": 10          an endpoint whose newest price lags the best seen by more is left
 *     }
 *   }
 */
import { z } from "zod";
import { checkedAddress as address } from "../../config/address.ts";

export const hermesSchema = z
  .object({
    /** Hermes endpoints, tried in order; HERMES_URLS overrides (a URL holding an API key belongs in .env). */
    endpoints: z
      .array(z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }))
      .min(1)
      .optional(),
    staleAfterMs: z.number().int().min(200).max(600_000).default(5_000),
    maxBehindSeconds: z.number().int().min(1).max(3_600).default(10),
  })
  .strict();

export const crossMarginExchangeSchema = z
  .object({
    adapter: z.literal("cross-margin"),
    /** The exchange (CrossMarginEngine). */
    address,
    /** The block it was deployed in (or earlier): the backfill starts there. */
    deployBlock: z.number().int().nonnegative(),
    /** How a liquidation brings its price: attached (payable liquidate with update data), or ERC-7412's multicall. */
    priceUpdates: z.enum(["attach", "erc7412"]).default("attach"),
    hermes: hermesSchema.prefault({}),
  })
  .strict();

export type CrossMarginExchangeConfig = z.output<typeof crossMarginExchangeSchema>;
