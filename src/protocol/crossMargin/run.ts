/**
 * The cross-margin exchange's composition root: its book rebuilt from its events, every account in the cross-margin
 * risk engine, prices pulled from Hermes (several endpoints, fail-over) rather than read on chain, and liquidations
 * that carry the newest update bytes of the prices they need and pay the oracle's fee.
 *
 * A price from the stream is a tick of its own: the risk engine runs on it between heads, at the prices the next
 * block will be judged at, and what it finds is sent at once, carrying that very price. The keeper sees the price
 * before the chain does, so the first block after a price that makes an account liquidatable carries its
 * liquidation. The run itself (resume, backfill, follow, snapshots, a bounded stop) is the shared one (src/run.ts).
 */
import { type Address, type Hex, hexToBigInt } from "viem";
import { iCrossMarginEngineAbi } from "../../../abi/ICrossMarginEngine.ts";
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
import { PythPriceStream } from "../../prices/pyth/hermesStream.ts";
import { PullPrices } from "../../prices/pyth/pullPrices.ts";
import { PythUpdates } from "../../prices/pyth/updates.ts";
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
import { snapshotPath } from "../../state/snapshotFile.ts";
import { Snapshotter } from "../../state/snapshotter.ts";
import { headSubscription } from "../../watcher/headSubscription.ts";
import type { Tick } from "../../watcher/types.ts";
import { Watcher } from "../../watcher/watcher.ts";
import { crossMarginAccounts, crossMarginProtocol, windowRoom } from "./adapter.ts";
import { crossMarginRules } from "./book.ts";
import { type CrossMarginEvent, crossMarginDecoder, type TimedChainLog } from "./events.ts";
import { feedsIn, feedsOnChain, pullMarkets } from "./prices.ts";
import {
  CROSS_MARGIN_ADAPTER,
  type CrossMarginAccount,
  type CrossMarginGlobal,
  type CrossMarginMarket,
} from "./records.ts";
import { crossMarginSnapshots } from "./snapshot.ts";

type Book = RecordBook<CrossMarginAccount, CrossMarginMarket, CrossMarginGlobal, CrossMarginEvent>;
type State = RecordState<CrossMarginAccount, CrossMarginMarket, CrossMarginGlobal>;

export interface CrossMarginRunningKeeper {
  readonly book: Book;
  readonly risk: CrossRiskEngine<CrossMarginAccount>;
  readonly watcher: Watcher<CrossMarginEvent, Applied<CrossMarginAccount, CrossMarginMarket, CrossMarginGlobal>, State>;
  readonly executor: Executor;
  readonly keeper: AccountKeeper<CrossMarginAccount, CrossMarginMarket, CrossMarginGlobal, CrossMarginEvent>;
  readonly stream: PythPriceStream;
  readonly addresses: readonly Address[];
  readonly metricsUrl: string | undefined;
  readonly done: Promise<void>;
  stop(reason?: string): Promise<void>;
}

