/**
 * `npm start -- --exchange cross-margin`: the embedded demo on the reference cross-margin exchange priced by a Pyth
 * pull oracle (docs/cross-margin-engine.md), on a local Anvil with 1-second blocks and a local Hermes. Traders hold
 * ETH and BTC positions, some in both markets (cross margin), one larger than a liquidation window's cap. Then a crash
 * is published on Hermes only: the chain knows nothing of it until someone brings the price. The keeper sees it first,
 * and its liquidations carry the price and pay the oracle's fee: every account the crash makes liquidatable is flagged
 * in the first block after the price, and its positions are closed window by window. The summary says what the chain
 * says: flags, closes and the fees paid, from the exchange's own events.
 */
import { type Hex, type PublicClient, parseUnits } from "viem";
import { iCrossMarginEngineAbi } from "../../abi/ICrossMarginEngine.ts";
import { httpPublicClient } from "../chain/httpClient.ts";
import { parseConfig } from "../config/load.ts";
import { ANVIL_KEYS } from "../devnet/anvil.ts";
import {
  type CrossMarginAccountSpec,
  type CrossMarginMarketSpec,
  DEFAULT_CROSS_MARGIN_MARKETS,
  openCrossMarginAccounts,
} from "../devnet/crossMargin/deploy.ts";
import { crossMarginKeeperConfig, liquidatableAt, stageCrossMargin } from "../devnet/crossMargin/stage.ts";
import type { Logger } from "../ops/logger.ts";
import { sleep } from "../ops/sleep.ts";
import { startCrossMarginKeeper } from "../protocol/crossMargin/run.ts";
import { caughtUp, keepFollowing, onDemoChain } from "./stage.ts";

const wad = (v: string) => parseUnits(v, 18);

/** 3000 -> 2600 and 60000 -> 52000: the first seven liquidatable, the rest safe. */
export const CROSS_MARGIN_DEMO_ACCOUNTS: readonly Omit<CrossMarginAccountSpec, "trader">[] = [
  { collateral: "1000", positions: [{ market: "ETH", size: "10" }] },
  { collateral: "2500", positions: [{ market: "ETH", size: "10" }] },
  { collateral: "1500", positions: [{ market: "BTC", size: "0.5" }] },
  { collateral: "3000", positions: [{ market: "BTC", size: "0.5" }] },
  {
    collateral: "2500",
    positions: [
      { market: "ETH", size: "5" },
      { market: "BTC", size: "0.25" },
    ],
  },
  {
    collateral: "1200",
    positions: [
      { market: "ETH", size: "4" },
      { market: "BTC", size: "-0.05" },
    ],
  },
  // larger than one window's cap in ETH (see the demo's market settings): closed over two windows
  {
    collateral: "10000",
    positions: [
      { market: "ETH", size: "60" },
      { market: "BTC", size: "0.2" },
    ],
  },
  { collateral: "6000", positions: [{ market: "ETH", size: "10" }] },
  { collateral: "8000", positions: [{ market: "BTC", size: "0.5" }] },
  { collateral: "1000", positions: [{ market: "ETH", size: "-10" }] },
  {
    collateral: "9000",
    positions: [
      { market: "ETH", size: "5" },
      { market: "BTC", size: "0.25" },
    ],
  },
];

const FIRST_TRADER = 10;
const KEEPER_KEY = ANVIL_KEYS[8];
const CRASH = { ETH: "2600", BTC: "52000" } as const;

export interface CrossMarginDemoOptions {
  readonly log: Logger;
  readonly keepRunning?: boolean;
  readonly signal: AbortSignal;
  /** How long the keeper may take to close every flagged account (default 60 s). */
  readonly settleMs?: number;
}

export interface CrossMarginDemoResult {
  /** Accounts the exchange's rules make liquidatable at the crash prices. */
  readonly liquidatableAfterCrash: number;
  /** Of those, flagged by the keeper, and in the first block after the price reached it. */
  readonly flaggedByKeeper: number;
  readonly flaggedInFirstBlock: number;
  /** Accounts flagged that still hold positions at the end: 0 is the keeper's job done. */
  readonly stillOpen: number;
  /** Safe accounts flagged (must be 0). */
  readonly wronglyFlagged: number;
  /** Windows the largest account took to close. */
  readonly windowsUsed: number;
  /** Oracle fees paid by the keeper's transactions, wei. */
  readonly feesPaidWei: string;
}

