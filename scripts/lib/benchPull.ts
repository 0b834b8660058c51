/**
 * The two runs of `npm run bench:pull` (scripts/bench-pull.ts), each on a fresh Anvil (1-second blocks, 30M gas)
 * with the cross-margin exchange, a local Hermes (1 s heartbeat) and the same population (benchPullScenario.ts):
 *
 * - keeper: the keeper in process (startCrossMarginKeeper, one signer, default config but a 100 ms head poll). The
 *   crash is published on Hermes only; the keeper brings it on chain with its liquidations.
 * - baseline: a bot that reads on-chain prices only. Someone else (the deployer, as a market maker or another keeper
 *   would) publishes the crash on chain with MockPyth.updatePriceFeeds, sent at the moment of the Hermes move (or
 *   `baselineDelayBlocks` blocks later); the bot polls heads every 50 ms and at each new head reads canLiquidate of
 *   every account (one JSON-RPC batch), then sends `liquidate(accountId)` (no price attached) for each that says so
 *   and has none of its transactions pending, one account a transaction, all at once with local nonces and the
 *   head's fees (fast as such a bot can be: it waits for nothing but the chain's price).
 *
 * The move is placed in the slot: at `phaseMs` after a new head was seen (polled every 10 ms), so that the update
 * block (the head when the price reaches the keeper) is known; the first block after the update is the next one.
 */
import { createWriteStream, mkdtempSync, rmSync, type WriteStream } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { encodeFunctionData, type Hex, type PublicClient, parseGwei, parseUnits } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { iCrossMarginEngineAbi } from "../../abi/ICrossMarginEngine.ts";
import { httpPublicClient } from "../../src/chain/httpClient.ts";
import { parseConfig } from "../../src/config/load.ts";
import { ANVIL_KEYS, type Anvil, startAnvil } from "../../src/devnet/anvil.ts";
import {
  type CrossMarginDeployment,
  openCrossMarginAccounts,
  publishCrossMarginPrices,
} from "../../src/devnet/crossMargin/deploy.ts";
import {
  type CrossMarginStage,
  crossMarginKeeperConfig,
  liquidatableAt,
  stageCrossMargin,
} from "../../src/devnet/crossMargin/stage.ts";
import { createLogger, tapOf } from "../../src/ops/logger.ts";
import { type CrossMarginRunningKeeper, startCrossMarginKeeper } from "../../src/protocol/crossMargin/run.ts";
import { type BenchAccount, benchMarkets, CRASH, population } from "./benchPullScenario.ts";
import {
  BlockTimes,
  benchFetch,
  type CloseRecord,
  ceilDiv,
  closesBetween,
  type FlagRecord,
  flagsBetween,
  HeadClock,
  positionsAt,
  RpcTrace,
  rpcCallsOf,
  type SentTx,
  type TracedRequest,
  transactionsOf,
  type WindowUse,
  windowCaps,
  windowsOf,
} from "./pullMeasure.ts";
import { now, sleep, untilEvery } from "./tools.ts";

const FIRST_TRADER = 10;
const KEEPER_KEY = ANVIL_KEYS[8] as Hex;
const BASELINE_KEY = ANVIL_KEYS[9] as Hex;
const BLOCK_GAS_LIMIT = 30_000_000n;
const wad = (v: string) => parseUnits(v, 18);
const until = untilEvery(250);

export interface PullBenchOptions {
  readonly accounts: number;
  readonly healthy: number;
  readonly windowSeconds: number;
  readonly multiplier: string;
  readonly phaseMs: number;
  readonly baselineDelayBlocks: number;
  readonly keeperLog?: string;
  readonly progress: (line: string) => void;
}

interface Staged {
  readonly anvil: Anvil;
  readonly stage: CrossMarginStage;
  readonly client: PublicClient;
  readonly specs: readonly BenchAccount[];
  readonly ids: readonly bigint[];
  readonly clock: HeadClock;
}

