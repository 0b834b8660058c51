/**
 * Benchmark of the watcher: how fast does the keeper index a large exchange, come back after a restart, handle a
 * reorganisation at that size, and how little does it ask the node while the chain is idle?
 *
 *   npm run bench:sync                              readable report
 *   npm run bench:sync -- --json                    the same, and one JSON object as the last line of stdout
 *   npm run bench:sync -- --events 5000             N position events on chain (default 100000)
 *   npm run bench:sync -- --markets 4               markets (default 4)
 *   npm run bench:sync -- --traders 2500            traders (default N / 40: 4 positions and ~40 events each)
 *   npm run bench:sync -- --events-per-block 50     events in each block that holds some (default 50)
 *   npm run bench:sync -- --blocks 2000             blocks the events span (default N / events-per-block: no
 *                                                   empty blocks; more spreads them with empty blocks between)
 *   npm run bench:sync -- --max-log-range 150       the keeper's keeper.maxLogRange (default 150, see below)
 *   npm run bench:sync -- --idle-blocks 20          blocks counted in each idle mode (default 20, after 3 of warm-up)
 *   npm run bench:sync -- --keeper-log /tmp/k.log   the keepers' JSON log lines, for a post-mortem
 *
 * One Anvil (1.7.1, from @foundry-rs/anvil, on 127.0.0.1, `--prune-history 256`: see ANVIL_ARGS), one chain,
 * phases in this order:
 *
 * 1. Chain (scripts/lib/syncChain.ts): the exchange deployed as the devnet deploys it, then N PositionChanged /
 *    MarginChanged events from impersonated traders (opens, addMargin, increases, decreases; mining paused, unsigned
 *    eth_sendTransaction in JSON-RPC batches, `--events-per-block` per block). Checked at the end: the pool is empty
 *    and eth_getLogs counts exactly N position events. Besides them the engine logs FundingUpdated (once per market
 *    and block) and its listings: every engine log is what the keeper applies, and what both rates below count.
 *    Anvil 1.7.1 pays for every block in proportion to the whole state (it rebuilds the state trie per block: ~50 ms
 *    a block at 10,000 positions, empty or not), so the chain is dense, 50 events a block, and the keeper runs with
 *    maxLogRange 150 (everything else at its defaults): its 14 ranges of ~8,100 logs (~8.3 MB of JSON each, under
 *    viem's default 10 MiB response limit) at 100,000 events are what 2000-block ranges (the default) give on a
 *    chain with 4 events a block. `--max-log-range 2000 --blocks 25000` builds that chain itself, at the price of a
 *    build of many minutes.
 * 2. Raw ceiling, rawGetLogsEventsPerSecond: the keeper's block ranges (its maxLogRange, from the
 *    deployment block to the head) fetched with eth_getLogs by plain fetch + JSON.parse (no decoding), as many ranges
 *    at once as the keeper's logConcurrency (default 4); logs / wall time. Run before the keeper's backfill and again
 *    after it (with no keeper running); the faster run is reported.
 * 3. Backfill: startKeeper (in process, straight to Anvil over HTTP, network.wsUrl set, every keeper default but
 *    maxLogRange: pollIntervalMs 1000, logConcurrency 4, reorgDepth 64) on a fresh keeper.stateDir.
 *    eventsPerSecond = the `events` / `ms` of the keeper's backfill_completed log line (events applied to the book
 *    and the risk index, timed by the watcher from its backfill_started); readyMs = from just before startKeeper to
 *    the backfill_completed line (connecting, checks, journal, executor start, backfill). The keeper's pino lines are
 *    read back through a logger destination, each timed on arrival.
 * 4. Restart: RunningKeeper.stop(), then a new keeper on the SAME keeper.stateDir; restartReadyMs = startKeeper to
 *    its backfill_completed line. A snapshot_loaded line, if the keeper logs one, is reported with its fields.
 * 5. Reorganisation, on the restarted keeper following the head (WebSocket heads, straight to Anvil): six blocks
 *    with position activity (keyed traders open positions, impersonated ones add margin), then anvil_reorg of depth 5
 *    whose replacement blocks hold other position transactions (signed here with viem local accounts): changes are
 *    undone and others applied. reorg5Ms = the `ms` field of the keeper's reorg_detected line (action "rollback"):
 *    the watcher's own time from noticing the reorganisation to the book rolled back to the common ancestor (finding
 *    the ancestor with its RPC calls included; indexing the new branch not included). reorgTickWallMs = from the
 *    anvil_reorg call returning to the end of the keeper's next tick at the head (keeper.handleTick wrapped from
 *    outside). Then the keeper's book must equal a book rebuilt from the canonical chain's logs, field by field.
 * 6. Idle: Anvil mines a block a second (evm_setIntervalMining 1), no transactions. A keeper on the same stateDir
 *    talks to Anvil only through counting proxies on 127.0.0.1 (scripts/lib/countingProxies.ts): HTTP (JSON-RPC
 *    calls, batch elements one by one, and HTTP requests) and, with network.wsUrl, WebSocket (client-to-server
 *    JSON-RPC messages, batch elements one by one). After its backfill and `--warmup-blocks` (3) blocks, counting runs
 *    from the announcement of one block to that of the block `--idle-blocks` (20) later, as seen by the bench's own
 *    newHeads subscription straight to Anvil. idleRequestsPerBlockWs / idleRequestsPerBlockHttp = (HTTP JSON-RPC calls
 *    + WebSocket messages) / blocks, with network.wsUrl, and without it (polling, the default pollIntervalMs).
 *    headToTickMsP50 (WebSocket run, those blocks): end of keeper.handleTick (wrapped from outside) - the tick's
 *    receivedAt (performance.now() when the keeper learned of the head), or, for a keeper whose Tick has no
 *    receivedAt, - the arrival of that block at the bench's own subscription; `headToTickSource` says which.
 *
 * Progress goes to stderr. Anvil, the proxies and every keeper are stopped on every way out (also on failure,
 * SIGINT and SIGTERM); the state directory is removed.
 */
