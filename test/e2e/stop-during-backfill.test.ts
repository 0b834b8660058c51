/** A stop asked during a long backfill ends it after the range being applied: SIGTERM never waits for history. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { devnetPositions, openPositions } from "../../src/devnet/positions.ts";
import { type DevnetFixture, startDevnet, startTestKeeper } from "../helpers/devnet.ts";
import { type RpcProxy, refusingFinalized, startRpcProxy } from "../helpers/rpcProxy.ts";
import { until } from "../helpers/wait.ts";

let net: DevnetFixture;
let slow: RpcProxy | undefined;
/** eth_getLogs requests the slow proxy has answered: the backfill's ranges, one block each. */
let rangesAnswered = 0;

beforeAll(async () => {
  net = await startDevnet({ accounts: 30 });
  await openPositions(net.ex, devnetPositions().slice(0, 10));
  // every eth_getLogs answers after 400 ms: one block per range makes the backfill take many seconds
  slow = await startRpcProxy(net.anvil.rpcUrl, async (body) => {
    if (!body.includes("eth_getLogs")) return undefined;
    await new Promise((r) => setTimeout(r, 400)); // the fault itself: a slow node, not a wait for a condition
    rangesAnswered++;
    return undefined;
  });
}, 60_000);

afterAll(async () => {
  slow?.close();
  await net?.stop();
});

describe("stopping during a backfill", () => {
  it("stops within a range, not after the whole history", async () => {
    const { keeper: k, logs } = await startTestKeeper(net, { maxLogRange: 1, logConcurrency: 1 }, undefined, {
      rpcUrl: (slow as RpcProxy).url,
    });
    // into the backfill: two ranges answered, and more left than a stop could wait for within its bound
    await until("two ranges of the backfill answered", () => rangesAnswered >= 2, 10_000);
    const head = await net.ex.publicClient.getBlockNumber({ cacheTime: 0 });
    expect(k.watcher.processedBlock).toBeLessThan(head - 5n); // 5+ ranges left: over 2 s at 400 ms each
    expect(logs.events("backfill_completed")).toHaveLength(0);
    const started = Date.now();
    await k.stop("test stop");
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(logs.lines.at(-1)?.event).toBe("keeper_stopped");
    expect(logs.events("backfill_completed")).toHaveLength(0);
  }, 30_000);
});

describe("stopping during a rebuild", () => {
  it("a rebuild after a reorganisation deeper than the window stops within a range too", async () => {
    // getLogs slowed once the reorganisation is made; the finalized tag refused, so that the window is reorgDepth
    let slowNow = false;
    let slowAnswered = 0;
    const proxy = await startRpcProxy(net.anvil.rpcUrl, async (body) => {
      if (slowNow && body.includes("eth_getLogs")) {
        await new Promise((r) => setTimeout(r, 400)); // the fault itself: a slow node, not a wait for a condition
        slowAnswered++;
      }
      return refusingFinalized(net.anvil.rpcUrl, body);
    });
    let keeper: { stop(reason?: string): Promise<void> } | undefined;
    try {
      const { keeper: k, logs } = await startTestKeeper(
        net,
        { maxLogRange: 1, logConcurrency: 1, reorgDepth: 1, pollIntervalMs: 50, snapshotIntervalSeconds: 0 },
        undefined,
        { rpcUrl: proxy.url },
      );
      keeper = k;
      await until("backfill", () => logs.events("backfill_completed").length === 1);
      await until("a tick", () => k.watcher.latestTick !== undefined);
      slowNow = true;
      await net.ex.publicClient.request({ method: "anvil_reorg" as never, params: [3, []] as never });
      await until("the rebuild", () => logs.events("reorg_detected").some((l) => l.action === "rebuild"), 10_000);
      // into the rebuild: two of its slowed one-block ranges answered
      const rebuilding = slowAnswered;
      await until("two ranges of the rebuild answered", () => slowAnswered >= rebuilding + 2, 10_000);
      // still rebuilding, with more left than a stop could wait for within its bound: the stop is asked mid-rebuild
      const head = await net.ex.publicClient.getBlockNumber({ cacheTime: 0 });
      expect(k.watcher.processedBlock).toBeLessThan(head - 5n);
      const started = Date.now();
      await k.stop("test stop");
      expect(Date.now() - started).toBeLessThan(2_000);
      expect(logs.lines.at(-1)?.event).toBe("keeper_stopped");
    } finally {
      await keeper?.stop("test finished").catch(() => {}); // a failed assertion still stops it (stop is idempotent)
      proxy.close();
    }
  }, 60_000);
});