async function stagePopulation(o: PullBenchOptions, label: string): Promise<Staged> {
  const specs = population(o.accounts, o.healthy);
  o.progress(`[${label}] Anvil (1-s blocks, 30M gas), the exchange, a local Hermes and ${specs.length} accounts...`);
  const anvil = await startAnvil({
    blockTime: 1,
    accounts: FIRST_TRADER + specs.length + 2,
    extraArgs: ["--gas-limit", BLOCK_GAS_LIMIT.toString()],
    startTimeoutMs: 60_000,
  });
  let stage: CrossMarginStage | undefined;
  try {
    stage = await stageCrossMargin(anvil.rpcUrl, { markets: benchMarkets(o.windowSeconds, o.multiplier) });
    const opened = await openCrossMarginAccounts(
      stage.deployment,
      anvil.rpcUrl,
      specs.map(({ kind: _kind, ...a }, i) => ({ ...a, trader: FIRST_TRADER + i })),
    );
    const client = httpPublicClient(anvil.rpcUrl, { batch: { batchSize: 500 }, timeout: 60_000, fetchFn: benchFetch });
    return { anvil, stage, client, specs, ids: opened.map((a) => a.accountId), clock: new HeadClock(anvil.rpcUrl) };
  } catch (error) {
    await stage?.close();
    await anvil.stop();
    throw error;
  }
}

async function unstage(s: Staged): Promise<void> {
  await s.clock.stop();
  await s.stage.close();
  await s.anvil.stop();
}

/** What the exchange's rules make liquidatable at the crash prices, and their positions, at `block`. */
async function expectation(s: Staged, block: bigint) {
  const d = s.stage.deployment;
  const expected = await liquidatableAt(s.client, d, s.ids, { ETH: wad(CRASH.ETH), BTC: wad(CRASH.BTC) }, block);
  const positions = await positionsAt(s.client, d, expected, block);
  const caps = await windowCaps(s.client, d);
  const needed = new Map<bigint, { total: bigint; cap: bigint; seconds: bigint; windows: number }>();
  for (const m of d.markets) {
    let total = 0n;
    for (const sizes of positions.values()) {
      const size = sizes.get(m.marketId) ?? 0n;
      total += size < 0n ? -size : size;
    }
    const cap = caps.get(m.marketId) as { seconds: bigint; cap: bigint };
    needed.set(m.marketId, { total, ...cap, windows: Number(ceilDiv(total, cap.cap)) });
  }
  return { expected, positions, needed };
}

/** Waits for a new head, then `phaseMs`; runs `move` there. The update block is that head. */
async function moveInSlot(
  s: Staged,
  phaseMs: number,
  move: () => void,
): Promise<{ block: bigint; movedAt: number; load: number }> {
  const block = await s.clock.nextBlock();
  await sleep(phaseMs);
  if (s.clock.head !== block) throw new Error("a block came during the phase: use a shorter --phase-ms");
  const movedAt = now();
  move();
  // the machine's 1-minute load average at the move (other work on it shows here)
  return { block, movedAt, load: os.loadavg()[0] ?? 0 };
}

export interface MarketWindows {
  readonly name: string;
  readonly total: bigint;
  readonly cap: bigint;
  readonly seconds: bigint;
  readonly needed: number;
  readonly used: WindowUse[];
}

export interface KeeperRun {
  /** The machine's 1-minute load average at the move. */
  readonly load: number;
  /** The keeper's JSON-RPC requests from 100 ms before the update reached it to 1.5 s after, times from it. */
  readonly rpc: readonly TracedRequest[];
  /** Per keeper log event after the update: its first and last time, ms from the update reaching the keeper. */
  readonly eventTimes: ReadonlyMap<string, { first: number; last: number }>;
  readonly accounts: number;
  readonly liquidatable: number;
  readonly updateBlock: bigint;
  readonly firstBroadcastMs: number;
  readonly lastBroadcastMs: number;
  /** Sends carrying the price (flags) and all sends after the update. */
  readonly priceSends: number;
  readonly sends: number;
  /** From the update reaching the keeper to the next block seen by the bench. */
  readonly nextBlockMs: number;
  readonly flaggedInFirstBlock: number;
  readonly blocksToFlagMax: number;
  readonly blocksToCloseP50: number;
  readonly blocksToCloseMax: number;
  readonly unflagged: number;
  readonly stillOpen: number;
  readonly wronglyFlagged: number;
  readonly windows: MarketWindows[];
  readonly txs: SentTx[];
  readonly txReverted: number;
  readonly liquidations: number;
  readonly feePaidWei: bigint;
  readonly rpcCalls: number;
  /** Keeper log events after the update, by name. */
  readonly events: Record<string, number>;
  /** Per transaction hash, ms from the update reaching the keeper to its liquidation_sent. */
  readonly sentMs: Map<string, number>;
  readonly flags: Map<bigint, FlagRecord>;
  readonly closes: CloseRecord[];
  readonly specs: readonly BenchAccount[];
  readonly ids: readonly bigint[];
  readonly expected: readonly bigint[];
  readonly blockGas: { block: bigint; gasUsed: bigint; gasLimit: bigint; ours: number }[];
}