export async function runCrossMarginDemo(o: CrossMarginDemoOptions): Promise<CrossMarginDemoResult> {
  const { signal } = o;
  const log = o.log.child({ component: "demo" });
  const accounts = FIRST_TRADER + CROSS_MARGIN_DEMO_ACCOUNTS.length + 2;
  return onDemoChain({ blockTime: 1, accounts }, signal, async ({ anvil, stateDir, started }) => {
    log.info({ event: "devnet_started", rpcUrl: anvil.rpcUrl }, "local Anvil devnet started (1-second blocks)");
    // small windows so that the demo shows one: an ETH window takes 35 ETH every 5 seconds
    const stage = await stageCrossMargin(anvil.rpcUrl, { markets: demoMarkets() });
    /** Once the keeper runs, Hermes closes after it stops (the stage's stop); before, here. */
    let handedOver = false;
    try {
      const d = stage.deployment;
      const client = httpPublicClient(anvil.rpcUrl);
      const opened = await openCrossMarginAccounts(
        d,
        anvil.rpcUrl,
        CROSS_MARGIN_DEMO_ACCOUNTS.map((a, i) => ({ ...a, trader: FIRST_TRADER + i })),
      );
      const ids = opened.map((a) => a.accountId);
      log.info(
        {
          event: "devnet_ready",
          exchange: "cross-margin",
          engine: d.engine,
          pyth: d.pyth,
          hermes: stage.hermes.url,
          markets: d.markets.map((m) => m.name),
          accounts: ids.length,
        },
        `cross-margin exchange deployed with MockPyth and a local Hermes: ${d.markets.map((m) => m.name).join(", ")}; ${ids.length} accounts opened`,
      );
      const raw = crossMarginKeeperConfig(d, anvil.rpcUrl, [stage.hermes.url], {
        pollIntervalMs: 200,
        metricsPort: 0,
        stateDir,
      });
      const keeper = await startCrossMarginKeeper({
        config: parseConfig(raw, "cross-margin demo"),
        rpcUrl: anvil.rpcUrl,
        privateKeys: [KEEPER_KEY],
        log: o.log,
        signal,
      });
      // the keeper stops before its price service does
      handedOver = true;
      started({
        stop: async (reason) => {
          await keeper.stop(reason);
          await stage.close();
        },
      });
      keeper.done.catch(() => {});
      await caughtUp(keeper, await client.getBlockNumber({ cacheTime: 0 }), signal);

      const expected = await liquidatableAt(client, d, ids, { ETH: wad(CRASH.ETH), BTC: wad(CRASH.BTC) });
      const crashBlock = await client.getBlockNumber({ cacheTime: 0 });
      log.info(
        { event: "demo_price_move", prices: CRASH },
        `demo: a crash published on Hermes only (ETH ${CRASH.ETH}, BTC ${CRASH.BTC}): the chain learns it from the keeper`,
      );
      stage.move(CRASH);
      const deadline = Date.now() + (o.settleMs ?? 60_000);
      let open = expected.length;
      while (!signal.aborted && Date.now() < deadline) {
        await sleep(500, signal);
        open = await stillOpen(
          client,
          d.engine,
          d.markets.map((m) => m.marketId),
          ids,
        );
        const flagged = await flaggedSince(client, d.engine, crashBlock);
        if (open === 0 && flagged.size >= expected.length) break;
      }
      await keepFollowing(o.keepRunning, signal, log);
      const flagged = await flaggedSince(client, d.engine, crashBlock);
      const firstBlock = crashBlockAfter(flagged, crashBlock);
      const windows = await windowsOf(client, d.engine, crashBlock, d.markets[0]?.config.maxSecondsInLiquidationWindow);
      const result: CrossMarginDemoResult = {
        liquidatableAfterCrash: expected.length,
        flaggedByKeeper: expected.filter((id) => flagged.has(id)).length,
        flaggedInFirstBlock: expected.filter((id) => flagged.get(id) === firstBlock).length,
        stillOpen: await stillOpen(
          client,
          d.engine,
          d.markets.map((m) => m.marketId),
          ids,
        ),
        wronglyFlagged: [...flagged.keys()].filter((id) => !expected.includes(id)).length,
        windowsUsed: windows,
        feesPaidWei: (await feesPaid(client, keeper.addresses, crashBlock)).toString(),
      };
      log.info(
        { event: "demo_summary", exchange: "cross-margin", ...result },
        `demo finished: ${result.liquidatableAfterCrash} accounts liquidatable at the crash prices; the keeper flagged ` +
          `${result.flaggedByKeeper} (${result.flaggedInFirstBlock} in the first block after the price), closed ` +
          `every position of all but ${result.stillOpen} over ${result.windowsUsed} window(s), flagged ` +
          `${result.wronglyFlagged} safe account(s), and paid ${result.feesPaidWei} wei of oracle fees`,
      );
      return result;
    } finally {
      if (!handedOver) await stage.close();
    }
  });
}

