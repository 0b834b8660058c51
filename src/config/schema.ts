import { z } from "zod";
import { NOTIFY_EVENTS } from "../ops/notify.ts";
import { crossMarginExchangeSchema } from "../protocol/crossMargin/config.ts";
import { perpV2ExchangeSchema } from "../protocol/perpV2/config.ts";

const address = z.string().regex(/^0x[0-9a-fA-F]{40}$/, "must be a 0x-prefixed 20-byte hex address");
const decimalString = z.string().regex(/^\d+(\.\d+)?$/, 'must be a non-negative decimal string, e.g. "1.5"');
/** A decimal string within [min, max] (and above min when `exclusive`). */
const decimalIn = (min: number, max: number, exclusive = false) =>
  decimalString.refine((v) => (exclusive ? Number(v) > min : Number(v) >= min) && Number(v) <= max, {
    message: `must be ${exclusive ? "above" : "at least"} ${min} and at most ${max}`,
  });

/** config/<network>.json: where the exchange is and how the keeper behaves. */
export const keeperConfigSchema = z
  .object({
    network: z
      .object({
        name: z.string().min(1),
        chainId: z.number().int().positive(),
        /** Default RPC endpoint; RPC_URL in the environment overrides it. */
        rpcUrl: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }).optional(),
        /** Several endpoints, tried in order of health (viem's fallback transport); RPC_URL(S) overrides them. */
        rpcUrls: z
          .array(z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }))
          .min(1)
          .optional(),
        /** WebSocket endpoint: new heads are subscribed to instead of polled for; RPC_WS_URL overrides it. */
        wsUrl: z.url({ protocol: /^wss?$/, error: "must be a ws(s) URL" }).optional(),
        /** Multicall3 (oracle reads in one call); default its canonical address, used when code is there. */
        multicall3Address: address.optional(),
      })
      .strict(),
    exchange: z.discriminatedUnion("adapter", [
      z
        .object({
          adapter: z.literal("perp-engine"),
          address,
          deployBlock: z.number().int().nonnegative(),
        })
        .strict(),
      /**
       * Perpetual Protocol v2 (Curie): `address` is the ClearingHouse; every other contract is discovered from it. The
       * liquidator, the inventory policy and the collateral floor: src/protocol/perpV2/config.ts.
       */
      perpV2ExchangeSchema,
      /**
       * A cross-margin exchange priced by a Pyth pull oracle (the reference CrossMarginEngine): prices from Hermes,
       * liquidations that carry them: src/protocol/crossMargin/config.ts.
       */
      crossMarginExchangeSchema,
    ]),
    keeper: z
      .object({
        pollIntervalMs: z.number().int().min(20).max(60_000).default(1000),
        maxLogRange: z.number().int().positive().max(1_000_000).default(2000),
        /** eth_getLogs ranges fetched at once during a backfill; they are applied in block order. */
        logConcurrency: z.number().int().min(1).max(32).default(4),
        /** Blocks under the head whose book changes are kept, so that a reorganisation that deep is rolled back. */
        reorgDepth: z.number().int().min(1).max(10_000).default(64),
        /** Simulations in flight at once (signing and broadcasting never wait for inclusion). */
        maxConcurrentLiquidations: z.number().int().min(1).max(256).default(32),
        /** Smallest keeper reward worth liquidating a position for, in collateral (e.g. USDC). */
        minKeeperReward: decimalString.default("0"),
        gasLimitMultiplierPercent: z.number().int().min(100).max(500).default(130),
        /** Pack one price update's candidates into the exchange's batch call (liquidateMany). */
        batching: z.boolean().default(true),
        /**
         * Gas limit one batch may take; default the adapter's: perp-engine 3M (a tenth of a 30M block, so that batches
         * pack a block tightly: a block takes a transaction only while its gas limit fits in the gas it has left),
         * perp-v2 15M (its liquidations cost 1-2M each, and each batch also pays for closing what it took over).
         */
        batchGasLimit: z.number().int().min(200_000).max(100_000_000).optional(),
        /** Positions in the first, small batch of a burst: the most underwater go out without waiting. */
        firstBatchPositions: z.number().int().min(1).max(1000).default(8),
        /** Unresolved transactions per signer at once (mind the node's per-account pool limit). */
        maxPendingPerSigner: z.number().int().min(1).max(10_000).default(512),
        /** Blocks without inclusion after which a transaction is stuck: bumped, or re-sent if dropped. */
        stuckBlocks: z.number().int().min(1).max(1000).default(3),
        /** maxFeePerGas = baseFee x baseFeeMultiplier + tip: headroom for base-fee growth. */
        baseFeeMultiplier: decimalIn(1, 10).default("2"),
        /** Tip: "fixed" (minPriorityFeeGwei) or "feeHistory" (that percentile of the last block's tips, floored). */
        priorityFeeSource: z.enum(["fixed", "feeHistory"]).default("feeHistory"),
        priorityFeePercentile: z.number().min(0).max(100).default(50),
        minPriorityFeeGwei: decimalString.default("0.01"),
        /** Ceiling on maxFeePerGas; a base fee above it skips the liquidation. */
        maxFeePerGasGwei: decimalIn(0, 1_000_000, true).optional(),
        /**
         * Most one transaction may offer in all (gas limit x maxFeePerGas), in the gas token: the node refuses more
         * (geth and Erigon `rpc.txfeecap`, 1 by default). Batches are sized to fit; "0": no cap (as in geth).
         */
        txFeeCapEth: decimalIn(0, 1_000_000).default("1"),
        /** Replacement bump on both fee fields, percent (the node's rule: geth 10, many 12.5). */
        replacementBumpPercent: z.number().min(10).max(100).default(12.5),
        /** Price of the chain's gas token in collateral (e.g. "3000" for ETH in USDC): enables the profit check. */
        gasTokenPrice: decimalString.optional(),
        /** With gasTokenPrice: smallest reward less expected gas worth sending for, in collateral. */
        minProfit: decimalString.default("0"),
        /** With gasTokenPrice: the most of the expected reward the worst-case gas cost may take (0..1). */
        maxRewardShareForGas: decimalIn(0, 1, true).default("0.9"),
        /** A signer below this balance (gas token) takes no new work; at least one liquidation's cost. */
        minSignerBalance: decimalString.default("0"),
        rpcTimeoutMs: z.number().int().min(100).default(10_000),
        /** With several endpoints: how often they are ranked (ping success and latency, and head lag). */
        rpcRankIntervalMs: z.number().int().min(250).max(600_000).default(10_000),
        /** With several endpoints: one whose head is more than this many blocks behind the best is skipped. */
        maxEndpointLagBlocks: z.number().int().min(1).max(10_000).default(5),
        /** How long an unreachable RPC is retried at start before the keeper exits 1 naming it. */
        startupTimeoutSeconds: z.number().min(1).max(3600).default(60),
        /** No new head for this long logs head_stalled once; unset: 3 block times, at least 30 s. */
        headStallSeconds: z.number().min(1).max(86_400).optional(),
        /**
         * A snapshot of the book at a final block is written this often (and after the backfill, and at stop), and a
         * restart replays from it instead of the deployment block; 0: no snapshots, written or read.
         */
        snapshotIntervalSeconds: z.number().int().min(0).max(86_400).default(300),
        /** Journals, snapshots and other state (one journal per signer and chain). */
        stateDir: z.string().min(1).default("./data"),
        /** On SIGTERM: how long broadcasts under way may take before the keeper exits anyway. */
        shutdownGraceMs: z.number().int().min(0).max(600_000).default(10_000),
        dryRun: z.boolean().default(false),
        /** The operations endpoint (/metrics, /healthz, /readyz): served unless false. */
        metricsEnabled: z.boolean().default(true),
        /** Address it binds to: loopback by default (put a proxy or a scraper on the host in front of it). */
        metricsHost: z.string().min(1).default("127.0.0.1"),
        /** Its port; 0: a free port (logged in metrics_server_started). */
        metricsPort: z.number().int().min(0).max(65_535).default(9464),
        /** A position whose liquidation price is within this fraction of the mark price counts as at risk. */
        atRiskDistance: decimalIn(0, 1).default("0.05"),
        /** A position liquidatable (and open) for this many blocks is left behind: liquidatable_left_behind. */
        leftBehindBlocks: z.number().int().min(1).max(100_000).default(5),
        /** /healthz fails when no new head was processed for this long (after the backfill). */
        healthMaxHeadAgeSeconds: z.number().min(1).max(86_400).default(60),
        /** keeper_heartbeat is logged this often; 0: never. */
        heartbeatSeconds: z.number().min(0).max(86_400).default(60),
        /**
         * Webhook notifications (docs/operations.md, "Notifications"); absent: none. The URL may come from
         * KEEPER_NOTIFY_URL instead (a Slack or Discord webhook URL is a secret), Telegram's token only from
         * TELEGRAM_BOT_TOKEN.
         */
        notify: z
          .object({
            preset: z.enum(["json", "slack", "discord", "telegram"]).default("json"),
            url: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }).optional(),
            telegramChatId: z.string().min(1).optional(),
            telegramApiUrl: z.url({ protocol: /^https?$/ }).default("https://api.telegram.org"),
            events: z
              .array(z.enum(NOTIFY_EVENTS))
              .min(1)
              .default([...NOTIFY_EVENTS]),
            maxPerMinute: z.number().int().min(1).max(600).default(20),
            retries: z.number().int().min(0).max(10).default(3),
            timeoutMs: z.number().int().min(100).max(60_000).default(5_000),
            retryBaseMs: z.number().int().min(1).max(60_000).default(1_000),
          })
          .strict()
          .refine((n) => n.preset !== "telegram" || n.telegramChatId !== undefined, {
            message: "preset telegram needs telegramChatId",
            path: ["telegramChatId"],
          })
          .optional(),
        /**
         * How a contested liquidation bids (issue 18): on a chain ordered by priority fee, the going tip plus a share
         * of the expected profit after gas per unit of gas, never below minProfit; uncontested: the going tip.
         */
        bidding: z
          .object({
            /**
             * Watch the pool for competitors' liquidations of our targets, and bid for or withdraw from contested
             * ones; false: the going tip always, and the pool unwatched.
             */
            enabled: z.boolean({ error: "must be true or false" }).default(true),
            /** Without a WebSocket endpoint, how often the pool is read (txpool_content), ms. */
            txpoolPollMs: z
              .number({ error: "must be a whole number of milliseconds, 50..60000" })
              .int({ error: "must be a whole number of milliseconds, 50..60000" })
              .min(50, { error: "must be at least 50 ms" })
              .max(60_000, { error: "must be at most 60000 ms" })
              .default(250),
            /** The most valuable targets of a burst sent first, as unsimulated singles, before any batch. */
            firstSingles: z
              .number({ error: "must be a whole number, 0..50" })
              .int({ error: "must be a whole number, 0..50" })
              .min(0, { error: "must be at least 0" })
              .max(50, { error: "must be at most 50" })
              .default(0),
            /** priority: the pool is ordered by tip, so bid; fcfs: first come, first served, so never overpay. */
            ordering: z.enum(["priority", "fcfs"], { error: 'must be "priority" or "fcfs"' }).default("priority"),
            /** Share of the expected profit after gas (per unit of gas) offered as extra tip, bps. */
            profitShareBps: z
              .number({ error: "must be a whole number of basis points, 0..10000" })
              .int({ error: "must be a whole number of basis points, 0..10000" })
              .min(0, { error: "must be at least 0" })
              .max(10_000, { error: "must be at most 10000 (all of the profit)" })
              .default(5000),
            /** Cap on a bid's tip, gwei; unset: the fee ceiling and the profit bound it. */
            maxPriorityFeePerGasGwei: decimalIn(0, 1_000_000).optional(),
          })
          .strict()
          .prefault({}),
        /**
         * Same-block liquidations: act on oracle updates still in the mempool (docs/precompute.md). Off by default.
         */
        precompute: z
          .object({
            /** off; on-block: prepared, sent when the update's block is seen; backrun: sent at once, ordered after it. */
            mode: z.enum(["off", "on-block", "backrun"]).default("off"),
            /** How liquidations are simulated after the update: eth_simulateV1, eth_call with a state override, or the first the node serves. */
            simulation: z.enum(["auto", "simulateV1", "stateOverride"]).default("auto"),
            /** An update still pending after this many heads is unwound (what was prepared on it discarded or cancelled). */
            maxWaitBlocks: z.number().int().min(1).max(1000).default(3),
            /** How often the node is asked whether each pending update is still there (dropped, replaced, mined). */
            checkIntervalMs: z.number().int().min(20).max(60_000).default(250),
            /** Without a WebSocket endpoint: how often the pool (txpool_content) is read. */
            txpoolPollMs: z.number().int().min(20).max(60_000).default(250),
          })
          .strict()
          .prefault({}),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export type KeeperConfig = z.infer<typeof keeperConfigSchema>;
