/**
 * The composition root: builds every part of the keeper from a validated config, an RPC URL and a signer key,
 * passing dependencies by hand, and runs it until stopped.
 */

import { type Address, hexToBigInt } from "viem";
import { endpoints } from "./chain/connect.ts";
import { ConfigError, redactUrl } from "./config/load.ts";
import { Executor } from "./executor/executor.ts";
import { openLanes } from "./executor/signers.ts";
import { reorgWindow } from "./executor/types.ts";
import { Keeper } from "./keeper.ts";
import { Freshness } from "./ops/freshness.ts";
import { Latency } from "./ops/latency.ts";
import { LeftBehind } from "./ops/leftBehind.ts";
import { tapOf } from "./ops/logger.ts";
import type { OpsSources } from "./ops/metrics.ts";
import { Notifier } from "./ops/notify.ts";
import { startOpsRuntime } from "./ops/runtime.ts";
import { PendingSource } from "./precompute/pendingSource.ts";
import { Precomputer } from "./precompute/precomputer.ts";
import { PendingSimulator } from "./precompute/simulate.ts";
import { Book } from "./protocol/perpEngine/book.ts";
import { perpEngineProtocol } from "./protocol/perpEngine/protocol.ts";
import { perpEnginePositionsByMarket } from "./protocol/perpEngine/readings.ts";
import { RiskEngine } from "./protocol/perpEngine/riskEngine.ts";
import { perpEngineSnapshots } from "./protocol/perpEngine/snapshot.ts";
import { type PerpEngineWatcher, watchExchange } from "./protocol/perpEngine/watch.ts";
import {
  componentLogs,
  connectWithin,
  executorSettings,
  type KeeperRunOptions,
  runKeeper,
  StartupError,
} from "./run.ts";
import { snapshotPath } from "./state/snapshotFile.ts";
import { Snapshotter } from "./state/snapshotter.ts";

export { componentLogs, type KeeperRunOptions, StartupError } from "./run.ts";

export interface RunningKeeper {
  readonly book: Book;
  readonly risk: RiskEngine;
  readonly watcher: PerpEngineWatcher;
  readonly executor: Executor;
  /** Acts on pending oracle updates (keeper.precompute); undefined when off. */
  readonly precomputer: Precomputer | undefined;
  readonly keeper: Keeper;
  /** The signers' addresses. */
  readonly addresses: readonly Address[];
  /** Where /metrics, /healthz and /readyz are served (undefined: disabled, or the address could not be bound). */
  readonly metricsUrl: string | undefined;
  /** Resolves when the keeper has stopped (after stop(), or on a fatal error, which it rejects with). */
  readonly done: Promise<void>;
  /** Stops following, lets broadcasts under way finish (up to shutdownGraceMs), and resolves when stopped. */
  stop(reason?: string): Promise<void>;
}

