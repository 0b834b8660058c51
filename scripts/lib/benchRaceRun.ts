/**
 * One race of `npm run bench:race` (scripts/bench-race.ts): a fresh Anvil (2-second blocks, pool ordered by fees),
 * the scenario of benchRaceScenario.ts, two racers each with its own key and its own RPC endpoint (a RaceProxy), and
 * two crashes, each settled before the next: until every position it made liquidatable is closed (or `settleBlocks`
 * blocks went by) and then until neither racer has a transaction in the pool at two heads in a row.
 *
 * Racers: the keeper in process (startKeeper) with `keeper.bidding` as the race asks and `gasTokenPrice` set, or the
 * naive per-block bot (benchRaceNaive.ts). The keeper's ticks are timed from outside (keeper.handleTick wrapped), as
 * bench:exec does. Everything started here is stopped on the way out, also on failure.
 */
import { mkdtempSync, rmSync, type WriteStream } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { type Address, type Hex, parseUnits } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { type RunningKeeper, startKeeper } from "../../src/app.ts";
import type { KeeperConfig } from "../../src/config/schema.ts";
import { ANVIL_KEYS, type Anvil, startAnvil } from "../../src/devnet/anvil.ts";
import { devnetConfig } from "../../src/devnet/config.ts";
import type { Deployment } from "../../src/devnet/exchange.ts";
import { createLogger, type Logger } from "../../src/ops/logger.ts";
import type { Tick } from "../../src/watcher/types.ts";
import { addCrash, emptyFigures, type MinedTx, type RacerFigures, readChain } from "./benchRaceMeasure.ts";
import { type NaiveBot, startNaiveBot } from "./benchRaceNaive.ts";
import { RaceProxy } from "./benchRaceProxy.ts";
import {
  BLOCK_SECONDS,
  calmMove,
  crash,
  FIRST_TRADER,
  hasPending,
  headOf,
  liquidatableAt,
  nextHead,
  openKeys,
  type Scenario,
  type Slot,
  setupScenario,
} from "./benchRaceScenario.ts";
import { now, untilEvery, within } from "./tools.ts";

export type RaceName = "vsDefault" | "vsNaive" | "selfRace";
export const RACE_NAMES: readonly RaceName[] = ["vsDefault", "vsNaive", "selfRace"];

interface RacerSpec {
  readonly name: string;
  readonly key: Hex;
  /** keeper.bidding of a keeper racer; undefined: the naive bot. */
  readonly bidding?: Record<string, unknown>;
}

/** Racer 0 is always the keeper under test (default bidding), with ANVIL_KEYS[1]; its opponent has ANVIL_KEYS[2]. */
const RACERS: Record<RaceName, readonly [RacerSpec, RacerSpec]> = {
  vsDefault: [
    { name: "keeper", key: ANVIL_KEYS[1], bidding: {} },
    { name: "default", key: ANVIL_KEYS[2], bidding: { enabled: false } },
  ],
  vsNaive: [
    { name: "keeper", key: ANVIL_KEYS[1], bidding: {} },
    { name: "naive", key: ANVIL_KEYS[2] },
  ],
  selfRace: [
    { name: "keeper", key: ANVIL_KEYS[1], bidding: {} },
    { name: "keeper2", key: ANVIL_KEYS[2], bidding: {} },
  ],
};

export interface RaceOptions {
  readonly traders: number;
  readonly positions: number;
  readonly gasTokenPrice: string;
  readonly settleBlocks: number;
  readonly keeperLog: WriteStream | undefined;
  readonly progress: (line: string) => void;
}

export interface CrashResult {
  readonly block: bigint;
  readonly liquidatable: readonly string[];
  /** Liquidatable positions both racers sent a liquidation for (their raw transactions at their proxies). */
  readonly contested: number;
  /** Liquidatable positions neither racer liquidated by the end of the crash's window. */
  readonly missed: number;
  /** Per racer: the crash's liquidatable positions it liquidated. */
  readonly won: readonly number[];
  /** Per racer: its tick that first saw the crash block to its first eth_sendRawTransaction after it, ms. */
  readonly firstBroadcastMs: readonly (number | undefined)[];
  /** Blocks from the crash block to the last liquidation of it. */
  readonly blocksToSettle: number;
}