/** The devnet's markets with small liquidation windows: 5 seconds, ETH 35 and BTC 1.2 a window. */
export function demoMarkets(): CrossMarginMarketSpec[] {
  return DEFAULT_CROSS_MARGIN_MARKETS.map((m) => ({
    ...m,
    config: { ...m.config, maxSecondsInLiquidationWindow: 5n, maxLiquidationLimitAccumulationMultiplier: wad("0.01") },
  }));
}

/** Accounts flagged since `from`, with the block each was flagged in. */
async function flaggedSince(client: PublicClient, engine: Hex, from: bigint): Promise<Map<bigint, bigint>> {
  const logs = await client.getContractEvents({
    address: engine,
    abi: iCrossMarginEngineAbi,
    eventName: "AccountFlaggedForLiquidation",
    fromBlock: from,
  });
  return new Map(logs.map((l) => [l.args.accountId as bigint, l.blockNumber]));
}

/** The first block that carries a flag (the first after the price reached the keeper). */
function crashBlockAfter(flagged: ReadonlyMap<bigint, bigint>, from: bigint): bigint {
  let first: bigint | undefined;
  for (const b of flagged.values()) if (b > from && (first === undefined || b < first)) first = b;
  return first ?? -1n;
}

async function stillOpen(client: PublicClient, engine: Hex, markets: readonly bigint[], ids: readonly bigint[]) {
  let open = 0;
  for (const id of ids) {
    if (
      !(await client.readContract({
        address: engine,
        abi: iCrossMarginEngineAbi,
        functionName: "isFlagged",
        args: [id],
      }))
    )
      continue;
    for (const m of markets) {
      const [size] = await client.readContract({
        address: engine,
        abi: iCrossMarginEngineAbi,
        functionName: "getOpenPosition",
        args: [id, m],
      });
      if (size !== 0n) {
        open++;
        break;
      }
    }
  }
  return open;
}

/** How many distinct windows the closes took (liquidations grouped by window length from the first). */
async function windowsOf(client: PublicClient, engine: Hex, from: bigint, window: bigint | undefined): Promise<number> {
  const logs = await client.getContractEvents({
    address: engine,
    abi: iCrossMarginEngineAbi,
    eventName: "PositionLiquidated",
    fromBlock: from,
  });
  if (logs.length === 0 || !window) return logs.length > 0 ? 1 : 0;
  const times: bigint[] = [];
  for (const l of logs) times.push((await client.getBlock({ blockNumber: l.blockNumber })).timestamp);
  const start = times.reduce((a, b) => (b < a ? b : a));
  return new Set(times.map((t) => (t - start) / window)).size;
}

/** What the keeper's transactions since `from` sent as value (the oracle's fees). */
async function feesPaid(client: PublicClient, keepers: readonly Hex[], from: bigint): Promise<bigint> {
  const head = await client.getBlockNumber({ cacheTime: 0 });
  const mine = new Set(keepers.map((k) => k.toLowerCase()));
  let paid = 0n;
  for (let b = from; b <= head; b++) {
    const block = await client.getBlock({ blockNumber: b, includeTransactions: true });
    for (const tx of block.transactions) if (mine.has(tx.from.toLowerCase())) paid += tx.value;
  }
  return paid;
}
