/**
 * What every exchange's composition root shares: connecting within the start-up deadline, the executor's settings
 * from the config, and the run itself (resume from the snapshot, backfill, follow, write snapshots; a stop bounded by
 * shutdownGraceMs). src/app.ts assembles PerpEngine's parts on it, src/protocol/perpV2/run.ts Perp v2's.
 */

import type { Hex } from "viem";
import { parseUnits } from "viem";
import { connect, endpoints } from "./chain/connect.ts";
import { describeError, isRetryable } from "./chain/errors.ts";
import { redactUrl } from "./config/load.ts";
import type { KeeperConfig } from "./config/schema.ts";
import { KeeperError } from "./errors.ts";
import type { Executor } from "./executor/executor.ts";
import type { ExecutorOptions } from "./executor/types.ts";
import { fromWad } from "./ops/decimals.ts";
import type { Freshness } from "./ops/freshness.ts";
import type { Logger } from "./ops/logger.ts";
import { retry, within } from "./ops/retry.ts";
import type { SnapshotCodec } from "./state/snapshotCodec.ts";
import type { Snapshotter } from "./state/snapshotter.ts";
import { resumeFromSnapshot } from "./watcher/resume.ts";
import type { Watcher } from "./watcher/watcher.ts";

export interface KeeperRunOptions {
  readonly config: KeeperConfig;
  readonly rpcUrl: string;
  /** One nonce lane per key; never logged. */
  readonly privateKeys: readonly Hex[];
  readonly log: Logger;
  /** Where the RPC setting came from ("flag", "environment", "config"), for keeper_started. */
  readonly rpcSource?: string;
  /** Aborting it stops the keeper, at any point, also while it is still connecting. */
  readonly signal?: AbortSignal;
  /** The start-up checks check-config makes too (src/ops/preflight.ts), run as soon as the RPC answers. */
  readonly preflight?: (connection: Awaited<ReturnType<typeof connect>>) => Promise<unknown>;
}

/**
 * Each part logs through a child of the keeper's logger carrying its `component`: the src/ folder it lives in
 * (`chain`, `watcher`, `executor`, `keeper`, `precompute`, `state`, `ops`), `app` for the keeper's start, stop and
 * retries here. Children write where the logger writes and share its tap (src/ops/logger.ts).
 */
export function componentLogs(log: Logger) {
  const of = (component: string) => log.child({ component });
  return {
    app: of("app"),
    chain: of("chain"),
    watcher: of("watcher"),
    executor: of("executor"),
    keeper: of("keeper"),
    precompute: of("precompute"),
    state: of("state"),
    ops: of("ops"),
  };
}

/** The RPC never answered within the start-up deadline (exit 1, naming the endpoint, never its key). */
export class StartupError extends KeeperError {
  override name = "StartupError";
  /** Retried already, until the deadline; a restart may find the RPC back. */
  readonly retryable = false;
  readonly exitCode = 1;
}

export type Connection = Awaited<ReturnType<typeof connect>>;

/** Connects (and runs `preflight`), retrying an RPC that is down until startupTimeoutSeconds, then naming it. */
export async function connectWithin(o: {
  readonly config: KeeperConfig;
  readonly rpcUrl: string;
  readonly signal?: AbortSignal;
  readonly preflight?: (connection: Connection) => Promise<unknown>;
  readonly log: Logger;
  readonly chainLog: Logger;
}): Promise<Connection> {
  const k = o.config.keeper;
  let connection: Connection | undefined;
  const endpoint = endpoints(o.rpcUrl).map(redactUrl).join(", ");
  try {
    await retry(
      async () => {
        const c = await connect(o.config, o.rpcUrl, o.chainLog);
        await o.preflight?.(c).catch((error: unknown) => {
          c.close();
          throw error;
        });
        connection = c;
      },
      o.signal ?? new AbortController().signal,
      o.log,
      "connect",
      { endpoint },
      k.startupTimeoutSeconds * 1000,
    );
  } catch (error) {
    if (!isRetryable(error)) throw error;
    throw new StartupError(
      `cannot reach the RPC at ${endpoint} within ${k.startupTimeoutSeconds} s: ${describeError(error)}`,
    );
  }
  if (!connection) throw new StartupError("stopped before the RPC answered");
  return connection;
}