export async function startCrossMarginKeeper(
  o: KeeperRunOptions & { readonly hermesUrls?: readonly string[] },
): Promise<CrossMarginRunningKeeper> {
  const { config } = o;
  const exchange = config.exchange;
  if (exchange.adapter !== "cross-margin") {
    throw new ConfigError("startCrossMarginKeeper needs exchange.adapter cross-margin");
  }
  const hermesUrls = o.hermesUrls ?? exchange.hermes.endpoints;
  if (!hermesUrls || hermesUrls.length === 0) {
    throw new ConfigError("the cross-margin exchange needs Hermes endpoints: HERMES_URLS or exchange.hermes.endpoints");
  }
  const logs = componentLogs(o.log);
  const log = logs.app;
  const k = config.keeper;
  const engine = exchange.address as Address;
  const connection = await connectWithin({ ...o, log, chainLog: logs.chain });
  const { publicClient, unbatchedClient } = connection;
  let head: Awaited<ReturnType<typeof publicClient.getBlock>>;
  let pyth: Address;
  let feeds: Hex[];
  try {
    head = await publicClient.getBlock({ blockTag: "latest" });
    const at = head.number ?? 0n;
    pyth = await publicClient.readContract({
      address: engine,
      abi: iCrossMarginEngineAbi,
      functionName: "pyth",
      blockNumber: at,
    });
    feeds = await feedsOnChain(publicClient, engine, at);
  } catch (error) {
    connection.close();
    throw error;
  }
  const headNumber = head.number ?? 0n;
  const stream = new PythPriceStream({
    endpoints: hermesUrls,
    feeds,
    log: logs.watcher,
    staleAfterMs: exchange.hermes.staleAfterMs,
    maxBehindSeconds: exchange.hermes.maxBehindSeconds,
    signal: o.signal,
  });
  try {
    await stream.start();
  } catch (error) {
    stream.close();
    connection.close();
    throw new StartupError(`no price from any Hermes endpoint (${hermesUrls.map(redactUrl).join(", ")})`, {
      cause: error,
    });
  }
  const opened = await openLanes(
    o.privateKeys,
    config.network.chainId,
    k.stateDir,
    logs.executor,
    o.signal,
    k.dryRun,
  ).catch((error: unknown) => {
    stream.close();
    connection.close();
    if (o.signal?.aborted) throw new StartupError("stopped while waiting for a journal lock", { cause: error });
    throw error;
  });
  const lanes = opened.map((x) => x.lane);

  const book: Book = new RecordBook(crossMarginRules);
  // one model for the engine and the findings: the figures of the engine's own evaluation are not computed twice
  const accounts = crossMarginAccounts({ book: () => book, nextTimestamp: () => prices.nextTimestamp() });
  const risk = new CrossRiskEngine(accounts.model);
  const decoder = crossMarginDecoder(engine);
  const markets = () => pullMarkets(book);
  const prices = new PullPrices({ stream, markets, log: logs.watcher });
  const updates = new PythUpdates({
    stream: { latest: (feed) => stream.latest(feed), feedsIn: (update) => feedsIn(book, stream, update) },
    feedOf: (id) => book.markets.get(id)?.config?.feedId,
    client: publicClient,
    pyth,
    log: logs.executor,
    onChange: () => executorRef?.retryRefused("the oracle's update fee changed"),
  });
  try {
    await updates.refresh(feeds[0], headNumber, true);
  } catch (error) {
    stream.close();
    connection.close();
    throw new StartupError(`could not read the update fee of the exchange's oracle ${pyth}`, { cause: error });
  }
  let keeperRef: CrossMarginRunningKeeper["keeper"] | undefined;
  let watcherRef: CrossMarginRunningKeeper["watcher"] | undefined;
  const settings = executorSettings(k);
  let executorRef: Executor | undefined;
  const protocol = crossMarginProtocol({
    engine,
    book,
    prices: updates,
    mode: exchange.priceUpdates,
    nextTimestamp: () => prices.nextTimestamp(),
    headTimestamp: () => prices.headTimestamp,
  });
  const executor = new Executor({
    client: publicClient,
    simulationClient: unbatchedClient,
    broadcastClients: connection.broadcastClients,
    protocol,
    lanes,
    log: logs.executor,
    ...settings,
    batching: k.batching && exchange.priceUpdates === "attach",
    marketName: (id) => book.markets.get(id)?.name ?? `market ${id}`,
    current: (key) => keeperRef?.current(key),
    stillLiquidatable: (key) => keeperRef?.stillLiquidatable(key),
    contradicted: (block, detail) => watcherRef?.contradicted(block, detail),
    endpoints: connection.endpoints.many ? connection.endpoints : undefined,
    reorgWindowBlocks: (h) => reorgWindow(h, watcherRef?.finalizedBlock, BigInt(k.reorgDepth)),
  });
  executorRef = executor;
  const keeper = new AccountKeeper({
    book,
    risk,
    adapter: accounts,
    executor,
    client: unbatchedClient,
    multicall3: connection.multicall3,
    log: logs.keeper,
  });
  keeperRef = keeper;
  const leftBehind = new LeftBehind({ warnAfterBlocks: BigInt(k.leftBehindBlocks), log: logs.ops });
  const latency = new Latency();
  const untap = tapOf(o.log)?.on((_level, fields, at) => latency.onLog(fields, at));
  const notifier = k.notify === undefined ? undefined : new Notifier(k.notify, logs.ops, config.network.name);
  const unnotify = notifier?.follow(o.log);
  let freshnessRef: Freshness | undefined;
  /** The last head's tick: price ticks between heads are made from it. */
  let lastHead: Tick | undefined;
  let runRef: ReturnType<typeof runKeeper> | undefined;
  const followFeeds = () => {
    const wanted = [...new Set(markets().map((m) => m.feed))].sort();
    if (wanted.join() !== [...feeds].sort().join() && wanted.length > 0) {
      feeds = wanted;
      stream.setFeeds(wanted);
    }
  };
  const watcher: CrossMarginRunningKeeper["watcher"] = new Watcher({
    client: publicClient,
    addresses: decoder.addresses,
    fromBlock: BigInt(exchange.deployBlock),
    book,
    prices,
    log: logs.watcher,
    decode: (l) => decoder.decode(l as readonly TimedChainLog[]),
    timedLogs: true, // a market's liquidation window rolls by block time
    removesListing: (applied) => applied.changes.some((c) => c.type === "market" && c.before === undefined),
    onEvent: (event, live) => keeper.handleEvent(event, live),
    onRollback: (changes, cursor) => {
      keeper.rollback(changes, cursor);
      executor.onReorg();
    },
    onRestore: (state) => keeper.restore(state),
    onTick: (tick) => {
      lastHead = tick;
      followFeeds();
      void updates.refresh(feeds[0], tick.blockNumber);
      // a price between heads is liquidated at once: this head's fees are read now, not on its way
      executor.warmFees(tick);
      keeper.handleTick(tick);
      latency.tick(tick.receivedAt);
      freshnessRef?.progressed(tick.blockNumber);
      // a flagged account waiting for its markets' windows is not left behind: the exchange holds it back
      const now = prices.nextTimestamp();
      const waiting = (key: string) => {
        const a = book.accounts.get(key);
        return a?.flagged === true && !windowRoom(a, book, now);
      };
      leftBehind.update(
        tick.blockNumber,
        [...keeper.liquidatableKeys()].filter((k) => !waiting(k.key)),
      );
    },
    onReorg: () => {
      keeper.reset();
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
  // a price from the stream is a tick: judged at once at the prices the next block will see, between heads
  const unlisten = stream.onUpdate((moved) => {
    const last = lastHead;
    if (!last || !runRef?.backfilled()) return;
    const at = prices.at(prices.nextTimestamp());
    const receivedAt = moved.reduce((t, m) => (m.receivedAt < t ? m.receivedAt : t), Number.POSITIVE_INFINITY);
    keeper.handleTick({ ...last, prices: at.prices, ahead: undefined, receivedAt }, false);
  });
  try {
    await executor.start(new Map(opened.map((x) => [x.lane, x.recovered])), {
      blockNumber: headNumber,
      baseFeePerGas: head.baseFeePerGas ?? 0n,
    });
  } catch (error) {
    unlisten();
    stream.close();
    await executor.shutdown();
    connection.close();
    throw error;
  }
  log.info(
    {
      event: "keeper_started",
      network: config.network.name,
      chainId: config.network.chainId,
      exchange: engine,
      adapter: CROSS_MARGIN_ADAPTER,
      oracle: pyth,
      priceUpdates: exchange.priceUpdates,
      hermes: hermesUrls.map(redactUrl),
      signers: executor.accounts,
      dryRun: k.dryRun,
      batching: k.batching && exchange.priceUpdates === "attach",
      fromBlock: exchange.deployBlock,
      stateDir: k.stateDir,
      rpc: endpoints(o.rpcUrl).map(redactUrl),
      rpcFrom: o.rpcSource,
      ws: config.network.wsUrl === undefined ? undefined : redactUrl(config.network.wsUrl),
      multicall3: connection.multicall3 ?? null,
    },
    `keeper starting: cross-margin exchange ${engine}, prices pulled from ${hermesUrls.length} Hermes endpoint(s)`,
  );

  const path = snapshotPath(k.stateDir, config.network.chainId, engine, crossMarginSnapshots.fileTag);
  const snapshotter = new Snapshotter({
    path,
    chainId: config.network.chainId,
    exchange: engine,
    codec: crossMarginSnapshots,
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
  const sources: OpsSources = {
    adapter: CROSS_MARGIN_ADAPTER,
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
    priceStream: () => stream.health(),
  };
  const ops = await startOpsRuntime({ keeper: k, sources, log: logs.ops, freshness, untap, unnotify, notifier });
  const snapshots = k.snapshotIntervalSeconds > 0;
  const run = runKeeper({
    config,
    connection,
    watcher,
    executor,
    freshness,
    snapshots: snapshots
      ? { path, codec: crossMarginSnapshots, identity: engine, ...(k.dryRun ? {} : { writer: snapshotter }) }
      : undefined,
    closeOps: async () => {
      unlisten();
      stream.close();
      await ops.close();
    },
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
    stream,
    addresses: executor.accounts,
    metricsUrl: ops.url,
    done: run.done,
    stop: run.stop,
  };
}