export async function runKeeper(o: PullBenchOptions): Promise<KeeperRun> {
  const s = await stagePopulation(o, "keeper");
  const d = s.stage.deployment;
  const controller = new AbortController();
  const stateDir = mkdtempSync(join(os.tmpdir(), "bench-pull-"));
  const logPath = o.keeperLog ?? join(stateDir, "keeper.log");
  const logFile: WriteStream = createWriteStream(logPath, { flags: "w" });
  let keeper: CrossMarginRunningKeeper | undefined;
  const trace = new RpcTrace(s.anvil.rpcUrl);
  try {
    const log = createLogger({ level: "info", format: "json", destination: logFile });
    const raw = crossMarginKeeperConfig(d, s.anvil.rpcUrl, [s.stage.hermes.url], {
      pollIntervalMs: 100,
      metricsPort: 0,
      stateDir,
    });
    o.progress(`[keeper] starting the keeper (log: ${logPath})`);
    keeper = await startCrossMarginKeeper({
      config: parseConfig(raw, "bench:pull"),
      rpcUrl: s.anvil.rpcUrl,
      privateKeys: [KEEPER_KEY],
      log,
      signal: controller.signal,
    });
    keeper.done.catch(() => {});
    const k = keeper;
    const head = await s.client.getBlockNumber({ cacheTime: 0 });
    await until("the keeper's backfill", () => (k.watcher.latestTick?.blockNumber ?? -1n) >= head, 120_000);
    // a few heads more, so that the keeper is in its steady state (heartbeat prices taken, nothing in flight)
    await until("two more heads", () => (k.watcher.latestTick?.blockNumber ?? -1n) >= head + 2n, 30_000);
    const at = await s.client.getBlockNumber({ cacheTime: 0 });
    const { expected, positions, needed } = await expectation(s, at);
    o.progress(`[keeper] ${expected.length} of ${s.ids.length} accounts liquidatable at the crash prices`);

    // the crash as it reaches the keeper: the stream's message carrying it (receivedAt: performance.now())
    const ethFeed = (d.markets.find((m) => m.name === "ETH")?.feedId ?? "0x").toLowerCase();
    const crashUnits = parseUnits(CRASH.ETH, 8);
    let reachedAt: number | undefined;
    const unlisten = k.stream.onUpdate((moved) => {
      for (const m of moved)
        if (reachedAt === undefined && m.feed === ethFeed && m.price === crashUnits) reachedAt = m.receivedAt;
    });
    const sends: { at: number; value: bigint; txHash: string }[] = [];
    const events: Record<string, number> = {};
    const eventTimes = new Map<string, { first: number; last: number }>();
    let armed = false;
    const untap = tapOf(log)?.on((_level, fields, at) => {
      if (!armed) return;
      const name = String(fields.event);
      events[name] = (events[name] ?? 0) + 1;
      const span = eventTimes.get(name);
      if (span) span.last = at;
      else eventTimes.set(name, { first: at, last: at });
      if (name === "liquidation_sent") {
        const value = typeof fields.valueWei === "string" ? BigInt(fields.valueWei) : 0n;
        sends.push({ at, value, txHash: String(fields.txHash) });
      }
    });
    if (!k.metricsUrl) throw new Error("the keeper serves no metrics (its RPC counts are read there)");
    const rpcBefore = await rpcCallsOf(k.metricsUrl);
    armed = true;
    trace.record(true);
    o.progress(`[keeper] crash on Hermes only: ETH ${CRASH.ETH}, BTC ${CRASH.BTC}`);
    const { block: updateBlock, load } = await moveInSlot(s, o.phaseMs, () => s.stage.move(CRASH));

    // until every expected account is flagged and every position of theirs closed
    const expectedPositions = [...positions.values()].reduce((n, m) => n + m.size, 0);
    const windowsMax = Math.max(...[...needed.values()].map((n) => n.windows));
    const settleMs = (windowsMax + 2) * o.windowSeconds * 1000 + 30_000;
    const expectedSet = new Set(expected);
    await until(
      "every liquidatable account flagged and closed",
      async () => {
        if (s.clock.head <= updateBlock) return false;
        const flags = await flagsBetween(s.client, d.engine, updateBlock + 1n);
        if (expected.some((id) => !flags.has(id))) return false;
        const closes = await closesBetween(s.client, d.engine, updateBlock + 1n);
        return closes.filter((c) => c.sizeAfter === 0n && expectedSet.has(c.accountId)).length >= expectedPositions;
      },
      settleMs,
      500,
    ).catch((error: unknown) => o.progress(`[keeper] ${(error as Error).message}: measuring what happened`));
    const last = await s.client.getBlockNumber({ cacheTime: 0 });
    await until("two blocks more", () => s.clock.head >= last + 2n, 10_000);
    const rpcCalls = (await rpcCallsOf(k.metricsUrl)) - rpcBefore;
    armed = false;
    trace.record(false);
    untap?.();
    unlisten();
    const end = await s.client.getBlockNumber({ cacheTime: 0 });
    controller.abort();
    await k.stop("bench finished").catch(() => {});
    keeper = undefined;
    if (reachedAt === undefined) throw new Error("the crash never reached the keeper's stream");
    const t0: number = reachedAt;

    o.progress(`[keeper] reading the chain, blocks ${updateBlock + 1n}..${end}`);
    const times = new BlockTimes(s.client);
    const flags = await flagsBetween(s.client, d.engine, updateBlock + 1n, end);
    const closes = await closesBetween(s.client, d.engine, updateBlock + 1n, end, times);
    const txs = await transactionsOf(s.client, d.engine, k.addresses, updateBlock + 1n, end);
    const blockGas: KeeperRun["blockGas"] = [];
    for (let b = updateBlock + 1n; b <= end; b++) {
      const block = await s.client.getBlock({ blockNumber: b });
      const ours = txs.filter((t) => t.block === b).length;
      if (ours > 0 || b <= updateBlock + 2n)
        blockGas.push({ block: b, gasUsed: block.gasUsed, gasLimit: block.gasLimit, ours });
    }
    const firstBlock = updateBlock + 1n;
    const toFlag = expected.map((id) => {
      const f = flags.get(id);
      return f === undefined ? Number.POSITIVE_INFINITY : Number(f.block - updateBlock);
    });
    // blocks from the update to each position closed in full
    const closedAt = new Map<string, bigint>();
    for (const c of closes) if (c.sizeAfter === 0n) closedAt.set(`${c.accountId}:${c.marketId}`, c.block);
    const toClose: number[] = [];
    let stillOpen = 0;
    for (const [id, sizes] of positions) {
      for (const marketId of sizes.keys()) {
        const b = closedAt.get(`${id}:${marketId}`);
        if (b === undefined) stillOpen++;
        else toClose.push(Number(b - updateBlock));
      }
    }
    toClose.sort((a, b) => a - b);
    const windows: MarketWindows[] = d.markets.map((m) => {
      const n = needed.get(m.marketId) as { total: bigint; cap: bigint; seconds: bigint; windows: number };
      return {
        name: m.name,
        total: n.total,
        cap: n.cap,
        seconds: n.seconds,
        needed: n.windows,
        used: windowsOf(
          closes.filter((c) => c.marketId === m.marketId),
          n.seconds,
        ),
      };
    });
    const liquidations = txs.reduce((n, t) => n + t.attempts, 0);
    const after = sends.filter((x) => x.at >= t0);
    const priced = after.filter((x) => x.value > 0n);
    const sentMs = new Map(after.map((x) => [x.txHash.toLowerCase(), x.at - t0]));
    const nextSeen = s.clock.seenAt.get(firstBlock);
    const rpc = trace.requests
      .filter((r) => r.start >= t0 - 100 && r.start <= t0 + 1500)
      .map((r) => ({ ...r, start: r.start - t0, end: r.end - t0 }));
    return {
      load,
      rpc,
      eventTimes: new Map([...eventTimes].map(([e, x]) => [e, { first: x.first - t0, last: x.last - t0 }])),
      accounts: s.ids.length,
      liquidatable: expected.length,
      updateBlock,
      firstBroadcastMs: after.length > 0 ? (after[0]?.at ?? 0) - t0 : Number.NaN,
      lastBroadcastMs: priced.length > 0 ? Math.max(...priced.map((x) => x.at)) - t0 : Number.NaN,
      priceSends: priced.length,
      sends: after.length,
      nextBlockMs: nextSeen === undefined ? Number.NaN : nextSeen - t0,
      flaggedInFirstBlock: expected.filter((id) => flags.get(id)?.block === firstBlock).length,
      blocksToFlagMax: Math.max(...toFlag),
      blocksToCloseP50: toClose.length ? (toClose[Math.floor((toClose.length - 1) / 2)] as number) : 0,
      blocksToCloseMax: stillOpen > 0 ? Number.POSITIVE_INFINITY : toClose.length ? (toClose.at(-1) as number) : 0,
      unflagged: expected.filter((id) => !flags.has(id)).length,
      stillOpen,
      wronglyFlagged: [...flags.keys()].filter((id) => !expectedSet.has(id)).length,
      windows,
      txs,
      txReverted: txs.filter((t) => t.reverted).length,
      liquidations,
      feePaidWei: txs.reduce((sum, t) => sum + t.value, 0n),
      rpcCalls,
      events,
      sentMs,
      flags,
      closes,
      specs: s.specs,
      ids: s.ids,
      expected,
      blockGas,
    };
  } finally {
    trace.close();
    controller.abort();
    await keeper?.stop("bench failed").catch(() => {});
    await unstage(s);
    await new Promise<void>((r) => logFile.end(() => r()));
    rmSync(stateDir, { recursive: true, force: true });
  }
}