import { createWriteStream, mkdtempSync, rmSync, type WriteStream } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { type Address, createPublicClient, type Hex, http, keccak256, type Log } from "viem";
import { anvil as anvilChain } from "viem/chains";
import { type RunningKeeper, startKeeper } from "../src/app.ts";
import { parseConfig } from "../src/config/load.ts";
import type { KeeperConfig } from "../src/config/schema.ts";
import { ANVIL_KEYS, type Anvil, startAnvil } from "../src/devnet/anvil.ts";
import type { Deployment } from "../src/devnet/exchange.ts";
import { createLogger, type Logger } from "../src/ops/logger.ts";
import { Book } from "../src/protocol/perpEngine/book.ts";
import { decodePerpEngineLogs } from "../src/protocol/perpEngine/protocol.ts";
import type { Tick } from "../src/watcher/watcher.ts";
import { CountingHttpProxy, CountingWsProxy, HeadsSubscription, type ProxyCounts } from "./lib/countingProxies.ts";
import { checkAnswers, type RawLogsResult, rawGetLogs, rpc, rpcBatch } from "./lib/rpc.ts";
import { addMarginCall, buildSyncChain, FEES, openCall, type SyncChain, sendCall } from "./lib/syncChain.ts";
import { benchArgs, now, round, untilEvery, within } from "./lib/tools.ts";

// ---------------------------------------------------------------------------------------------- arguments

const { json, intArg, stringArg } = benchArgs();
const EVENTS = intArg("--events", 100_000);
const MARKETS = intArg("--markets", 4);
const TRADERS = intArg("--traders", Math.max(20, Math.ceil(EVENTS / 40)));
const EVENTS_PER_BLOCK = intArg("--events-per-block", 50);
const BLOCKS = intArg("--blocks", Math.ceil(EVENTS / EVENTS_PER_BLOCK));
const MAX_LOG_RANGE = intArg("--max-log-range", 150);
const IDLE_BLOCKS = intArg("--idle-blocks", 20);
const WARMUP_BLOCKS = intArg("--warmup-blocks", 3);
const REORG_DEPTH = 5;
/**
 * Anvil 1.7.1 rebuilds the whole state trie and keeps a copy of the state for every block it mines, so a block costs
 * in proportion to the state (~50 ms at 10,000 positions): history is pruned to the last 256 states (a depth-5
 * reorganisation and the keeper's reads at the head need no more).
 */
const ANVIL_ARGS = ["--prune-history", "256"];
const KEEPER_LOG = stringArg("--keeper-log");
let keeperLogFile: WriteStream | undefined;

const log = (message: string): void => {
  process.stderr.write(`[bench:sync ${new Date().toISOString().slice(11, 23)}] ${message}\n`);
};

// ---------------------------------------------------------------------------------------------- small tools

const until = untilEvery(10);

function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number;
}

// ---------------------------------------------------------------------------------------------- cleanup

/** What must be stopped on the way out, newest first: keepers, proxies, subscriptions, Anvil. */
const cleanups = new Map<number, () => Promise<void>>();
let cleanupId = 0;
function onCleanup(fn: () => Promise<void>): () => void {
  const id = cleanupId++;
  cleanups.set(id, fn);
  return () => cleanups.delete(id);
}
async function cleanupAll(): Promise<void> {
  const fns = [...cleanups.entries()].sort((a, b) => b[0] - a[0]);
  cleanups.clear();
  for (const [, fn] of fns)
    await within(
      fn().catch(() => {}),
      20_000,
    );
}
let interrupted = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    if (interrupted) return;
    interrupted = true;
    log(`${signal}: stopping the keepers and Anvil`);
    void cleanupAll().finally(() => process.exit(signal === "SIGINT" ? 130 : 143));
  });
}

// ---------------------------------------------------------------------------------------------- keeper logs

interface LogLine {
  readonly event: string;
  readonly level: string;
  /** performance.now() when the line was written. */
  readonly at: number;
  readonly fields: Record<string, unknown>;
}

/** A keeper's pino lines, parsed and timed as they are written. */
class LogTap {
  readonly lines: LogLine[] = [];
  readonly log: Logger;