export async function startKeeper(o: KeeperRunOptions): Promise<RunningKeeper> {
  const { config } = o;
  const logs = componentLogs(o.log);
  const log = logs.app;
  const k = config.keeper;
  // an RPC that is down at start is retried until startupTimeoutSeconds, then the keeper gives up naming it
  const connection = await connectWithin({ ...o, log, chainLog: logs.chain });
  const { publicClient, unbatchedClient, engine } = connection;
  // a journal lock of another container or boot, still fresh, is waited for (up to its TTL); a stop ends the wait.
  // A dry run reads the journals without their locks and writes nothing: it may run beside the live keeper.
  const opened = await openLanes(
    o.privateKeys,
    config.network.chainId,
    k.stateDir,
    logs.executor,
    o.signal,
    k.dryRun,
  ).catch((error: unknown) => {
    if (o.signal?.aborted) throw new StartupError("stopped while waiting for a journal lock", { cause: error });
    throw error;
  });
  const lanes = opened.map((x) => x.lane);

  const book = new Book();
  const risk = new RiskEngine(book);
  let keeperRef: Keeper | undefined;
  let watcherRef: PerpEngineWatcher | undefined;
  let precomputer: Precomputer | undefined;
  const protocol = perpEngineProtocol(engine);
  const executor = new Executor({
    client: publicClient,
    simulationClient: unbatchedClient,
    broadcastClients: connection.broadcastClients,
    protocol,
    lanes,
    log: logs.executor,
    ...executorSettings(k),
    marketName: (id) => book.markets.get(id)?.name ?? `market ${id}`,
    current: (key) => book.positions.get(key),
    stillLiquidatable: (key) => keeperRef?.stillLiquidatable(key),
    tiedVerdict: (a) => precomputer?.tiedVerdict(a),
    priceMovedAt: (marketId) => keeperRef?.priceMovedAt(marketId),
    replan: (keys) => keeperRef?.replan(keys),
    contradicted: (block, detail) => watcherRef?.contradicted(block, detail),
    endpoints: connection.endpoints.many ? connection.endpoints : undefined,
    // mined attempts are kept for as long as the watcher's window can roll a block back
    reorgWindowBlocks: (head) => reorgWindow(head, watcherRef?.finalizedBlock, BigInt(k.reorgDepth)),
  });
  const keeper = new Keeper({ book, risk, executor, log: logs.keeper });
  keeperRef = keeper;
  const leftBehind = new LeftBehind({ warnAfterBlocks: BigInt(k.leftBehindBlocks), log: logs.ops });
  const latency = new Latency();
  const untap = tapOf(o.log)?.on((_level, fields, at) => latency.onLog(fields, at));
  const notifier = k.notify === undefined ? undefined : new Notifier(k.notify, logs.ops, config.network.name);
  const unnotify = notifier?.follow(o.log);
  /** Keeper rewards of our liquidations seen live on chain (WAD collateral), for the metrics. */
  let rewardsEarned = 0n;
  let freshnessRef: Freshness | undefined;
  const watcher = watchExchange(config, connection, book, logs.watcher, {
    freshness: () => freshnessRef?.verdict(),
    onRestore: (state) => keeper.restore(state),
    onEvent: (event, live) => {
      const change = keeper.handleEvent(event, live);
      if (live && change && event.kind === "positionLiquidated" && executor.isOurs(event.keeper)) {
        rewardsEarned += event.keeperReward;
      }
      return change;
    },
    onTick: (tick) => {
      keeper.handleTick(tick);
      latency.tick(tick.receivedAt);
      freshness.progressed(tick.blockNumber);
      leftBehind.update(tick.blockNumber, keeper.liquidatableKeys());
    },
    onRollback: (changes, cursor) => {
      keeper.rollback(changes, cursor);
      executor.onReorg();
    },
    onReorg: () => {
      keeper.reset();
      leftBehind.reset();
      executor.onReorg();
    },
  });
  watcherRef = watcher;

  const pc = k.precompute;
  if (pc.mode !== "off") {
    const simulator = await PendingSimulator.detect(unbatchedClient, pc.simulation);
    precomputer = new Precomputer({
      mode: pc.mode,
      maxWaitBlocks: BigInt(pc.maxWaitBlocks),
      checkIntervalMs: pc.checkIntervalMs,
      book,
      keeper,
      executor,
      simulator,
      log: logs.precompute,
      oracleSources: () => watcher.prices.sources(),
    });
    keeper.hook = precomputer;
  }

  let startHead = 0n;
  try {
    const head = await publicClient.getBlock({ blockTag: "latest" });
    startHead = head.number;
    if (k.batching && k.batchGasLimit !== undefined && BigInt(k.batchGasLimit) > head.gasLimit) {
      throw new ConfigError(
        `keeper.batchGasLimit ${k.batchGasLimit} is above the chain's block gas limit ${head.gasLimit}: ` +
          "no batch that large could ever be mined",
      );
    }
    await executor.start(new Map(opened.map((x) => [x.lane, x.recovered])), {
      blockNumber: head.number,
      baseFeePerGas: head.baseFeePerGas ?? 0n,
    });
  } catch (error) {
    await executor.shutdown();
    throw error;
  }

  log.info(
    {
      event: "keeper_started",
      network: config.network.name,
      chainId: config.network.chainId,
      exchange: engine,
      signers: executor.accounts,
      dryRun: k.dryRun,
      batching: k.batching,
      fromBlock: config.exchange.deployBlock,
      stateDir: k.stateDir,
      rpc: endpoints(o.rpcUrl).map(redactUrl),
      rpcFrom: o.rpcSource,
      ws: config.network.wsUrl === undefined ? undefined : redactUrl(config.network.wsUrl),
      multicall3: connection.multicall3 ?? null,
      precompute:
        precomputer === undefined
          ? undefined
          : {
              mode: pc.mode,
              simulation: precomputer.simulation,
              source: config.network.wsUrl === undefined ? "txpool" : "subscription",
            },
    },
    "keeper starting",
  );

  const snapshots = k.snapshotIntervalSeconds > 0;
  // a dry run may resume from the live keeper's snapshot but never writes one over it
  const writeSnapshots = snapshots && !k.dryRun;
  const path = snapshotPath(k.stateDir, config.network.chainId, engine);
  const snapshotter = new Snapshotter({
    path,
    chainId: config.network.chainId,
    exchange: engine,
    codec: perpEngineSnapshots,
    finalState: () => watcher.finalState(),
    intervalMs: k.snapshotIntervalSeconds * 1000,
    log: logs.state,
  });
  let runRef: ReturnType<typeof runKeeper> | undefined;
  // the /healthz and head_behind rule: judged once backfilled, the endpoints asked while no head is processed
  const headClients = connection.broadcastClients;
  const freshness = new Freshness(
    {
      limitMs: k.healthMaxHeadAgeSeconds * 1000,
      probeMs: Math.min(5_000, Math.max(250, k.healthMaxHeadAgeSeconds * 500)),
      heads: () => headClients.map(async (c) => hexToBigInt(await c.request({ method: "eth_blockNumber" }))),
      log: logs.ops,
    },
    startHead,
  );
  freshnessRef = freshness;
  const sources: OpsSources = {
    adapter: config.exchange.adapter,
    book,
    positions: (distance) => perpEnginePositionsByMarket({ book, watcher }, distance),
    watcher,
    executor,
    signers: lanes,
    startHead,
    backfilled: () => runRef?.backfilled() ?? false,
    rewardsEarned: () => rewardsEarned,
    startedAt: performance.now(),
    atRiskDistance: Number(k.atRiskDistance),
    rpcStats: connection.rpcStats,
    precompute: () => precomputer?.stats,
    leftBehind: () => leftBehind.read(),
    latency,
    freshness: () => freshness.verdict(),
  };
  const ops = await startOpsRuntime({ keeper: k, sources, log: logs.ops, freshness, untap, unnotify, notifier });
  const run = runKeeper({
    config,
    connection,
    watcher,
    executor,
    freshness,
    snapshots: snapshots
      ? {
          path,
          codec: perpEngineSnapshots,
          identity: engine,
          ...(writeSnapshots ? { writer: snapshotter } : {}),
        }
      : undefined,
    afterBackfill: () =>
      precomputer?.start(
        new PendingSource({
          client: publicClient,
          wsUrl: config.network.wsUrl,
          log: logs.precompute,
          aggregators: () => precomputer?.aggregators() ?? new Map(),
          onUpdate: (update, seenAt) => precomputer?.onPending(update, seenAt),
          pollMs: pc.txpoolPollMs,
          lookupClients: connection.endpoints.many ? connection.endpoints.list.map((e) => e.client) : undefined,
        }),
      ),
    onStop: () => precomputer?.stop(),
    closeOps: ops.close,
    log,
    watcherLog: logs.watcher,
    signal: o.signal,
  });
  runRef = run;
  const { done, stop } = run;
  return {
    book,
    risk,
    watcher,
    executor,
    precomputer,
    keeper,
    addresses: executor.accounts,
    metricsUrl: ops.url,
    done,
    stop,
  };
}