export interface BaselineRun {
  /** The machine's 1-minute load average at the move. */
  readonly load: number;
  /** Heads at which the bot sent: ms from the move to the head seen, its reads done, signed, sent. */
  readonly heads: readonly { block: bigint; seen: number; read: number; signed: number; sent: number; txs: number }[];
  /** Blocks after the update: gas used, the bot's transactions and flags in each. */
  readonly blocks: readonly { block: bigint; gasUsed: bigint; txs: number; flags: number }[];
  readonly liquidatable: number;
  readonly updateBlock: bigint;
  /** The block the crash landed on chain in (someone else's update). */
  readonly priceBlock: bigint;
  readonly flaggedInFirstBlock: number;
  readonly blocksToFlagMax: number;
  readonly blocksToFlagP50: number;
  readonly unflagged: number;
  readonly txs: number;
  readonly txReverted: number;
}

/** The naive bot: every head, canLiquidate of every account; liquidate(id) for each that says so, none pending. */
function naiveBot(rpcUrl: string, d: CrossMarginDeployment, ids: readonly bigint[], signal: AbortSignal) {
  const client = httpPublicClient(rpcUrl, { batch: { batchSize: 1000 }, timeout: 30_000, fetchFn: benchFetch });
  const account = privateKeyToAccount(BASELINE_KEY);
  const pendingSince = new Map<bigint, bigint>();
  let sent = 0;
  /** Each head that had accounts to liquidate: when seen, read, signed and sent (performance.now()). */
  const heads: { block: bigint; seen: number; read: number; signed: number; sent: number; txs: number }[] = [];
  const done = (async () => {
    const chainId = await client.getChainId();
    let nonce = await client.getTransactionCount({ address: account.address, blockTag: "pending" });
    let seen = -1n;
    while (!signal.aborted) {
      const head = await client.getBlockNumber({ cacheTime: 0 }).catch(() => seen);
      if (head <= seen) {
        await sleep(50);
        continue;
      }
      seen = head;
      const seenAt = now();
      const block = await client.getBlock({ blockNumber: head });
      const says = await Promise.all(
        ids.map((id) =>
          client
            .readContract({
              address: d.engine,
              abi: iCrossMarginEngineAbi,
              functionName: "canLiquidate",
              args: [id],
              blockNumber: head,
            })
            .catch(() => false),
        ),
      );
      const readAt = now();
      const tip = parseGwei("1");
      const maxFeePerGas = (block.baseFeePerGas ?? 0n) * 2n + tip;
      const raws: Hex[] = [];
      for (const [i, id] of ids.entries()) {
        const since = pendingSince.get(id);
        if (!says[i] || (since !== undefined && head < since + 3n)) continue;
        pendingSince.set(id, head);
        raws.push(
          await account.signTransaction({
            chainId,
            type: "eip1559",
            to: d.engine,
            data: encodeFunctionData({ abi: iCrossMarginEngineAbi, functionName: "liquidate", args: [id] }),
            gas: 500_000n,
            nonce: nonce++,
            maxFeePerGas,
            maxPriorityFeePerGas: tip,
          }),
        );
      }
      const signedAt = now();
      const answers = await Promise.all(
        raws.map((raw) =>
          client.sendRawTransaction({ serializedTransaction: raw }).then(
            () => true,
            () => false,
          ),
        ),
      );
      sent += answers.filter(Boolean).length;
      if (raws.length > 0) {
        heads.push({ block: head, seen: seenAt, read: readAt, signed: signedAt, sent: now(), txs: raws.length });
      }
      if (answers.some((ok) => !ok)) {
        nonce = await client.getTransactionCount({ address: account.address, blockTag: "pending" });
      }
    }
  })();
  return { done, address: account.address, sent: () => sent, heads };
}

