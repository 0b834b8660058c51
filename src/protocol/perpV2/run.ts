/**
 * Perp v2's composition root: the deployment discovered from its ClearingHouse, its book rebuilt from the events of
 * its contracts, every account in the cross-margin risk engine, each head's mark and index prices read pinned to the
 * head, and liquidations through the keeper's liquidator (src/protocol/perpV2/adapter.ts). The run itself (resume,
 * backfill, follow, snapshots, a bounded stop) is the shared one (src/run.ts).
 */
import { type Address, formatUnits, hexToBigInt, parseUnits, zeroAddress } from "viem";
import { AccountKeeper } from "../../accountKeeper.ts";
import { endpoints } from "../../chain/connect.ts";
import { ConfigError, redactUrl } from "../../config/load.ts";
import { Executor } from "../../executor/executor.ts";
import { openLanes } from "../../executor/signers.ts";
import { reorgWindow } from "../../executor/types.ts";
import { Freshness } from "../../ops/freshness.ts";
import { Latency } from "../../ops/latency.ts";
import { LeftBehind } from "../../ops/leftBehind.ts";
import { tapOf } from "../../ops/logger.ts";
import type { OpsSources } from "../../ops/metrics.ts";
import { Notifier } from "../../ops/notify.ts";
import { startOpsRuntime } from "../../ops/runtime.ts";
import { CrossRiskEngine } from "../../risk/cross/engine.ts";
import {
  componentLogs,
  connectWithin,
  executorSettings,
  type KeeperRunOptions,
  runKeeper,
  StartupError,
} from "../../run.ts";
import { type Applied, RecordBook, type RecordState } from "../../state/recordBook.ts";
import { recordSnapshotCodec } from "../../state/recordSnapshot.ts";
import { snapshotPath } from "../../state/snapshotFile.ts";
import { Snapshotter } from "../../state/snapshotter.ts";
import { headSubscription } from "../../watcher/headSubscription.ts";
import { ViewPrices } from "../../watcher/viewPrices.ts";
import { Watcher } from "../../watcher/watcher.ts";
import { vaultAbi } from "./abi.ts";
import { PERP_V2_ADAPTER, perpV2Accounts, perpV2PriceMarkets, perpV2Protocol, perpV2Rules } from "./adapter.ts";
import { describePerpV2, discoverPerpV2 } from "./discover.ts";
import { type PerpV2Event, perpV2Decoder, type TimedChainLog } from "./events.ts";
import { FollowUpPlans } from "./followUps.ts";
import { PerpV2Inventory } from "./inventory.ts";
import { perpV2Margin } from "./margin.ts";
import { perpV2Deployment } from "./prices.ts";
import type { PerpV2Account, PerpV2Global, PerpV2Market } from "./records.ts";

type Book = RecordBook<PerpV2Account, PerpV2Market, PerpV2Global, PerpV2Event>;
type State = RecordState<PerpV2Account, PerpV2Market, PerpV2Global>;

/** Perp v2's records, written to snapshots (format 2). Bumped when a record's shape changes. */
export const perpV2Snapshots = recordSnapshotCodec<PerpV2Account, PerpV2Market, PerpV2Global>({
  adapter: PERP_V2_ADAPTER,
  codec: 1,
  check: {
    account(a) {
      if (typeof a.trader !== "string" || typeof a.collateral !== "bigint" || !(a.positions instanceof Map)) {
        throw new Error("not a Perp v2 account record");
      }
    },
  },
});

/**
 * keeper.batchGasLimit's default on Perp v2: a quarter of the block's gas limit, at most 7.5M. A liquidation takes
 * 1.0 to 1.4M and a batch also closes what it took over, so a tenth of a block (the PerpEngine default) would hold
 * few; and one sender's transactions go into a block in nonce order, so the next that does not fit leaves its room
 * unused: half a block wasted a quarter of each block on average, a quarter an eighth.
 */
export const PERP_V2_BATCH_GAS_LIMIT = 7_500_000;

export interface PerpV2RunningKeeper {
  readonly book: Book;
  readonly risk: CrossRiskEngine<PerpV2Account>;
  readonly watcher: Watcher<PerpV2Event, Applied<PerpV2Account, PerpV2Market, PerpV2Global>, State>;
  readonly executor: Executor;
  readonly keeper: AccountKeeper<PerpV2Account, PerpV2Market, PerpV2Global, PerpV2Event>;
  readonly addresses: readonly Address[];
  readonly metricsUrl: string | undefined;
  readonly done: Promise<void>;
  stop(reason?: string): Promise<void>;
}

