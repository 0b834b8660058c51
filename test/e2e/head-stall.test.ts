/**
 * head_stalled and /healthz share one rule (src/ops/freshness.ts) unless keeper.headStallSeconds is set: a quiet chain
 * whose head the keeper has is healthy and no stall, however long it stays quiet; a keeper behind the head its
 * endpoints report is unhealthy and says head_stalled once, and head_resumed when it moves again. (With
 * headStallSeconds set, silence that long is a stall whatever the endpoints say: test/e2e/faults-http.test.ts.)
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningKeeper } from "../../src/app.ts";
import { type DevnetFixture, shutdown, startDevnet, startTestKeeper } from "../helpers/devnet.ts";
import { type FaultProxy, startFaultProxy } from "../helpers/faultProxy.ts";
import type { CapturedLog } from "../helpers/logs.ts";
import { until } from "../helpers/wait.ts";

let net: DevnetFixture;
let proxy: FaultProxy;
let keeper: RunningKeeper | undefined;
let logs: CapturedLog;

const LIMIT_S = 1;

async function healthz(): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${keeper?.metricsUrl}/healthz`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

beforeAll(async () => {
  net = await startDevnet({ accounts: 4 });
  proxy = await startFaultProxy(net.anvil.rpcUrl);
  ({ keeper, logs } = await startTestKeeper(net, { pollIntervalMs: 50, healthMaxHeadAgeSeconds: LIMIT_S }, undefined, {
    rpcUrl: proxy.url,
  }));
  const k = keeper;
  await until("backfill", () => k.watcher.latestTick !== undefined, 20_000);
}, 60_000);

afterAll(async () => {
  proxy?.clear();
  await proxy?.close();
  await shutdown(keeper, net);
});

describe("the shared freshness rule", () => {
  it("a quiet chain with the keeper at its head: healthy, and no head_stalled however long it lasts", async () => {
    // automine with no transactions: the chain does not move
    await until("chain_quiet", () => logs.events("chain_quiet").length > 0, 10_000);
    // quiet for three times the health limit, by the keeper's own /healthz
    await until(
      "quiet for three health limits",
      async () => {
        const h = await healthz();
        return h.body.chain === "quiet" && Number(h.body.headAgeSeconds) >= 3 * LIMIT_S;
      },
      15_000,
    );
    const h = await healthz();
    expect(h.status).toBe(200);
    expect(logs.events("head_stalled")).toHaveLength(0);
  }, 30_000);

  it("a keeper behind the endpoints' head: unhealthy, head_stalled once, head_resumed when it moves", async () => {
    // the keeper's own head request never answers: eth_blockNumber (what the rule asks) still does
    await proxy.set({ kind: "delay", ms: 600_000 }, { methods: ["eth_getBlockByNumber"] });
    for (let i = 0; i < 3; i++) await net.ex.publicClient.request({ method: "evm_mine" as never, params: [] as never });
    await until("head_stalled", () => logs.events("head_stalled").length === 1, 15_000);
    const h = await healthz();
    expect(h.status).toBe(503);
    expect(h.body.chain).toBe("behind");
    // said by the rule's own probe, which may come a moment after the watcher's head_stalled and /healthz's answer
    await until("keeper_behind", () => logs.events("keeper_behind").length > 0, 10_000);
    proxy.clear();
    await until("head_resumed", () => logs.events("head_resumed").length === 1, 20_000);
    expect(logs.events("head_stalled")).toHaveLength(1); // once, not every poll
    await until("healthy again", async () => (await healthz()).status === 200, 10_000);
  }, 60_000);
});