export interface RacerResult {
  readonly name: string;
  readonly address: Address;
  readonly figures: RacerFigures;
  /** Its mined transactions from the first crash block on. */
  readonly txs: readonly MinedTx[];
  readonly rawSends: number;
  /** The keeper's log events by name, and its first warnings; the executor's own counters. */
  readonly events: Record<string, number>;
  readonly problems: readonly string[];
  readonly stats: Record<string, string | number> | undefined;
}

export interface RaceResult {
  readonly name: RaceName;
  readonly positions: number;
  readonly contested: number;
  readonly missed: number;
  readonly crashes: readonly CrashResult[];
  readonly racers: readonly [RacerResult, RacerResult];
  readonly notes: readonly string[];
  readonly setupSeconds: number;
}

const until = untilEvery(100);

/** The keeper's config: 100 ms head polls, no metrics server, a priced gas token and the race's bidding. */
function keeperConfig(
  d: Deployment,
  url: string,
  wsUrl: string,
  stateDir: string,
  o: RaceOptions,
  bidding: Record<string, unknown>,
  notes: string[],
): KeeperConfig {
  const keeper = { pollIntervalMs: 100, stateDir, metricsEnabled: false, gasTokenPrice: o.gasTokenPrice, bidding };
  void notes;
  const config = devnetConfig(d, url, keeper);
  // every keeper racer also follows the node's WebSocket (new heads, and the bidding keeper's pending transactions),
  // as an operator racing others would; transactions still go through its recording proxy
  return { ...config, network: { ...config.network, wsUrl: wsUrl.replace(/^http/, "ws") } };
}

interface Racer {
  readonly spec: RacerSpec;
  readonly address: Address;
  readonly proxy: RaceProxy;
  /** Blocks as the racer first took them in (keeper ticks, the bot's heads), performance.now(). */
  ticks: { block: bigint; at: number }[];
  readonly events: Map<string, number>;
  readonly problems: string[];
  keeper?: RunningKeeper;
  bot?: NaiveBot;
  stateDir?: string;
  failure?: unknown;
}