export async function startPerpV2Keeper(o: KeeperRunOptions): Promise<PerpV2RunningKeeper> {
  const { config } = o;
  const exchange = config.exchange;
  if (exchange.adapter !== "perp-v2") throw new ConfigError("startPerpV2Keeper needs exchange.adapter perp-v2");
  const logs = componentLogs(o.log);
  const log = logs.app;
  const k = config.keeper;
  const connection = await connectWithin({ ...o, log, chainLog: logs.chain });
  const { publicClient, unbatchedClient } = connection;
  const clearingHouse = exchange.address as Address;
  let head: Awaited<ReturnType<typeof publicClient.getBlock>>;
  let discovered: Awaited<ReturnType<typeof discoverPerpV2>>;
  try {
    head = await publicClient.getBlock({ blockTag: "latest" });
    discovered = await discoverPerpV2(publicClient, clearingHouse, {
      blockHash: head.hash ?? undefined,
      deployBlock: BigInt(exchange.deployBlock),
      maxLogRange: k.maxLogRange,
      logConcurrency: k.logConcurrency,
    });
  } catch (error) {
    connection.close();
    throw error;
  }
  const headNumber = head.number ?? 0n;
  const deployment = perpV2Deployment(discovered);
  const { contracts } = deployment;
  const opened = await openLanes(
    o.privateKeys,
    config.network.chainId,
    k.stateDir,
    logs.executor,
    o.signal,
    k.dryRun,
  ).catch((error: unknown) => {
    connection.close();
    if (o.signal?.aborted) throw new StartupError("stopped while waiting for a journal lock", { cause: error });
    throw error;
  });
  const lanes = opened.map((x) => x.lane);

  const book: Book = new RecordBook(perpV2Rules(deployment.global));
  const model = perpV2Margin(() => book, { contracts });
  const risk = new CrossRiskEngine(model);
  const decoder = perpV2Decoder(contracts);
  const liquidator = exchange.liquidator as Address | undefined;
  // the account that takes positions over: the liquidator contract, else the (first) signer's own Vault account
  const holder = liquidator ?? lanes[0]?.address ?? zeroAddress;
  const inventory = new PerpV2Inventory({
    holder,
    book,
    settings: exchange.inventory,
    canClose: liquidator !== undefined,
    client: publicClient,
    busy: () => keeperRef?.busy() === true,
    log: logs.keeper,
  });
  if (exchange.inventory.mode === "close" && !liquidator) {
    logs.keeper.warn(
      { event: "inventory_close_unavailable", holder },
      "inventory.mode close needs exchange.liquidator (the PerpV2Liquidator closes in the liquidation's transaction): positions taken over stay with the signer",
    );
  }
  // with the liquidator contract, the calls an account still needs go in the transaction of its first
  const followUps = liquidator ? new FollowUpPlans() : undefined;
  let keeperRef: AccountKeeper<PerpV2Account, PerpV2Market, PerpV2Global, PerpV2Event> | undefined;
  let watcherRef: PerpV2RunningKeeper["watcher"] | undefined;
  const settings = executorSettings(k);
  const protocol = perpV2Protocol({ clearingHouse, liquidator, book, decoder, inventory, followUps });
  const executor = new Executor({
    client: publicClient,
    simulationClient: unbatchedClient,
    broadcastClients: connection.broadcastClients,
    protocol,
    lanes,
    log: logs.executor,
    ...settings,
    // eth_estimateGas under-estimates liquidate (inner calls under the 63/64 rule): at least 1.4x
    gasLimitMultiplierPercent: settings.gasLimitMultiplierPercent < 140n ? 140n : settings.gasLimitMultiplierPercent,
    batching: k.batching && liquidator !== undefined,
    batchGasLimit: BigInt(k.batchGasLimit ?? minBig(PERP_V2_BATCH_GAS_LIMIT, head.gasLimit / 4n)),
    // a crash of more than two blocks of liquidations is planned a block or two ahead of inclusion: an account's
    // later calls (follow-ups) are planned on the prices of a head near the block that runs them
    maxPendingGas: 2n * head.gasLimit,
    marketName: (id) => book.markets.get(id)?.name ?? `market ${id}`,
    // the keeper's own position is upkeep (an inventory close), judged by the inventory; every other by the risk
    current: (key) => (inventory.owns(key) ? inventory.current(key) : keeperRef?.current(key)),
    stillLiquidatable: (key) => (inventory.owns(key) ? inventory.wanted() : keeperRef?.stillLiquidatable(key)),
    contradicted: (block, detail) => watcherRef?.contradicted(block, detail),
    endpoints: connection.endpoints.many ? connection.endpoints : undefined,
    reorgWindowBlocks: (h) => reorgWindow(h, watcherRef?.finalizedBlock, BigInt(k.reorgDepth)),
  });
  const keeper = new AccountKeeper({
    book,
    risk,
    adapter: perpV2Accounts({
      model,
      clearingHouse,
      batch: liquidator !== undefined,
      freeCollateral: () => freeCollateral,
      exposureLeft: () => inventory.exposureLeft(),
      holder: inventory.holder,
      followUps,
      log: logs.keeper,
    }),
    executor,
    client: unbatchedClient,
    multicall3: connection.multicall3,
    log: logs.keeper,
  });
  keeperRef = keeper;
  /** The liquidator contract's free collateral in the Vault (quote WAD), read at every head; undefined: not yet. */
  let freeCollateral: bigint | undefined;
  const scale = 10n ** BigInt(18 - deployment.global.settlementDecimals);
  const minFree =
    exchange.minFreeCollateral === undefined
      ? undefined
      : parseUnits(exchange.minFreeCollateral, deployment.global.settlementDecimals);
  let collateralLow = false;
  const readFreeCollateral = (blockNumber: bigint) => {
    if (!liquidator) return;
    void publicClient
      .readContract({
        address: contracts.vault,
        abi: vaultAbi,
        functionName: "getFreeCollateral",
        args: [liquidator],
        blockNumber,
      })
      .then((v) => {
        freeCollateral = v * scale;
        const low = minFree !== undefined && v < minFree;
        if (low && !collateralLow) {
          logs.keeper.warn(
            {
              event: "liquidator_collateral_low",
              liquidator,
              freeCollateral: formatUnits(v, deployment.global.settlementDecimals),
              minFreeCollateral: exchange.minFreeCollateral,
              blockNumber: blockNumber.toString(),
            },
            "the liquidator's free collateral is below exchange.minFreeCollateral: deposit more (perp-keeper collateral deposit)",
          );
        }
        collateralLow = low;
      })
      .catch(() => {}); // kept as last read; the contract skips what its collateral cannot take (CH_NEFCI)
  };
  const leftBehind = new LeftBehind({ warnAfterBlocks: BigInt(k.leftBehindBlocks), log: logs.ops });
  const latency = new Latency();
  const untap = tapOf(o.log)?.on((_level, fields, at) => latency.onLog(fields, at));
  const notifier = k.notify === undefined ? undefined : new Notifier(k.notify, logs.ops, config.network.name);
  const unnotify = notifier?.follow(o.log);
  let freshnessRef: Freshness | undefined;
  const prices = new ViewPrices({
    markets: () => perpV2PriceMarkets(book, contracts.accountBalance),
    log: logs.watcher,
    multicall3: connection.multicall3,
    // the next block's marks, while some account is near maintenance (warm) or being liquidated
    lookahead: () => {
      if (!exchange.lookahead) return false;
      const tiers = risk.stats();
      return tiers.warm + tiers.liquidatable > 0;
    },
  });
  const watcher: PerpV2RunningKeeper["watcher"] = new Watcher({
    client: publicClient,
    addresses: decoder.addresses,
    fromBlock: BigInt(exchange.deployBlock),
    book,
    prices,
    log: logs.watcher,
    decode: (l) => decoder.decode(l as readonly TimedChainLog[]),
    timedLogs: true, // funding accrues by the second: an endpoint that leaves blockTimestamp out gets it filled in
    removesListing: (applied) => applied.changes.some((c) => c.type === "market" && c.before === undefined),
    onEvent: (event, live) => keeper.handleEvent(event, live),
    onRollback: (changes, cursor) => {
      keeper.rollback(changes, cursor);
      executor.onReorg();
    },
    onRestore: (state) => keeper.restore(state),
    onTick: (tick) => {
      readFreeCollateral(tick.blockNumber);
      inventory.onTick(tick);
      const close = inventory.upkeep();
      if (close) executor.submit([close], tick);
      keeper.handleTick(tick);
      latency.tick(tick.receivedAt);
      freshnessRef?.progressed(tick.blockNumber);
      leftBehind.update(tick.blockNumber, keeper.liquidatableKeys());
    },
    onReorg: () => {
      keeper.reset();
      inventory.reset();
      leftBehind.reset();
      executor.onReorg();
    },
    endpoints: connection.endpoints,
    logsClient: connection.logsClient,
    maxLogRange: BigInt(k.maxLogRange),
    pollIntervalMs: k.pollIntervalMs,
    reorgDepth: BigInt(k.reorgDepth),
    logConcurrency: k.logConcurrency,
    subscribeHeads:
      config.network.wsUrl === undefined ? undefined : headSubscription(config.network.wsUrl, logs.watcher),
    headStallMs: k.headStallSeconds === undefined ? undefined : k.headStallSeconds * 1000,
    freshness: () => freshnessRef?.verdict(),
  });
  watcherRef = watcher;
  try {
    await executor.start(new Map(opened.map((x) => [x.lane, x.recovered])), {
      blockNumber: headNumber,
      baseFeePerGas: head.baseFeePerGas ?? 0n,
    });
  } catch (error) {
    await executor.shutdown();
    connection.close();
    throw error;
  }
  log.info(
    {
      event: "keeper_started",
      network: config.network.name,
      chainId: config.network.chainId,
      exchange: clearingHouse,
      adapter: PERP_V2_ADAPTER,
      liquidator: liquidator ?? null,
      signers: executor.accounts,
      dryRun: k.dryRun,
      batching: k.batching && liquidator !== undefined,
      fromBlock: exchange.deployBlock,
      stateDir: k.stateDir,
      rpc: endpoints(o.rpcUrl).map(redactUrl),
      rpcFrom: o.rpcSource,
      ws: config.network.wsUrl === undefined ? undefined : redactUrl(config.network.wsUrl),
      multicall3: connection.multicall3 ?? null,
    },
    `keeper starting: ${describePerpV2(discovered)}`,
  );

  const snapshots = k.snapshotIntervalSeconds > 0;
  const path = snapshotPath(k.stateDir, config.network.chainId, clearingHouse, perpV2Snapshots.fileTag);
  const snapshotter = new Snapshotter({
    path,
    chainId: config.network.chainId,
    exchange: clearingHouse,
    codec: perpV2Snapshots,
    finalState: () => watcher.finalState(),
    intervalMs: k.snapshotIntervalSeconds * 1000,
    log: logs.state,
  });
  const headClients = connection.broadcastClients;
  const freshness = new Freshness(
    {
      limitMs: k.healthMaxHeadAgeSeconds * 1000,
      probeMs: Math.min(5_000, Math.max(250, k.healthMaxHeadAgeSeconds * 500)),
      heads: () => headClients.map(async (c) => hexToBigInt(await c.request({ method: "eth_blockNumber" }))),
      log: logs.ops,
    },
    headNumber,
  );
  freshnessRef = freshness;
  let runRef: ReturnType<typeof runKeeper> | undefined;
  const sources: OpsSources = {
    adapter: PERP_V2_ADAPTER,
    book: {
      get markets() {
        return new Map([...book.markets.values()].map((m) => [m.priceId, { id: m.priceId, name: m.name }]));
      },
    },
    watcher,
    executor,
    signers: lanes,
    startHead: headNumber,
    backfilled: () => runRef?.backfilled() ?? false,
    rewardsEarned: () => 0n,
    startedAt: performance.now(),
    atRiskDistance: Number(k.atRiskDistance),
    rpcStats: connection.rpcStats,
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
      ? { path, codec: perpV2Snapshots, identity: clearingHouse, ...(k.dryRun ? {} : { writer: snapshotter }) }
      : undefined,
    closeOps: ops.close,
    log,
    watcherLog: logs.watcher,
    signal: o.signal,
  });
  runRef = run;
  return {
    book,
    risk,
    watcher,
    executor,
    keeper,
    addresses: executor.accounts,
    metricsUrl: ops.url,
    done: run.done,
    stop: run.stop,
  };
}

function minBig(a: number, b: bigint): bigint {
  return BigInt(a) < b ? BigInt(a) : b;
}