export async function runBaseline(o: PullBenchOptions): Promise<BaselineRun> {
  const s = await stagePopulation(o, "baseline");
  const d = s.stage.deployment;
  const controller = new AbortController();
  let bot: ReturnType<typeof naiveBot> | undefined;
  try {
    const at = await s.client.getBlockNumber({ cacheTime: 0 });
    const { expected } = await expectation(s, at);
    o.progress(`[baseline] ${expected.length} of ${s.ids.length} accounts liquidatable at the crash prices`);
    bot = naiveBot(s.anvil.rpcUrl, d, s.ids, controller.signal);
    await sleep(2000); // the bot in its loop
    const delay = BigInt(o.baselineDelayBlocks);
    let publishing: Promise<void> | undefined;
    const publish = () => {
      publishing = publishCrossMarginPrices(d, s.anvil.rpcUrl, { ...CRASH });
    };
    o.progress(
      `[baseline] crash on Hermes, and on chain by someone else ${delay === 0n ? "at the same time" : `${delay} block(s) later`}`,
    );
    const {
      block: updateBlock,
      movedAt,
      load,
    } = await moveInSlot(s, o.phaseMs, () => {
      s.stage.move(CRASH);
      if (delay === 0n) publish();
    });
    if (delay > 0n) {
      await until("the publisher's delay", () => s.clock.head >= updateBlock + delay, 60_000, 5);
      await sleep(o.phaseMs);
      publish();
    }
    await publishing;
    await until(
      "every liquidatable account flagged by the bot",
      async () => {
        if (s.clock.head <= updateBlock) return false;
        const flags = await flagsBetween(s.client, d.engine, updateBlock + 1n);
        return expected.every((id) => flags.has(id));
      },
      60_000,
      500,
    ).catch((error: unknown) => o.progress(`[baseline] ${(error as Error).message}: measuring what happened`));
    controller.abort();
    await bot.done.catch(() => {});
    const end = await s.client.getBlockNumber({ cacheTime: 0 });
    const flags = await flagsBetween(s.client, d.engine, updateBlock + 1n, end);
    const prices = await s.client.getLogs({ address: d.pyth, fromBlock: updateBlock + 1n, toBlock: end });
    const txs = await transactionsOf(s.client, d.engine, [bot.address], updateBlock + 1n, end);
    const toFlag = expected
      .map((id) => {
        const f = flags.get(id);
        return f === undefined ? Number.POSITIVE_INFINITY : Number(f.block - updateBlock);
      })
      .sort((a, b) => a - b);
    const blocks: BaselineRun["blocks"][number][] = [];
    for (let b = updateBlock + 1n; b <= end; b++) {
      const block = await s.client.getBlock({ blockNumber: b });
      const flagsIn = [...flags.values()].filter((f) => f.block === b).length;
      blocks.push({ block: b, gasUsed: block.gasUsed, txs: txs.filter((t) => t.block === b).length, flags: flagsIn });
    }
    return {
      load,
      heads: bot.heads
        .filter((h) => h.seen >= movedAt)
        .map((h) => ({
          ...h,
          seen: h.seen - movedAt,
          read: h.read - movedAt,
          signed: h.signed - movedAt,
          sent: h.sent - movedAt,
        })),
      blocks,
      liquidatable: expected.length,
      updateBlock,
      priceBlock: prices[0]?.blockNumber ?? -1n,
      flaggedInFirstBlock: expected.filter((id) => flags.get(id)?.block === updateBlock + 1n).length,
      blocksToFlagMax: toFlag.at(-1) ?? 0,
      blocksToFlagP50: toFlag[Math.floor((toFlag.length - 1) / 2)] ?? 0,
      unflagged: expected.filter((id) => !flags.has(id)).length,
      txs: txs.length,
      txReverted: txs.filter((t) => t.reverted).length,
    };
  } finally {
    controller.abort();
    await bot?.done.catch(() => {});
    await unstage(s);
  }
}