function tapLogs(race: RaceName, racer: Racer, file: WriteStream | undefined): Logger {
  return createLogger({
    level: "info",
    destination: {
      write(line: string) {
        file?.write(`${line.trimEnd().replace(/^\{/, `{"race":"${race}","racer":"${racer.spec.name}",`)}\n`);
        const parsed = JSON.parse(line) as { event?: string; level?: number; levelName?: string; msg?: string };
        const name = parsed.event ?? "(none)";
        racer.events.set(name, (racer.events.get(name) ?? 0) + 1);
        if (Number(parsed.level) >= 40 && racer.problems.length < 10) {
          racer.problems.push(`${parsed.levelName ?? parsed.level} ${name}: ${parsed.msg ?? ""}`);
        }
      },
    },
  });
}

async function startRacer(
  race: RaceName,
  spec: RacerSpec,
  sc: Scenario,
  o: RaceOptions,
  signal: AbortSignal,
  notes: string[],
): Promise<Racer> {
  const proxy = await RaceProxy.start(sc.url);
  const racer: Racer = {
    spec,
    address: privateKeyToAccount(spec.key).address,
    proxy,
    ticks: [],
    events: new Map(),
    problems: [],
  };
  if (spec.bidding === undefined) {
    racer.bot = startNaiveBot({ rpcUrl: proxy.url, key: spec.key, engine: sc.engine, slots: sc.slots, signal });
    racer.ticks = racer.bot.heads;
    return racer;
  }
  let keeper: RunningKeeper;
  try {
    racer.stateDir = mkdtempSync(join(os.tmpdir(), `perp-keeper-bench-race-${spec.name}-`));
    const config = keeperConfig(sc.ex.d, proxy.url, sc.url, racer.stateDir, o, spec.bidding, notes);
    keeper = await startKeeper({
      config,
      rpcUrl: proxy.url,
      privateKeys: [spec.key],
      log: tapLogs(race, racer, o.keeperLog),
    });
  } catch (error) {
    await stopRacer(racer);
    throw error;
  }
  racer.keeper = keeper;
  keeper.done.catch((error: unknown) => {
    racer.failure = error;
  });
  // the tick that first sees a block, timed from outside: the watcher calls keeper.handleTick(tick)
  const handleTick = keeper.keeper.handleTick.bind(keeper.keeper);
  keeper.keeper.handleTick = (tick: Tick) => {
    const last = racer.ticks[racer.ticks.length - 1];
    if (!last || tick.blockNumber > last.block) racer.ticks.push({ block: tick.blockNumber, at: now() });
    handleTick(tick);
  };
  return racer;
}

/** The last block a racer has taken in: its keeper's latest tick, or the bot's latest head. */
function racerHead(r: Racer): bigint {
  if (r.failure !== undefined) throw new Error(`${r.spec.name} failed: ${String(r.failure)}`);
  if (r.keeper) return r.keeper.watcher.latestTick?.blockNumber ?? -1n;
  return r.bot?.heads[r.bot.heads.length - 1]?.block ?? -1n;
}

async function stopRacer(r: Racer): Promise<void> {
  if (r.keeper)
    await within(
      r.keeper.stop("bench finished").catch(() => {}),
      15_000,
    );
  if (r.bot)
    await within(
      r.bot.done.catch(() => {}),
      10_000,
    );
  await r.proxy.close().catch(() => {});
  if (r.stateDir) rmSync(r.stateDir, { recursive: true, force: true });
}

/** Waits until every position of `keys` is closed, at most `settleBlocks` blocks after `block`. */
async function settle(
  sc: Scenario,
  racers: readonly Racer[],
  keys: ReadonlySet<string>,
  block: bigint,
  o: RaceOptions,
) {
  const slots = sc.slots.filter((s) => keys.has(s.key));
  const deadline = block + BigInt(o.settleBlocks);
  let closed = false;
  await until(
    "the crash's liquidations",
    async () => {
      for (const r of racers) racerHead(r);
      const open = await openKeys(sc.url, sc.engine, slots);
      closed = open.size === 0;
      return closed || (await headOf(sc.url)) >= deadline;
    },
    (o.settleBlocks + 5) * BLOCK_SECONDS * 1000,
  );
  // then the racers' pools: nothing of theirs pending at two heads in a row
  let quiet = 0;
  let head = await headOf(sc.url);
  await until(
    "the racers' transactions to be mined",
    async () => {
      const pending = await Promise.all(racers.map((r) => hasPending(sc.url, r.address)));
      if (pending.some(Boolean)) quiet = 0;
      const top = await headOf(sc.url);
      if (top > head) {
        head = top;
        if (!pending.some(Boolean)) quiet++;
      }
      return quiet >= 2;
    },
    60_000,
  );
  return closed;
}

export async function runRace(race: RaceName, o: RaceOptions): Promise<RaceResult> {
  const specs = RACERS[race];
  o.progress(`race ${race}: ${specs[0].name} against ${specs[1].name}; ${o.traders} traders, ${o.positions} positions`);
  const anvil: Anvil = await startAnvil({
    blockTime: BLOCK_SECONDS,
    accounts: FIRST_TRADER + o.traders,
    extraArgs: ["--order", "fees"],
    startTimeoutMs: 60_000,
  });
  const controller = new AbortController();
  const racers: Racer[] = [];
  const notes: string[] = [];
  try {
    const sc = await setupScenario(anvil.rpcUrl, o.traders, o.positions);
    o.progress(`  deployed, ${sc.slots.length} positions open in ${sc.setupSeconds.toFixed(1)} s; starting the racers`);
    for (const spec of specs) racers.push(await startRacer(race, spec, sc, o, controller.signal, notes));
    const head = await headOf(sc.url);
    await until(
      "the racers to follow the chain",
      () =>
        racers.every(
          (r) =>
            racerHead(r) >= head &&
            (!r.keeper ||
              (r.keeper.watcher.processedBlock >= head && r.keeper.book.positions.size === sc.slots.length)),
        ),
      120_000,
    );

    const crashes: { block: bigint; liquidatable: Slot[]; closed: boolean }[] = [];
    for (const c of [1, 2]) {
      const calm = await calmMove(sc);
      await until(`the racers to see the calm block ${calm}`, () => racers.every((r) => racerHead(r) >= calm), 30_000);
      const block = await crash(sc);
      const liquidatable = await liquidatableAt(sc.url, sc.engine, sc.slots, block);
      const unexpected = liquidatable.filter((s) => s.kind !== `crash${c}`).length;
      if (unexpected > 0) notes.push(`crash ${c}: ${unexpected} liquidatable positions of another kind than expected`);
      o.progress(`  crash ${c} in block ${block}: ${liquidatable.length} positions liquidatable`);
      const closed = await settle(sc, racers, new Set(liquidatable.map((s) => s.key)), block, o);
      if (!closed) notes.push(`crash ${c}: positions still open ${o.settleBlocks} blocks after the crash`);
      crashes.push({ block, liquidatable, closed });
    }
    const end = await nextHead(sc.url, await headOf(sc.url));
    const first = crashes[0]?.block ?? end;
    const addresses = racers.map((r) => r.address);
    const chain = await readChain(sc.url, sc.engine, addresses, first, end);
    const sent = racers.map((r) => r.proxy.sentTargets(sc.engine).keys);
    const figures = racers.map(() => emptyFigures());
    const crashResults: CrashResult[] = crashes.map((c, i) => {
      const to = crashes[i + 1]?.block ?? end + 1n;
      const keys = c.liquidatable.map((s) => s.key);
      const contested = new Set(keys.filter((k) => sent.every((s) => s.has(k))));
      racers.forEach((r, j) => {
        addCrash(figures[j] as RacerFigures, {
          address: r.address,
          other: racers[1 - j]?.address,
          liquidatable: keys,
          contested,
          liquidations: chain.liquidations,
          txs: (chain.txs.get(r.address.toLowerCase()) ?? []).filter((t) => t.block >= c.block && t.block < to),
          gasTokenPriceWad: parseUnits(o.gasTokenPrice, 18),
        });
      });
      const byRacer = new Set(addresses.map((a) => a.toLowerCase()));
      const settledAt = keys.map((k) => chain.liquidations.get(k)).filter((l) => l && byRacer.has(l.keeper));
      const lastBlock = settledAt.reduce((m, l) => (l && l.block > m ? l.block : m), c.block);
      return {
        block: c.block,
        liquidatable: keys,
        contested: contested.size,
        missed: keys.length - settledAt.length,
        won: addresses.map((a) => keys.filter((k) => chain.liquidations.get(k)?.keeper === a.toLowerCase()).length),
        firstBroadcastMs: racers.map((r) => {
          if (!r.keeper) return undefined;
          const tick = r.ticks.find((t) => t.block >= c.block);
          const send = tick === undefined ? undefined : r.proxy.firstSendAfter(tick.at);
          return tick === undefined || send === undefined ? undefined : send - tick.at;
        }),
        blocksToSettle: Number(lastBlock - c.block),
      };
    });
    const results = racers.map(
      (r, j): RacerResult => ({
        name: r.spec.name,
        address: r.address,
        figures: figures[j] as RacerFigures,
        txs: chain.txs.get(r.address.toLowerCase()) ?? [],
        rawSends: r.proxy.sends.length,
        events: Object.fromEntries([...r.events.entries()].sort((a, b) => b[1] - a[1])),
        problems: r.problems,
        stats: r.keeper
          ? Object.fromEntries(
              Object.entries(r.keeper.executor.stats).map(([k, v]) => [k, typeof v === "bigint" ? v.toString() : v]),
            )
          : r.bot
            ? { ...r.bot.stats }
            : undefined,
      }),
    ) as unknown as [RacerResult, RacerResult];
    return {
      name: race,
      positions: crashResults.reduce((n, c) => n + c.liquidatable.length, 0),
      contested: crashResults.reduce((n, c) => n + c.contested, 0),
      missed: crashResults.reduce((n, c) => n + c.missed, 0),
      crashes: crashResults,
      racers: results,
      notes,
      setupSeconds: sc.setupSeconds,
    };
  } finally {
    controller.abort();
    for (const r of racers) await stopRacer(r);
    await anvil.stop();
  }
}