  constructor(readonly label: string) {
    if (KEEPER_LOG && !keeperLogFile) keeperLogFile = createWriteStream(KEEPER_LOG, { flags: "w" });
    this.log = createLogger({
      level: "info",
      destination: {
        write: (line: string) => {
          const at = now();
          keeperLogFile?.write(`${line.trimEnd().replace(/^\{/, `{"benchKeeper":"${label}",`)}\n`);
          const fields = JSON.parse(line) as Record<string, unknown>;
          this.lines.push({
            event: String(fields.event ?? "(none)"),
            level: String(fields.levelName ?? ""),
            at,
            fields,
          });
        },
      },
    });
  }

  find(event: string, after = Number.NEGATIVE_INFINITY): LogLine | undefined {
    return this.lines.find((l) => l.event === event && l.at > after);
  }

  all(event: string): LogLine[] {
    return this.lines.filter((l) => l.event === event);
  }

  problems(): string[] {
    return this.lines
      .filter((l) => l.level === "warn" || l.level === "error")
      .map((l) => `${l.level} ${l.event}: ${String(l.fields.msg ?? "")}`);
  }
}

// ---------------------------------------------------------------------------------------------- keepers

const KEEPER_KEY = ANVIL_KEYS[1];

interface TickSeen {
  readonly blockNumber: bigint;
  /** performance.now() after keeper.handleTick returned. */
  readonly at: number;
  readonly receivedAt: number | undefined;
}

interface KeeperRun {
  readonly label: string;
  readonly k: RunningKeeper;
  readonly tap: LogTap;
  readonly startedAt: number;
  readonly ticks: TickSeen[];
  failure(): unknown;
  stop(): Promise<void>;
}

/** The keeper's config with every keeper default, on these endpoints and state directory. */
function keeperConfig(d: Deployment, rpcUrl: string, wsUrl: string | undefined, stateDir: string): KeeperConfig {
  return parseConfig(
    {
      network: { name: "bench-sync", chainId: d.chainId, rpcUrl, ...(wsUrl ? { wsUrl } : {}) },
      exchange: { adapter: "perp-engine", address: d.engine, deployBlock: Number(d.deployBlock) },
      keeper: { stateDir, maxLogRange: MAX_LOG_RANGE },
    },
    "bench:sync keeper config",
  );
}

/** startKeeper in process, its log tapped and keeper.handleTick wrapped (from outside) to time every tick. */
async function launch(label: string, config: KeeperConfig): Promise<KeeperRun> {
  const tap = new LogTap(label);
  const startedAt = now();
  const k = await startKeeper({
    config,
    rpcUrl: config.network.rpcUrl as string,
    privateKeys: [KEEPER_KEY],
    log: tap.log,
  });
  let failure: unknown;
  k.done.catch((error: unknown) => {
    failure = error ?? new Error("the keeper failed");
  });
  const ticks: TickSeen[] = [];
  const handleTick = k.keeper.handleTick.bind(k.keeper);
  k.keeper.handleTick = (tick: Tick) => {
    handleTick(tick);
    const receivedAt = (tick as Tick & { readonly receivedAt?: number }).receivedAt;
    ticks.push({ blockNumber: tick.blockNumber, at: now(), receivedAt });
    if (ticks.length > 10_000) ticks.splice(0, 5_000);
  };
  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      await within(
        k.stop("benchmark phase finished").catch(() => {}),
        20_000,
      );
    })();
    return stopped;
  };
  const forget = onCleanup(stop);
  return {
    label,
    k,
    tap,
    startedAt,
    ticks,
    failure: () => failure,
    stop: async () => {
      await stop();
      forget();
    },
  };
}

async function waitForLine(run: KeeperRun, event: string, timeoutMs: number, after?: number): Promise<LogLine> {
  let line: LogLine | undefined;
  await until(
    `${run.label}: ${event}`,
    () => {
      if (run.failure()) throw new Error(`${run.label} failed: ${String(run.failure())}`);
      line = run.tap.find(event, after);
      return line !== undefined;
    },
    timeoutMs,
  );
  return line as LogLine;
}

async function waitAtHead(run: KeeperRun, head: bigint, timeoutMs: number): Promise<void> {
  await until(
    `${run.label} at block ${head}`,
    () => {
      if (run.failure()) throw new Error(`${run.label} failed: ${String(run.failure())}`);
      return run.k.watcher.processedBlock >= head && (run.k.watcher.latestTick?.blockNumber ?? -1n) >= head;
    },
    timeoutMs,
  );
}

// ---------------------------------------------------------------------------------------------- phases

interface BackfillResult {
  readonly readyMs: number;
  readonly backfillMs: number;
  readonly events: number;
  readonly eventsPerSecond: number;
  readonly toBlock: string;
  readonly positions: number;
  readonly snapshotLoaded: Record<string, unknown> | undefined;
  readonly backfillStarted: Record<string, unknown> | undefined;
}

/** Starts a keeper and measures start -> backfill_completed. */
async function backfillRun(
  label: string,
  config: KeeperConfig,
  timeoutMs: number,
): Promise<[KeeperRun, BackfillResult]> {
  const run = await launch(label, config);
  const done = await waitForLine(run, "backfill_completed", timeoutMs);
  const started = run.tap.find("backfill_started");
  const snapshot = run.tap.find("snapshot_loaded");
  const fields = done.fields;
  const events = Number(fields.events ?? Number.NaN);
  const backfillMs = Number(fields.ms ?? (started ? done.at - started.at : Number.NaN));
  const result: BackfillResult = {
    readyMs: round(done.at - run.startedAt),
    backfillMs,
    events,
    eventsPerSecond: Math.round(events / (backfillMs / 1000)),
    toBlock: String(fields.toBlock),
    positions: Number(fields.positions ?? run.k.book.positions.size),
    snapshotLoaded: snapshot ? stripped(snapshot.fields) : undefined,
    backfillStarted: started ? stripped(started.fields) : undefined,
  };
  return [run, result];
}

/** A log line's own fields (without pino's time, level, service, msg). */
function stripped(fields: Record<string, unknown>): Record<string, unknown> {
  const { time: _t, level: _l, service: _s, pid: _p, hostname: _h, event: _e, msg: _m, ...rest } = fields;
  return rest;
}

async function rawCeiling(
  url: string,
  chain: SyncChain,
  config: KeeperConfig,
  toBlock: bigint,
): Promise<RawLogsResult> {
  return rawGetLogs(url, {
    address: chain.ex.d.engine,
    fromBlock: chain.ex.d.deployBlock,
    toBlock,
    maxRange: BigInt(config.keeper.maxLogRange),
    concurrency: config.keeper.logConcurrency,
  });
}