/** A decimal string ("2", "12.5", "0.9") in basis points. */
function bps(decimal: string | number): bigint {
  return parseUnits(String(decimal), 4);
}

/** The executor's settings from the config: fees, limits, batching; the exchange's own parts are the caller's. */
/** keeper.batchGasLimit when the config leaves it out (perp-engine; perp-v2 has its own: PERP_V2_BATCH_GAS_LIMIT). */
export const DEFAULT_BATCH_GAS_LIMIT = 3_000_000;

export function executorSettings(
  k: KeeperConfig["keeper"],
): Pick<
  ExecutorOptions,
  | "dryRun"
  | "fees"
  | "tipSource"
  | "tipPercentile"
  | "minKeeperReward"
  | "gasLimitMultiplierPercent"
  | "batching"
  | "batchGasLimit"
  | "firstBatchPositions"
  | "maxConcurrentSimulations"
  | "maxPendingPerSigner"
  | "stuckBlocks"
  | "minSignerBalance"
  | "bidding"
> {
  return {
    dryRun: k.dryRun,
    fees: {
      baseFeeMultiplierBps: bps(k.baseFeeMultiplier),
      minPriorityFeePerGas: parseUnits(k.minPriorityFeeGwei, 9),
      maxFeePerGasCap: k.maxFeePerGasGwei === undefined ? undefined : parseUnits(k.maxFeePerGasGwei, 9),
      gasTokenPrice: k.gasTokenPrice === undefined ? undefined : parseUnits(k.gasTokenPrice, 18),
      maxRewardShareBps: bps(k.maxRewardShareForGas),
      minProfit: parseUnits(k.minProfit, 18),
      replacementBumpBps: bps(k.replacementBumpPercent / 100),
      txFeeCap: Number(k.txFeeCapEth) === 0 ? undefined : parseUnits(k.txFeeCapEth, 18),
    },
    tipSource: k.priorityFeeSource,
    tipPercentile: k.priorityFeePercentile,
    minKeeperReward: parseUnits(k.minKeeperReward, 18),
    gasLimitMultiplierPercent: BigInt(k.gasLimitMultiplierPercent),
    batching: k.batching,
    batchGasLimit: BigInt(k.batchGasLimit ?? DEFAULT_BATCH_GAS_LIMIT),
    firstBatchPositions: k.firstBatchPositions,
    maxConcurrentSimulations: k.maxConcurrentLiquidations,
    maxPendingPerSigner: k.maxPendingPerSigner,
    stuckBlocks: BigInt(k.stuckBlocks),
    minSignerBalance: parseUnits(k.minSignerBalance, 18),
    bidding: !k.bidding.enabled
      ? undefined
      : {
          ordering: k.bidding.ordering,
          firstSingles: k.bidding.firstSingles,
          profitShareBps: BigInt(k.bidding.profitShareBps),
          maxPriorityFeePerGas:
            k.bidding.maxPriorityFeePerGasGwei === undefined
              ? undefined
              : parseUnits(k.bidding.maxPriorityFeePerGasGwei, 9),
        },
  };
}

/** What the run needs of the keeper's parts. */
export interface RunParts<S> {
  readonly config: KeeperConfig;
  readonly connection: Connection;
  // biome-ignore lint/suspicious/noExplicitAny: any exchange's events and changes; the state type is what matters
  readonly watcher: Watcher<any, any, S>;
  readonly executor: Executor;
  readonly freshness: Freshness;
  /** Snapshots (undefined: off): the file, its codec, and who writes it (never in a dry run). */
  readonly snapshots?: {
    readonly path: string;
    readonly codec: SnapshotCodec<S>;
    readonly identity: `0x${string}`;
    readonly writer?: Snapshotter<S>;
  };
  /** Runs once the backfill is done (precompute starts there). */
  readonly afterBackfill?: () => void;
  /** Runs first when stopping (precompute stops there). */
  readonly onStop?: () => void;
  readonly closeOps: () => Promise<void>;
  readonly log: Logger;
  readonly watcherLog: Logger;
  readonly signal?: AbortSignal;
}

