/**
 * Following over WebSocket: with a ws URL the watcher subscribes to new heads and reacts to each at once; the
 * poll interval is only the fallback. Anvil serves WebSocket on its HTTP port.
 */
import { parseUnits } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningKeeper } from "../../src/app.ts";
import { ORACLE_DECIMALS } from "../../src/devnet/exchange.ts";
import { ETH, openPositions } from "../../src/devnet/positions.ts";
import { type DevnetFixture, ethLongs, shutdown, startDevnet, startTestKeeper } from "../helpers/devnet.ts";
import type { CapturedLog } from "../helpers/logs.ts";
import { until } from "../helpers/wait.ts";

let net: DevnetFixture;
let keeper: RunningKeeper | undefined;
let logs: CapturedLog;

beforeAll(async () => {
  net = await startDevnet({ accounts: 8 });
  await openPositions(net.ex, ethLongs(2));
  ({ keeper, logs } = await startTestKeeper(net, { pollIntervalMs: 20_000 }, undefined, {
    wsUrl: net.anvil.rpcUrl.replace("http://", "ws://"),
  }));
  const k = keeper;
  await until("backfill", () => k.book.positions.size === 2 && k.watcher.latestTick !== undefined);
}, 60_000);

afterAll(async () => {
  await shutdown(keeper, net);
});

describe("WebSocket heads", () => {
  it("reacts to a new block at once although the poll interval is 20 s, and liquidates", async () => {
    const k = keeper as RunningKeeper;
    const hash = await net.ex.setPrice(ETH, parseUnits("2375", ORACLE_DECIMALS));
    const { blockNumber } = await net.ex.publicClient.getTransactionReceipt({ hash });
    const started = Date.now();
    await until("the tick at the price block", () => (k.watcher.latestTick?.blockNumber ?? 0n) >= blockNumber, 5_000);
    expect(Date.now() - started).toBeLessThan(3_000); // a poll would have waited up to 20 s
    await until("both liquidated", () => k.executor.stats.confirmed === 2, 10_000);
    expect(logs.events("rpc_error"), JSON.stringify(logs.events("rpc_error"))).toHaveLength(0);
  }, 30_000);
});