/**
 * A fresh keeper (its own state directory) backfilling through the counting HTTP proxy: how many eth_getLogs it
 * asks, in how many HTTP requests, and how many bytes come back (a range refused or split shows here).
 */
async function tracedBackfill(chain: SyncChain, timeoutMs: number): Promise<{ counts: ProxyCounts; ms: number }> {
  const proxy = await CountingHttpProxy.start(chain.ex.rpcUrl);
  const forget = onCleanup(() => proxy.close());
  const dir = mkdtempSync(join(os.tmpdir(), "perp-keeper-bench-sync-traced-"));
  let run: KeeperRun | undefined;
  try {
    proxy.startCounting();
    const [r, result] = await backfillRun("traced", keeperConfig(chain.ex.d, proxy.url, undefined, dir), timeoutMs);
    run = r;
    proxy.stopCounting();
    return { counts: proxy.snapshot(), ms: result.backfillMs };
  } finally {
    await run?.stop();
    await proxy.close().catch(() => {});
    forget();
    rmSync(dir, { recursive: true, force: true });
  }
}

interface ReorgResult {
  readonly reorg5Ms: number;
  readonly action: string;
  readonly depth: number;
  readonly changesUndone: number;
  readonly tickWallMs: number;
  /** reorg_detected line - the anvil_reorg call returning (negative: before the answer was back). */
  readonly detectedWallMs: number;
  /** How long the anvil_reorg call took. */
  readonly reorgCallMs: number;
  /** The first tick at the head after reorg_detected - the anvil_reorg call starting. */
  readonly headTickAfterCallStartMs: number;
  readonly line: Record<string, unknown>;
  readonly txsRemoved: number;
  readonly txsReplacing: number;
  readonly bookMatchesChain: boolean;
}

async function receiptsOk(url: string, hashes: readonly Hex[], what: string): Promise<void> {
  const answers = checkAnswers(
    await rpcBatch(
      url,
      hashes.map((h) => ({ method: "eth_getTransactionReceipt", params: [h] })),
    ),
    what,
  ) as ({ status: string } | null)[];
  const bad = answers.filter((r) => r?.status !== "0x1").length;
  if (bad > 0) throw new Error(`${what}: ${bad} of ${hashes.length} transactions missing or reverted`);
}

/**
 * Six blocks of position activity, then anvil_reorg of depth 5 with other position transactions in the replacement
 * blocks, while `run` follows the head.
 */
async function reorgPhase(url: string, chain: SyncChain, run: KeeperRun): Promise<ReorgResult> {
  const d = chain.ex.d;
  const engine = d.engine;
  const startHead = BigInt(await rpc<Hex>(url, "eth_blockNumber"));
  // blocks startHead+1 (the common ancestor to be) .. startHead+6 (five of them reorganised away)
  const removedHashes: Hex[] = [];
  const bulkTouched: number[] = [];
  for (let b = 0; b <= REORG_DEPTH; b++) {
    const calls = [];
    const keyed = chain.keyed[b] as (typeof chain.keyed)[number];
    const open = openCall(chain.specs, b, 0);
    calls.push(sendCall(keyed.address, engine, open.data, open.gas, 1));
    if (b > 0) {
      for (const j of [(b * 2 * 97) % chain.traders.length, ((b * 2 + 1) * 97) % chain.traders.length]) {
        const add = addMarginCall(j % chain.specs.length);
        calls.push(sendCall(chain.traders[j] as Address, engine, add.data, add.gas, chain.nextNonce[j] as number));
        chain.nextNonce[j] = (chain.nextNonce[j] as number) + 1;
        bulkTouched.push(j);
      }
    }
    const hashes = checkAnswers(await rpcBatch(url, calls), `pre-reorg block ${b}`) as Hex[];
    await rpc(url, "evm_mine");
    await receiptsOk(url, hashes, `pre-reorg block ${b}`);
    if (b > 0) removedHashes.push(...hashes);
  }
  const head = startHead + BigInt(REORG_DEPTH) + 1n;
  await waitAtHead(run, head, 30_000);
  await run.k.executor.idle();

  // the replacement blocks: keyed traders 6.. open in market 1, and those whose opens were removed open in market 2
  const chainId = d.chainId;
  const pairs: [Hex, number][] = [];
  const replacing: Hex[] = [];
  for (let offset = 0; offset < REORG_DEPTH; offset++) {
    for (const [trader, marketId] of [
      [REORG_DEPTH + 1 + offset, 1 % chain.specs.length],
      [1 + offset, 2 % chain.specs.length],
    ] as const) {
      const account = chain.keyed[trader] as (typeof chain.keyed)[number];
      const call = openCall(chain.specs, trader, marketId);
      const raw = await account.signTransaction({
        type: "eip1559",
        chainId,
        nonce: 1,
        to: engine,
        data: call.data,
        gas: call.gas,
        maxFeePerGas: FEES.maxFeePerGas,
        maxPriorityFeePerGas: FEES.maxPriorityFeePerGas,
        value: 0n,
      });
      pairs.push([raw, offset]);
      replacing.push(keccak256(raw));
    }
  }
  const linesBefore = run.tap.all("reorg_detected").length;
  const ticksBefore = run.ticks.length;
  const calledAt = now();
  await rpc(url, "anvil_reorg", [REORG_DEPTH, pairs]);
  const returnedAt = now();
  // the bulk traders' addMargin calls were reorganised away: their nonces are back
  for (const j of bulkTouched) chain.nextNonce[j] = (chain.nextNonce[j] as number) - 1;
  let line: LogLine | undefined;
  await until(
    "the keeper's reorg_detected",
    () => {
      if (run.failure()) throw new Error(`${run.label} failed: ${String(run.failure())}`);
      const lines = run.tap.all("reorg_detected");
      line = lines.length > linesBefore ? lines[linesBefore] : undefined;
      return line !== undefined;
    },
    30_000,
    1,
  );
  const detected = line as LogLine;
  // the next tick at the head after the call returned, and the first at the head after the call started (Anvil
  // announces the new blocks before its answer to anvil_reorg: the keeper may be done before the answer is back)
  let tick: TickSeen | undefined;
  await until(
    "the keeper's tick after the reorganisation",
    () => {
      tick = run.ticks.find((t) => t.at > returnedAt && t.blockNumber >= head);
      return tick !== undefined;
    },
    30_000,
    1,
  );
  const firstTick = run.ticks.slice(ticksBefore).find((t) => t.at > detected.at && t.blockNumber >= head);
  await receiptsOk(url, replacing, "replacement blocks");
  const newHead = BigInt(await rpc<Hex>(url, "eth_blockNumber"));
  await waitAtHead(run, newHead, 30_000);
  const matches = await bookMatchesChain(url, d, run.k.book, newHead, BigInt(MAX_LOG_RANGE));
  return {
    reorg5Ms: Number(detected.fields.ms ?? Number.NaN),
    action: String(detected.fields.action),
    depth: Number(detected.fields.depth ?? Number.NaN),
    changesUndone: Number(detected.fields.changesUndone ?? Number.NaN),
    tickWallMs: round((tick as TickSeen).at - returnedAt),
    detectedWallMs: round(detected.at - returnedAt),
    reorgCallMs: round(returnedAt - calledAt),
    headTickAfterCallStartMs: firstTick ? round(firstTick.at - calledAt) : Number.NaN,
    line: stripped(detected.fields),
    txsRemoved: removedHashes.length,
    txsReplacing: replacing.length,
    bookMatchesChain: matches,
  };
}

