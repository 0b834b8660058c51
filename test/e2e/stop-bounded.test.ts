/**
 * Stop is bounded by keeper.shutdownGraceMs, whatever the RPC does: behind an endpoint that takes connections and
 * never answers (every call delayed far past the grace), a stop ends within the grace's order of magnitude, says
 * that the step under way was left behind (stop_timed_out), and keeper_stopped says drained: false. Before, it
 * waited for the follow step's RPC timeouts (three 10 s timeouts against a 10 s grace).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningKeeper } from "../../src/app.ts";
import { ANVIL_KEYS } from "../../src/devnet/anvil.ts";
import { devnetConfig } from "../../src/devnet/config.ts";
import { openPositions } from "../../src/devnet/positions.ts";
import { type DevnetFixture, ethLongs, shutdown, startDevnet, startTestKeeper } from "../helpers/devnet.ts";
import { type FaultProxy, startFaultProxy } from "../helpers/faultProxy.ts";
import type { CapturedLog } from "../helpers/logs.ts";
import { spawnKeeper } from "../helpers/process.ts";
import { until } from "../helpers/wait.ts";

/** Far longer than the test itself may take: an answer that never comes, for the keeper's purposes. */
const NEVER_MS = 600_000;
const GRACE_MS = 1_000;

let net: DevnetFixture;
let proxy: FaultProxy;
let keeper: RunningKeeper | undefined;
let logs: CapturedLog;

beforeAll(async () => {
  net = await startDevnet({ accounts: 4 });
  await openPositions(net.ex, ethLongs(1));
  proxy = await startFaultProxy(net.anvil.rpcUrl);
  ({ keeper, logs } = await startTestKeeper(
    net,
    { pollIntervalMs: 50, rpcTimeoutMs: NEVER_MS, shutdownGraceMs: GRACE_MS, snapshotIntervalSeconds: 0 },
    undefined,
    { rpcUrl: proxy.url },
  ));
  const k = keeper;
  await until("backfill", () => k.watcher.latestTick !== undefined, 20_000);
}, 60_000);

afterAll(async () => {
  proxy?.clear();
  await proxy?.close();
  await shutdown(keeper, net);
});

describe("a stop behind an RPC that never answers", () => {
  it("ends within the grace, and says it did not drain", async () => {
    const k = keeper as RunningKeeper;
    await proxy.set({ kind: "delay", ms: NEVER_MS });
    // a follow step is now waiting on an answer that will not come in this test's lifetime
    const asked = proxy.stats.calls;
    await until("a call held by the proxy", () => proxy.stats.calls > asked, 5_000);
    const started = performance.now();
    await k.stop("test");
    const took = performance.now() - started;
    // bounded by the grace (and the journals' close), not by the RPC: the answer would come after NEVER_MS
    expect(took).toBeLessThan(NEVER_MS);
    expect(logs.events("stop_timed_out")).toHaveLength(1);
    const stopped = logs.events("keeper_stopped");
    expect(stopped).toHaveLength(1);
    expect(stopped[0]?.drained).toBe(false);
    console.info(`stop-bounded: stopped in ${Math.round(took)} ms with a ${GRACE_MS} ms grace`);
  }, 60_000);
});

describe("SIGTERM to a keeper process behind an RPC that never answers", () => {
  it("exits within the grace (not after the RPC's timeouts), with keeper_stopped drained: false", async () => {
    const dir = mkdtempSync(join(tmpdir(), "perp-keeper-stop-"));
    const second = await startFaultProxy(net.anvil.rpcUrl);
    try {
      const config = devnetConfig(net.ex.d, second.url, {
        pollIntervalMs: 50,
        rpcTimeoutMs: NEVER_MS,
        shutdownGraceMs: GRACE_MS,
        snapshotIntervalSeconds: 0,
        metricsEnabled: false,
        stateDir: join(dir, "state"),
      });
      const path = join(dir, "keeper.json");
      writeFileSync(path, JSON.stringify(config));
      const p = spawnKeeper(path, {
        KEEPER_PRIVATE_KEY: ANVIL_KEYS[2] as string,
        RPC_URL: second.url,
        LOG_FORMAT: "json",
        LOG_LEVEL: "info",
      });
      try {
        await p.waitFor("the backfill", (x) => x.events("backfill_completed").length > 0, 30_000);
        await second.set({ kind: "delay", ms: NEVER_MS });
        const asked = second.stats.calls;
        await until("a call held by the proxy", () => second.stats.calls > asked, 5_000);
        const started = performance.now();
        p.signal("SIGTERM");
        const exit = await p.exited;
        const took = performance.now() - started;
        expect(exit.code).toBe(0);
        expect(p.events("stop_timed_out")).toHaveLength(1);
        expect(p.events("keeper_stopped")[0]?.drained).toBe(false);
        console.info(`stop-bounded: the process exited ${Math.round(took)} ms after SIGTERM, grace ${GRACE_MS} ms`);
      } finally {
        if (p.running()) await p.kill();
      }
    } finally {
      second.clear();
      await second.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);
});
