/**
 * Test fixture: a fresh Anvil on a free loopback port with the reference exchange deployed. Every file that
 * uses it stops it in afterAll, also when a test failed.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Hex } from "viem";
import { type RunningKeeper, startKeeper } from "../../src/app.ts";
import { ANVIL_KEYS, type Anvil, startAnvil } from "../../src/devnet/anvil.ts";
import { devnetConfig } from "../../src/devnet/config.ts";
import { DevExchange, type MarketSpec } from "../../src/devnet/exchange.ts";
import { ETH, type PositionSpec } from "../../src/devnet/positions.ts";
import { type CapturedLog, captureLogs } from "./logs.ts";

export interface DevnetFixture {
  readonly anvil: Anvil;
  readonly ex: DevExchange;
  stop(): Promise<void>;
}

export async function startDevnet(
  options: { accounts?: number; markets?: readonly MarketSpec[]; anvilArgs?: readonly string[] } = {},
): Promise<DevnetFixture> {
  const anvil = await startAnvil({ accounts: options.accounts ?? 30, extraArgs: options.anvilArgs });
  try {
    const ex = await DevExchange.deploy(anvil.rpcUrl, options.markets);
    return { anvil, ex, stop: () => anvil.stop() };
  } catch (error) {
    await anvil.stop();
    throw error;
  }
}

/**
 * Stops a keeper (given at most 10 s) and then, whatever happened, its devnet: no test leaves an Anvil behind.
 */
export async function shutdown(
  keeper: { stop(reason?: string): Promise<void> } | undefined,
  net: DevnetFixture | undefined,
): Promise<void> {
  try {
    if (keeper) {
      await Promise.race([keeper.stop("test finished").catch(() => {}), new Promise((r) => setTimeout(r, 10_000))]);
    }
  } finally {
    await net?.stop();
  }
}

/**
 * A keeper (Anvil's dev key #1) on the fixture's devnet config, its log captured. `done` is left to the test:
 * a keeper that ends with an error is a finding, reported where the test looks for it.
 */
export async function startTestKeeper(
  net: DevnetFixture,
  keeperConfig: Record<string, unknown> = {},
  privateKeys: readonly Hex[] = [ANVIL_KEYS[1]],
  /** Another way to the node than the fixture's own URL: a proxy (or several, comma-separated), a WebSocket. */
  endpoints: { readonly rpcUrl?: string; readonly wsUrl?: string } = {},
): Promise<{ keeper: RunningKeeper; logs: CapturedLog; stateDir: string }> {
  const logs = captureLogs();
  const stateDir = (keeperConfig.stateDir as string | undefined) ?? testStateDir();
  const rpcUrl = endpoints.rpcUrl ?? net.anvil.rpcUrl;
  // metrics on a free port: test files run in parallel, each keeper with its own server
  const config = devnetConfig(net.ex.d, net.anvil.rpcUrl, {
    pollIntervalMs: 100,
    metricsPort: 0,
    ...keeperConfig,
    stateDir,
  });
  const keeper = await startKeeper({
    config: { ...config, network: { ...config.network, wsUrl: endpoints.wsUrl } },
    rpcUrl,
    privateKeys,
    log: logs.log,
  });
  keeper.done.catch(() => {});
  return { keeper, logs, stateDir };
}

/** `count` 20x ETH longs of 200 collateral (traders firstTrader, firstTrader + 1, ...): a 5% drop liquidates them all. */
export function ethLongs(count: number, firstTrader = 2): PositionSpec[] {
  return Array.from({ length: count }, (_, i) => ({
    trader: firstTrader + i,
    marketId: ETH,
    side: "long" as const,
    margin: "200",
    leverage: 20,
  }));
}

const stateDirs: string[] = [];
process.once("exit", () => {
  for (const dir of stateDirs) rmSync(dir, { recursive: true, force: true });
});

/** A fresh state directory (journals) for one test keeper, removed when the test process exits. */
export function testStateDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "perp-keeper-test-"));
  stateDirs.push(dir);
  return dir;
}