const replacer = (_key: string, value: unknown) => (typeof value === "bigint" ? value.toString() : value);

/** The keeper's book against one rebuilt from the canonical chain's logs (deployment block to `toBlock`). */
async function bookMatchesChain(
  url: string,
  d: Deployment,
  book: Book,
  toBlock: bigint,
  range: bigint,
): Promise<boolean> {
  const client = createPublicClient({
    chain: anvilChain,
    transport: http(url, { timeout: 300_000, retryCount: 0, maxResponseBodySize: false }),
  });
  const fresh = new Book();
  for (let from = d.deployBlock; from <= toBlock; from += range) {
    const to = from + range - 1n < toBlock ? from + range - 1n : toBlock;
    const logs = (await client.getLogs({ address: d.engine, fromBlock: from, toBlock: to })) as Log[];
    for (const event of decodePerpEngineLogs(logs)) fresh.apply(event);
  }
  const view = (b: Book) =>
    JSON.stringify(
      {
        positions: [...b.positions.entries()].sort(([x], [y]) => (x < y ? -1 : 1)),
        markets: [...b.markets.values()].sort((x, y) => x.id - y.id),
      },
      replacer,
    );
  const same = view(book) === view(fresh);
  if (!same) {
    const missing = [...fresh.positions.keys()].filter((key) => !book.positions.has(key)).length;
    const extra = [...book.positions.keys()].filter((key) => !fresh.positions.has(key)).length;
    log(`  the keeper's book differs from the chain's: ${missing} positions missing, ${extra} extra`);
  }
  return same;
}

interface IdleResult {
  readonly mode: "ws" | "http";
  readonly blocks: number;
  readonly httpCalls: number;
  readonly httpRequests: number;
  readonly wsMessages: number;
  readonly requestsPerBlock: number;
  readonly httpRequestsPerBlock: number;
  readonly byMethod: Record<string, number>;
  readonly wsByMethod: Record<string, number>;
  readonly headToTickMsP50: number;
  readonly headToTickMsP90: number;
  readonly headToTickSource: string;
  /** Always from the bench's own subscription (the time the keeper's own arrival cannot show, e.g. polling). */
  readonly headToTickFromBenchHeadsMsP50: number;
  readonly ticks: number;
}

