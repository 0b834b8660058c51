/**
 * Test fixture: a fresh Anvil on a free loopback port with the reference exchange deployed. Every file that
 * uses it stops it in afterAll, also when a test failed.
 */
import { type Anvil, startAnvil } from "../../src/devnet/anvil.ts";
import { DevExchange, type MarketSpec } from "../../src/devnet/exchange.ts";

export interface DevnetFixture {
  readonly anvil: Anvil;
  readonly ex: DevExchange;
  stop(): Promise<void>;
}

export async function startDevnet(
  options: { accounts?: number; markets?: readonly MarketSpec[] } = {},
): Promise<DevnetFixture> {
  const anvil = await startAnvil({ accounts: options.accounts ?? 30 });
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
