/**
 * The executor with transactions left pending (Anvil's automine off): one attempt per position however often it
 * is found again, and nothing new sent once the keeper is stopping.
 */
import { parseUnits } from "viem";
import { afterEach, describe, expect, it } from "vitest";
import type { RunningKeeper } from "../../src/app.ts";
import { ORACLE_DECIMALS } from "../../src/devnet/exchange.ts";
import { BTC, devnetPositions, ETH, openPositions, type PositionSpec } from "../../src/devnet/positions.ts";
import { type DevnetFixture, shutdown, startDevnet, startTestKeeper } from "../helpers/devnet.ts";
import { until } from "../helpers/wait.ts";

let net: DevnetFixture | undefined;
let keeper: RunningKeeper | undefined;

afterEach(async () => {
  // automine back on first, so that a keeper awaiting a receipt can finish
  await net?.ex.publicClient.request({ method: "evm_setAutomine" as never, params: [true] as never }).catch(() => {});
  await shutdown(keeper, net);
  keeper = undefined;
  net = undefined;
});

/** Opens positions, crashes both markets, turns automine off, and starts a keeper on the crashed state. */
async function crashedKeeper(specs: readonly PositionSpec[], keeperConfig: Record<string, unknown>) {
  net = await startDevnet({ accounts: 30 });
  const { ex } = net;
  await openPositions(ex, specs);
  await ex.setPrice(BTC, parseUnits("55000", ORACLE_DECIMALS));
  await ex.setPrice(ETH, parseUnits("2375", ORACLE_DECIMALS));
  await ex.publicClient.request({ method: "evm_setAutomine" as never, params: [false] as never });
  const started = await startTestKeeper(net, { pollIntervalMs: 50, ...keeperConfig });
  keeper = started.keeper;
  return { ex, logs: started.logs, keeper: started.keeper };
}

const pendingCount = async (k: RunningKeeper) => {
  const address = k.address;
  const client = net?.ex.publicClient;
  if (!client) throw new Error("no devnet");
  return (
    (await client.getTransactionCount({ address, blockTag: "pending" })) -
    (await client.getTransactionCount({ address, blockTag: "latest" }))
  );
};

describe("executor with pending transactions", () => {
  it("sends one liquidation per position while it is pending, however often it is found and changed", async () => {
    const { ex, logs, keeper: k } = await crashedKeeper(devnetPositions().slice(0, 2), {});
    await until("both liquidations to be sent", () => k.executor.stats.sent === 2);

    // the same findings again and again, and a book change on each position, while both are still pending
    const tick = k.watcher.latestTick;
    if (!tick) throw new Error("no tick");
    for (let i = 0; i < 5; i++) {
      k.keeper.handleTick(tick);
      for (const p of k.book.positions.values()) {
        k.executor.onBookChange({ type: "position", key: p.key, before: p, after: p });
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(k.executor.stats.sent).toBe(2);
    expect(await pendingCount(k)).toBe(2);

    await ex.publicClient.request({ method: "evm_mine" as never, params: [] as never });
    await until("both confirmed", () => k.executor.stats.confirmed === 2);
    expect(logs.events("liquidation_sent")).toHaveLength(2);
    expect(logs.events("liquidation_failed")).toHaveLength(0);
  });

  it("sends nothing new once stopping: queued attempts are dropped, the one under way is awaited", async () => {
    const { ex, logs, keeper: k } = await crashedKeeper(devnetPositions(), { maxConcurrentLiquidations: 1 });
    await until("a first liquidation to be sent", () => k.executor.stats.sent === 1);
    const flagged = logs.events("position_flagged").length;
    expect(flagged).toBeGreaterThan(3); // many were queued behind the first

    const stopped = k.stop("test stop");
    await new Promise((r) => setTimeout(r, 300));
    await ex.publicClient.request({ method: "evm_mine" as never, params: [] as never });
    await stopped;

    expect(k.executor.stats.sent).toBe(1);
    expect(k.executor.stats.confirmed).toBe(1);
    const events = logs.lines.map((l) => l.event);
    expect(events.lastIndexOf("liquidation_sent")).toBeLessThan(events.indexOf("keeper_stopping"));
    expect(events.at(-1)).toBe("keeper_stopped");
    expect(await pendingCount(k)).toBe(0);
  });

  it("prices gas against the reward: a liquidation that would not pay is skipped, not sent", async () => {
    // gas priced absurdly high: 1e8 collateral per ETH makes ~0.0002 ETH of gas cost far more than any reward
    const { logs, keeper: k } = await crashedKeeper(devnetPositions().slice(0, 2), { gasTokenPrice: "100000000" });
    await until("both skipped", () => logs.events("liquidation_skipped").length >= 2);
    const skipped = logs.events("liquidation_skipped");
    expect(skipped.every((l) => l.reason === "unprofitable")).toBe(true);
    expect(skipped.every((l) => Number(l.expectedProfit) < 0)).toBe(true);
    expect(k.executor.stats.sent).toBe(0);
  });
});