async function idlePhase(
  mode: "ws" | "http",
  anvil: Anvil,
  chain: SyncChain,
  heads: HeadsSubscription,
  stateDir: string,
): Promise<IdleResult> {
  const wsTarget = anvil.rpcUrl.replace("http://", "ws://");
  const httpProxy = await CountingHttpProxy.start(anvil.rpcUrl);
  const forgetHttp = onCleanup(() => httpProxy.close());
  const wsProxy = mode === "ws" ? await CountingWsProxy.start(wsTarget) : undefined;
  const forgetWs = onCleanup(async () => wsProxy?.close());
  let run: KeeperRun | undefined;
  try {
    const config = keeperConfig(chain.ex.d, httpProxy.url, wsProxy?.url, stateDir);
    run = await launch(`idle-${mode}`, config);
    await waitForLine(run, "backfill_completed", 600_000);
    const r = run;
    await until("a first tick", () => r.k.watcher.latestTick !== undefined, 30_000);
    const first = BigInt(await rpc<Hex>(anvil.rpcUrl, "eth_blockNumber")) + BigInt(WARMUP_BLOCKS);
    await heads.waitFor(first, 30_000 + WARMUP_BLOCKS * 2_000);
    httpProxy.startCounting();
    wsProxy?.startCounting();
    await heads.waitFor(first + BigInt(IDLE_BLOCKS), 30_000 + IDLE_BLOCKS * 2_000);
    httpProxy.stopCounting();
    wsProxy?.stopCounting();
    const httpCounts = httpProxy.snapshot();
    const wsCounts: ProxyCounts = wsProxy?.snapshot() ?? { requests: 0, calls: 0, batches: 0, bytes: 0, byMethod: {} };
    if (run.failure()) throw new Error(`${run.label} failed: ${String(run.failure())}`);
    const counted = r.ticks.filter((t) => t.blockNumber >= first && t.blockNumber < first + BigInt(IDLE_BLOCKS));
    const own = counted.filter((t) => t.receivedAt !== undefined).map((t) => t.at - (t.receivedAt as number));
    const bench = counted
      .filter((t) => heads.arrivals.has(t.blockNumber))
      .map((t) => t.at - (heads.arrivals.get(t.blockNumber) as number));
    const useOwn = own.length === counted.length && own.length > 0;
    const latencies = useOwn ? own : bench;
    const calls = httpCounts.calls + wsCounts.calls;
    return {
      mode,
      blocks: IDLE_BLOCKS,
      httpCalls: httpCounts.calls,
      httpRequests: httpCounts.requests,
      wsMessages: wsCounts.calls,
      requestsPerBlock: round(calls / IDLE_BLOCKS),
      httpRequestsPerBlock: round(httpCounts.requests / IDLE_BLOCKS),
      byMethod: httpCounts.byMethod,
      wsByMethod: wsCounts.byMethod,
      headToTickMsP50: round(percentile(latencies, 50)),
      headToTickMsP90: round(percentile(latencies, 90)),
      headToTickSource: useOwn ? "tick.receivedAt" : "bench newHeads subscription",
      headToTickFromBenchHeadsMsP50: round(percentile(bench, 50)),
      ticks: counted.length,
    };
  } finally {
    await run?.stop();
    await httpProxy.close().catch(() => {});
    await wsProxy?.close().catch(() => {});
    forgetHttp();
    forgetWs();
  }
}

// ---------------------------------------------------------------------------------------------- report

const cpus = os.cpus();
const machine = {
  cpu: cpus[0]?.model ?? "unknown",
  cores: cpus.length,
  node: process.version,
  platform: `${os.platform()} ${os.arch()}`,
};

interface Target {
  readonly value: number;
  readonly target: string;
  readonly met: boolean;
}