/** Runs the keeper until stopped: `done` resolves when it has stopped (or rejects with a fatal error). */
export function runKeeper<S>(p: RunParts<S>): {
  readonly done: Promise<void>;
  readonly backfilled: () => boolean;
  stop(reason?: string): Promise<void>;
} {
  const { config, connection, watcher, executor, freshness, log } = p;
  const k = config.keeper;
  const controller = new AbortController();
  let backfilled = false;
  const snapshots = p.snapshots;
  const done = (async () => {
    if (snapshots) {
      const resume = {
        path: snapshots.path,
        chainId: config.network.chainId,
        exchange: snapshots.identity,
        deployBlock: BigInt(config.exchange.deployBlock),
        client: connection.publicClient,
        watcher,
        codec: snapshots.codec,
        log: p.watcherLog,
      };
      await retry(
        async () => {
          await resumeFromSnapshot(resume);
        },
        controller.signal,
        log,
        "snapshot",
      );
    }
    await retry(() => watcher.backfill(controller.signal), controller.signal, log, "backfill");
    if (!controller.signal.aborted) {
      backfilled = true;
      freshness.progressed(watcher.processedBlock);
      freshness.start();
    }
    if (snapshots?.writer && !controller.signal.aborted) {
      void snapshots.writer.write("backfilled");
      void snapshots.writer.run(controller.signal);
    }
    if (!controller.signal.aborted) {
      p.afterBackfill?.();
      executor.races.watch?.start({
        client: connection.publicClient,
        wsUrl: config.network.wsUrl,
        pollMs: k.bidding.txpoolPollMs,
        // a poll costs a request: only while liquidations of ours are planned or pending
        active: () => executor.busy,
      });
    }
    await watcher.run(controller.signal);
  })();
  let stopping: Promise<void> | undefined;
  const stop = (reason = "stop requested") => {
    stopping ??= (async () => {
      log.info({ event: "keeper_stopping", reason }, "stopping: no new work; waiting for broadcasts under way");
      controller.abort();
      p.onStop?.();
      executor.races.watch?.stop();
      executor.close();
      // shutdownGraceMs is the whole budget, whatever the RPC does: a step waiting on an endpoint that never answers
      // is left behind (the process exits), never waited for
      const deadline = performance.now() + k.shutdownGraceMs;
      const left = () => Math.max(0, deadline - performance.now());
      let drained = true;
      try {
        if (!(await within(done, left()))) {
          drained = false;
          log.warn(
            { event: "stop_timed_out", waitedFor: "follow step", graceMs: k.shutdownGraceMs },
            "the step under way did not end within the grace: stopping without it",
          );
        } else if (snapshots?.writer) {
          // only a watcher that stopped cleanly has a book worth keeping
          await within(snapshots.writer.write("stop"), left());
        }
      } finally {
        drained = (await executor.idle(left())) && drained;
        await within(executor.shutdown(), Math.max(left(), 1_000));
        await p.closeOps();
        connection.close();
        const { gasPaidWei, valuePaidWei, lostRaceGasWei, rewardsWad, ...counts } = executor.stats;
        log.info(
          {
            event: "keeper_stopped",
            reason,
            processedBlock: watcher.processedBlock.toString(),
            ...counts,
            gasPaidWei: gasPaidWei.toString(),
            valuePaidWei: valuePaidWei > 0n ? valuePaidWei.toString() : undefined,
            lostRaceGasWei: lostRaceGasWei.toString(),
            rewards: fromWad(rewardsWad).toString(),
            pendingInJournal: executor.pendingAttempts.length,
            drained,
          },
          "keeper stopped",
        );
      }
    })();
    return stopping;
  };
  // a keeper that ended on a fatal error serves no more figures
  done.catch(() => {
    void p.closeOps();
    connection.close();
  });
  if (p.signal) {
    const signal = p.signal;
    if (signal.aborted) void stop(String(signal.reason ?? "signal"));
    else signal.addEventListener("abort", () => void stop(String(signal.reason ?? "signal")), { once: true });
  }
  return { done, backfilled: () => backfilled, stop };
}
