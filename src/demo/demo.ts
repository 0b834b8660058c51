/**
 * The embedded demo behind `npm start` without configuration: a local Anvil, the reference exchange deployed,
 * traders' positions opened, then prices moved (including a sharp drop and a squeeze) while the keeper
 * liquidates. Everything it prints is the keeper's own log.
 */

import { createServer } from "node:net";
import { parseUnits } from "viem";
import { type RunningKeeper, startKeeper } from "../app.ts";
import { ANVIL_KEYS } from "../devnet/anvil.ts";
import { devnetConfig } from "../devnet/config.ts";
import { DevExchange, ORACLE_DECIMALS } from "../devnet/exchange.ts";
import { accountsNeeded, BTC, devnetPositions, ETH, openPositions } from "../devnet/positions.ts";
import type { Logger } from "../ops/logger.ts";
import { sleep } from "../ops/sleep.ts";
import { fundingIndexAt, health } from "../protocol/perpEngine/math.ts";
import { keepFollowing, onDemoChain } from "./stage.ts";

/** The demo's price path: calm, a crash, a squeeze. */
export const DEMO_PRICE_PATH: readonly { readonly label: string; readonly BTC: string; readonly ETH: string }[] = [
  { label: "calm", BTC: "60150", ETH: "2508" },
  { label: "calm", BTC: "59870", ETH: "2494" },
  { label: "calm", BTC: "60020", ETH: "2501" },
  { label: "slide: BTC -3%, ETH -2.5%", BTC: "58200", ETH: "2437" },
  { label: "crash: BTC -8%, ETH -5% from the top", BTC: "55200", ETH: "2375" },
  { label: "aftershock", BTC: "55050", ETH: "2370" },
  { label: "recovery", BTC: "58500", ETH: "2460" },
  { label: "short squeeze: BTC +7%, ETH +6%", BTC: "64200", ETH: "2650" },
  { label: "settle", BTC: "63900", ETH: "2640" },
];

export interface DemoOptions {
  readonly log: Logger;
  /** Milliseconds between price steps. */
  readonly stepMs?: number;
  /** Keep the keeper running after the scenario until the signal aborts. */
  readonly keepRunning?: boolean;
  /**
   * Same-block liquidations (keeper.precompute): the chain mines a block a second once the positions are open, so
   * that each oracle update waits in the pool where the keeper sees it; heads and pending transactions over WebSocket.
   */
  readonly precompute?: "on-block" | "backrun";
  readonly signal: AbortSignal;
}

export interface DemoResult {
  readonly liquidatedByKeeper: number;
  readonly stillLiquidatable: number;
  readonly openPositions: number;
}

export async function runDemo(o: DemoOptions): Promise<DemoResult> {
  const { signal } = o;
  // the demo's own lines; the keeper's parts carry theirs (src/app.ts componentLogs)
  const log = o.log.child({ component: "demo" });
  const specs = devnetPositions();
  return onDemoChain({ accounts: accountsNeeded(specs) + 1 }, signal, async ({ anvil, stateDir, started }) => {
    log.info({ event: "devnet_started", rpcUrl: anvil.rpcUrl }, "local Anvil devnet started");
    const ex = await DevExchange.deploy(anvil.rpcUrl);
    await openPositions(ex, specs);
    log.info(
      { event: "devnet_ready", engine: ex.d.engine, markets: ex.d.markets.map((m) => m.name), positions: specs.length },
      `reference exchange deployed; ${specs.length} positions opened`,
    );

    const config = devnetConfig(ex.d, anvil.rpcUrl, {
      // a fresh chain each run: its journal lives and dies with it
      stateDir,
      // metrics on the default port, or a free one when another process holds it (see demo_metrics)
      metricsPort: await freeOr(9464),
      ...(o.precompute ? { precompute: { mode: o.precompute } } : {}),
    });
    if (o.precompute) {
      await ex.publicClient.request({ method: "evm_setAutomine" as never, params: [false] as never });
      await ex.publicClient.request({ method: "evm_setIntervalMining" as never, params: [1] as never });
      log.info(
        { event: "demo_precompute", mode: o.precompute },
        `demo: 1-second blocks; liquidations prepared on pending oracle updates (${o.precompute})`,
      );
    }
    const keeper = await startKeeper({
      config: o.precompute
        ? { ...config, network: { ...config.network, wsUrl: anvil.rpcUrl.replace("http://", "ws://") } }
        : config,
      rpcUrl: anvil.rpcUrl,
      privateKeys: [ANVIL_KEYS[1]],
      log: o.log,
      signal,
    });
    started(keeper);
    keeper.done.catch(() => {});
    if (keeper.metricsUrl) {
      log.info(
        { event: "demo_metrics", url: `${keeper.metricsUrl}/metrics` },
        `demo: metrics on ${keeper.metricsUrl}/metrics (health: /healthz, /readyz)`,
      );
    }

    for (const step of DEMO_PRICE_PATH) {
      if (signal.aborted) break;
      await sleep(o.stepMs ?? 1500, signal);
      if (signal.aborted) break;
      log.info({ event: "demo_price_move", label: step.label, BTC: step.BTC, ETH: step.ETH }, `demo: ${step.label}`);
      await Promise.all([
        ex.setPrice(BTC, parseUnits(step.BTC, ORACLE_DECIMALS)),
        ex.setPrice(ETH, parseUnits(step.ETH, ORACLE_DECIMALS)),
      ]);
      await waitForKeeper(keeper, await ex.publicClient.getBlockNumber({ cacheTime: 0 }), signal, 20_000);
    }
    await keepFollowing(o.keepRunning, signal, log);
    const stillLiquidatable = countLiquidatable(keeper);
    const result = {
      liquidatedByKeeper: keeper.keeper.liquidationsOurs,
      stillLiquidatable,
      openPositions: keeper.book.positions.size,
    };
    log.info(
      { event: "demo_summary", ...result },
      `demo finished: ${result.liquidatedByKeeper} positions liquidated by this keeper, ` +
        `${result.stillLiquidatable} left below maintenance, ${result.openPositions} healthy positions open`,
    );
    return result;
  });
}

/** Waits until the keeper has seen block `head` and has no liquidatable position left unhandled. */
async function waitForKeeper(k: RunningKeeper, head: bigint, signal: AbortSignal, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!signal.aborted && Date.now() < deadline) {
    await sleep(100, signal);
    const tick = k.watcher.latestTick;
    if (tick && tick.blockNumber >= head && countLiquidatable(k) === 0) {
      await k.executor.idle();
      return;
    }
  }
}

function countLiquidatable(k: RunningKeeper): number {
  const tick = k.watcher.latestTick;
  if (!tick) return 0;
  let n = 0;
  for (const p of k.book.positions.values()) {
    const market = k.book.markets.get(p.marketId);
    const price = tick.prices.get(p.marketId);
    if (!market || price === undefined) continue;
    const index = fundingIndexAt(market.funding, price, tick.timestamp);
    if (health(p, market.maintenanceMarginRatio, price, index).liquidatable) n++;
  }
  return n;
}

/** `port` when it can be bound on loopback now, otherwise 0 (a free port). */
async function freeOr(port: number): Promise<number> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once("error", () => resolve(0));
    probe.listen(port, "127.0.0.1", () => probe.close(() => resolve(port)));
  });
}