async function main(): Promise<void> {
  const wallStarted = now();
  log(
    `bench:sync on ${machine.cpu} (${machine.cores} cores), node ${machine.node}: ${EVENTS} position events, ` +
      `${MARKETS} markets, ${TRADERS} traders, ~${BLOCKS} blocks, ${EVENTS_PER_BLOCK} events per block`,
  );
  const anvil = await startAnvil({ extraArgs: ANVIL_ARGS, startTimeoutMs: 60_000 });
  onCleanup(() => anvil.stop());
  const wsUrl = anvil.rpcUrl.replace("http://", "ws://");
  const stateDir = mkdtempSync(join(os.tmpdir(), "perp-keeper-bench-sync-"));
  onCleanup(async () => rmSync(stateDir, { recursive: true, force: true }));
  const url = anvil.rpcUrl;

  log("phase 1: building the chain");
  const chain = await buildSyncChain({
    url,
    events: EVENTS,
    markets: MARKETS,
    traders: TRADERS,
    blocks: BLOCKS,
    eventsPerBlock: EVENTS_PER_BLOCK,
    keyedTraders: 2 * REORG_DEPTH + 2,
    log,
  });
  log(
    `  ${chain.positionEvents} position events counted on chain, ${chain.positions} positions, head ${chain.head}; ` +
      `setup ${(chain.setupMs / 1000).toFixed(1)} s`,
  );
  const config = keeperConfig(chain.ex.d, url, wsUrl, stateDir);
  const backfillTimeoutMs = 120_000 + EVENTS * 5;

  log(
    `phase 2: raw eth_getLogs ceiling (ranges of ${config.keeper.maxLogRange}, ${config.keeper.logConcurrency} at once)`,
  );
  const raw1 = await rawCeiling(url, chain, config, chain.head);
  log(`  ${raw1.logs} logs in ${raw1.ranges} ranges, ${Math.round(raw1.ms)} ms, ${(raw1.bytes / 1e6).toFixed(1)} MB`);

  log("phase 3: backfill by a fresh keeper");
  const [first, backfill] = await backfillRun("backfill", config, backfillTimeoutMs);
  await waitAtHead(first, chain.head, 30_000);
  if (first.k.book.positions.size !== chain.positions) {
    throw new Error(`the keeper holds ${first.k.book.positions.size} positions, the chain ${chain.positions}`);
  }
  log(
    `  ready in ${Math.round(backfill.readyMs)} ms: ${backfill.events} events in ${backfill.backfillMs} ms ` +
      `(${backfill.eventsPerSecond}/s), ${backfill.positions} positions`,
  );
  await first.stop();

  const raw2 = await rawCeiling(url, chain, config, chain.head);
  log(`  raw again (no keeper running): ${raw2.logs} logs in ${Math.round(raw2.ms)} ms`);
  const raw = raw2.ms < raw1.ms ? raw2 : raw1;
  const rawRate = Math.round(raw.logs / (raw.ms / 1000));

  log("phase 3b: the same full backfill through the counting HTTP proxy (what the keeper asked; not timed)");
  const traced = await tracedBackfill(chain, backfillTimeoutMs);
  log(
    `  ${traced.counts.byMethod.eth_getLogs ?? 0} eth_getLogs calls (raw: ${raw.ranges}) in ${traced.counts.requests} HTTP ` +
      `requests (${traced.counts.batches} of them batches), ${(traced.counts.bytes / 1e6).toFixed(1)} MB answered`,
  );

  log("phase 4: restart on the same state directory");
  const [second, restart] = await backfillRun("restart", config, backfillTimeoutMs);
  await waitAtHead(second, chain.head, 30_000);
  if (second.k.book.positions.size !== chain.positions) {
    throw new Error(
      `the restarted keeper holds ${second.k.book.positions.size} positions, the chain ${chain.positions}`,
    );
  }
  log(
    `  ready in ${Math.round(restart.readyMs)} ms (${restart.events} events in ${restart.backfillMs} ms)` +
      (restart.snapshotLoaded ? `; snapshot_loaded ${JSON.stringify(restart.snapshotLoaded)}` : "; no snapshot_loaded"),
  );

  log(`phase 5: depth-${REORG_DEPTH} reorganisation while following`);
  const reorg = await reorgPhase(url, chain, second);
  log(
    `  reorg_detected ${reorg.action}, depth ${reorg.depth}, ${reorg.changesUndone} changes undone, ms ${reorg.reorg5Ms}; ` +
      `next tick ${reorg.tickWallMs} ms after anvil_reorg returned; book matches chain: ${reorg.bookMatchesChain}`,
  );
  await second.stop();
  if (!reorg.bookMatchesChain) throw new Error("after the reorganisation the keeper's book differs from the chain");

  log(`phase 6: idle chain, a block a second, ${WARMUP_BLOCKS} blocks warm-up, ${IDLE_BLOCKS} counted`);
  await rpc(url, "evm_setIntervalMining", [1]);
  const heads = await HeadsSubscription.start(wsUrl);
  const forgetHeads = onCleanup(async () => heads.close());
  const idleWs = await idlePhase("ws", anvil, chain, heads, stateDir);
  log(
    `  WebSocket: ${idleWs.requestsPerBlock} JSON-RPC calls per block (${idleWs.httpCalls} HTTP in ${idleWs.httpRequests} ` +
      `requests, ${idleWs.wsMessages} WS); head to tick p50 ${idleWs.headToTickMsP50} ms (${idleWs.headToTickSource})`,
  );
  const idleHttp = await idlePhase("http", anvil, chain, heads, stateDir);
  log(
    `  polling: ${idleHttp.requestsPerBlock} JSON-RPC calls per block (${idleHttp.httpCalls} in ${idleHttp.httpRequests} requests)`,
  );
  heads.close();
  forgetHeads();

  const ratio = round(backfill.eventsPerSecond / rawRate, 3);
  const speedup = round(backfill.readyMs / restart.readyMs, 3);
  const targets: Record<string, Target> = {
    backfillVsRaw: { value: ratio, target: ">= 0.8", met: ratio >= 0.8 },
    restartSpeedup: { value: speedup, target: ">= 10", met: speedup >= 10 },
    reorg5Ms: { value: reorg.reorg5Ms, target: "< 50", met: reorg.reorg5Ms < 50 && reorg.action === "rollback" },
    idleRequestsPerBlockWs: { value: idleWs.requestsPerBlock, target: "<= 2", met: idleWs.requestsPerBlock <= 2 },
    idleRequestsPerBlockHttp: { value: idleHttp.requestsPerBlock, target: "<= 3", met: idleHttp.requestsPerBlock <= 3 },
    headToTickMsP50: { value: idleWs.headToTickMsP50, target: "< 20", met: idleWs.headToTickMsP50 < 20 },
  };
  const wallSeconds = round((now() - wallStarted) / 1000, 3);

  const lines = [
    `machine: ${machine.cpu}, ${machine.cores} cores, node ${machine.node}, ${machine.platform}`,
    `chain: ${chain.positionEvents} position events (${raw.logs} engine logs) over ${chain.head - chain.ex.d.deployBlock + 1n} ` +
      `blocks, ${chain.positions} positions, ${MARKETS} markets, ${TRADERS} traders; built in ${(chain.setupMs / 1000).toFixed(1)} s`,
    "",
    `backfill           ${backfill.eventsPerSecond.toLocaleString("en-US")} events/s (${backfill.events} events in ${backfill.backfillMs} ms)`,
    `raw eth_getLogs    ${rawRate.toLocaleString("en-US")} logs/s (${raw.ranges} ranges, ${Math.round(raw.ms)} ms; runs ${Math.round(raw1.ms)} and ${Math.round(raw2.ms)} ms)`,
    `backfill / raw     ${ratio}`,
    `backfill, traced   ${traced.counts.byMethod.eth_getLogs ?? 0} eth_getLogs (raw: ${raw.ranges}) in ${traced.counts.requests} HTTP requests ` +
      `(${traced.counts.batches} batches), ${(traced.counts.bytes / 1e6).toFixed(1)} MB (raw: ${(raw.bytes / 1e6).toFixed(1)} MB), ` +
      `${traced.ms} ms behind the proxy`,
    `ready              ${Math.round(backfill.readyMs)} ms (start to backfill_completed)`,
    `restart ready      ${Math.round(restart.readyMs)} ms (same stateDir; ${speedup}x faster)` +
      (restart.snapshotLoaded ? `, snapshot_loaded ${JSON.stringify(restart.snapshotLoaded)}` : ", no snapshot_loaded"),
    `reorg depth ${REORG_DEPTH}      ${reorg.reorg5Ms} ms (reorg_detected ms, ${reorg.action}, depth ${reorg.depth}, ${reorg.changesUndone} changes undone); ` +
      `next tick ${reorg.tickWallMs} ms after anvil_reorg returned (the call took ${reorg.reorgCallMs} ms; ` +
      `reorg_detected ${reorg.detectedWallMs} ms and the rolled-back head's tick ${reorg.headTickAfterCallStartMs} ms ` +
      "after it started)",
    `idle, WebSocket    ${idleWs.requestsPerBlock} calls per block (${idleWs.httpRequestsPerBlock} HTTP requests per block): ${JSON.stringify(
      { ...idleWs.byMethod, ...Object.fromEntries(Object.entries(idleWs.wsByMethod).map(([k, v]) => [`ws:${k}`, v])) },
    )}`,
    `idle, polling      ${idleHttp.requestsPerBlock} calls per block (${idleHttp.httpRequestsPerBlock} HTTP requests per block): ${JSON.stringify(idleHttp.byMethod)}`,
    `head to tick       p50 ${idleWs.headToTickMsP50} ms, p90 ${idleWs.headToTickMsP90} ms over WebSocket (${idleWs.headToTickSource}); ` +
      `from the bench's own newHeads: WebSocket ${idleWs.headToTickFromBenchHeadsMsP50} ms, polling ${idleHttp.headToTickFromBenchHeadsMsP50} ms`,
    "",
    "targets:",
    ...Object.entries(targets).map(
      ([name, t]) => `  ${t.met ? "met   " : "MISSED"} ${name} ${t.value} (target ${t.target})`,
    ),
    `wall time ${wallSeconds} s`,
  ];
  const problems = [...first.tap.problems(), ...second.tap.problems()].filter((p) => !p.includes("reorg_detected"));
  if (problems.length > 0) lines.push(`keeper warnings: ${problems.slice(0, 10).join("; ")}`);
  process.stdout.write(`${lines.join("\n")}\n`);

  if (json) {
    const out = {
      bench: "sync",
      events: chain.positionEvents,
      eventsPerSecond: backfill.eventsPerSecond,
      rawGetLogsEventsPerSecond: rawRate,
      readyMs: backfill.readyMs,
      restartReadyMs: restart.readyMs,
      reorg5Ms: reorg.reorg5Ms,
      idleRequestsPerBlockWs: idleWs.requestsPerBlock,
      idleRequestsPerBlockHttp: idleHttp.requestsPerBlock,
      headToTickMsP50: idleWs.headToTickMsP50,
      headToTickSource: idleWs.headToTickSource,
      backfillToRawRatio: ratio,
      restartSpeedup: speedup,
      engineLogs: raw.logs,
      backfillEvents: backfill.events,
      backfillMs: backfill.backfillMs,
      restartBackfillEvents: restart.events,
      restartBackfillMs: restart.backfillMs,
      snapshotLoaded: restart.snapshotLoaded ?? null,
      rawGetLogsMs: [round(raw1.ms), round(raw2.ms)],
      rawGetLogsRanges: raw.ranges,
      tracedBackfill: {
        getLogsCalls: traced.counts.byMethod.eth_getLogs ?? 0,
        httpRequests: traced.counts.requests,
        batches: traced.counts.batches,
        MB: round(traced.counts.bytes / 1e6),
        ms: traced.ms,
        byMethod: traced.counts.byMethod,
      },
      rawGetLogsMB: round(raw.bytes / 1e6),
      reorg: {
        action: reorg.action,
        depth: reorg.depth,
        changesUndone: reorg.changesUndone,
        tickWallMs: reorg.tickWallMs,
        detectedWallMs: reorg.detectedWallMs,
        reorgCallMs: reorg.reorgCallMs,
        headTickAfterCallStartMs: reorg.headTickAfterCallStartMs,
        txsRemoved: reorg.txsRemoved,
        txsReplacing: reorg.txsReplacing,
        bookMatchesChain: reorg.bookMatchesChain,
      },
      idle: {
        blocks: IDLE_BLOCKS,
        ws: {
          httpCalls: idleWs.httpCalls,
          httpRequests: idleWs.httpRequests,
          wsMessages: idleWs.wsMessages,
          byMethod: idleWs.byMethod,
          wsByMethod: idleWs.wsByMethod,
        },
        http: { httpCalls: idleHttp.httpCalls, httpRequests: idleHttp.httpRequests, byMethod: idleHttp.byMethod },
      },
      headToTickMsP90: idleWs.headToTickMsP90,
      headToTickFromBenchHeadsMsP50: idleWs.headToTickFromBenchHeadsMsP50,
      headToTickPollingFromBenchHeadsMsP50: idleHttp.headToTickFromBenchHeadsMsP50,
      targetsMissed: Object.entries(targets)
        .filter(([, t]) => !t.met)
        .map(([name]) => name),
      chain: {
        blocks: Number(chain.head - chain.ex.d.deployBlock + 1n),
        txBlocks: chain.txBlocks,
        blocksPerTxBlock: chain.blocksPerTxBlock,
        markets: MARKETS,
        traders: TRADERS,
        positions: chain.positions,
        setupSeconds: round(chain.setupMs / 1000),
      },
      keeperDefaults: {
        maxLogRange: config.keeper.maxLogRange,
        logConcurrency: config.keeper.logConcurrency,
        pollIntervalMs: config.keeper.pollIntervalMs,
        reorgDepth: config.keeper.reorgDepth,
      },
      wallSeconds,
      machine,
    };
    process.stdout.write(`${JSON.stringify(out)}\n`);
  }
}

main()
  .catch((error: unknown) => {
    if (interrupted) return; // what an interrupted phase throws (Anvil gone) is not a finding
    process.stderr.write(
      `bench:sync failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exitCode = 1;
  })
  .finally(async () => {
    await cleanupAll();
    keeperLogFile?.end();
    // leftover sockets or timers of a stopped keeper must not keep the process alive
    setTimeout(() => process.exit(process.exitCode ?? 0), 1000).unref();
  });
