/** The one rule for /healthz, head_behind and the log: a quiet chain with the keeper at its head is healthy. */
import { describe, expect, it } from "vitest";
import type { ExecutorStats } from "../../src/executor/executor.ts";
import { Freshness, judgeFreshness } from "../../src/ops/freshness.ts";
import { keeperMetrics, type OpsSources } from "../../src/ops/metrics.ts";
import { health } from "../../src/ops/server.ts";
import { Book } from "../../src/protocol/perpEngine/book.ts";
import { captureLogs } from "../helpers/logs.ts";

const LIMIT = 60_000;

describe("judgeFreshness", () => {
  const base = { processedBlock: 100n, reportedHead: 100n, unprocessed: [], answeredAgoMs: 1_000, limitMs: LIMIT };

  it("current while heads are processed", () => {
    expect(judgeFreshness({ ...base, idleMs: 5_000 })).toMatchObject({ state: "current", healthy: true });
  });

  it("quiet: idle past the limit, but every endpoint reports the processed head (healthy)", () => {
    expect(judgeFreshness({ ...base, idleMs: 210_000 })).toMatchObject({ state: "quiet", healthy: true });
  });

  it("behind: an endpoint's head has waited the limit to be processed, idle or not", () => {
    const v = judgeFreshness({
      ...base,
      idleMs: 5_000,
      reportedHead: 104n,
      unprocessed: [
        { number: 101n, agoMs: 61_000 },
        { number: 104n, agoMs: 2_000 },
      ],
    });
    expect(v).toMatchObject({ state: "behind", healthy: false });
    expect(v.reason).toMatch(/reported block 101 61 s ago \(now 104\).*processed block 100/);
    // a head reported a moment ago is only being processed
    expect(
      judgeFreshness({ ...base, idleMs: 70_000, reportedHead: 101n, unprocessed: [{ number: 101n, agoMs: 900 }] }),
    ).toMatchObject({ state: "quiet", healthy: true });
  });

  it("no_answer: idle past the limit and no endpoint told its head within it", () => {
    expect(judgeFreshness({ ...base, idleMs: 70_000, answeredAgoMs: 65_000 })).toMatchObject({
      state: "no_answer",
      healthy: false,
    });
    expect(judgeFreshness({ ...base, idleMs: 70_000, answeredAgoMs: undefined }).reason).toMatch(/no endpoint/);
  });
});

describe("Freshness", () => {
  function fixture(heads: () => Promise<bigint>[]) {
    let t = 0;
    const logs = captureLogs();
    const f = new Freshness({ limitMs: LIMIT, probeMs: 5_000, heads, log: logs.log, now: () => t }, 100n);
    return { f, logs, advance: (ms: number) => (t += ms) };
  }

  it("on a chain that mines only on demand: quiet, healthy, said once; no endpoint asked while heads come", async () => {
    let asked = 0;
    const { f, logs, advance } = fixture(() => {
      asked++;
      return [Promise.resolve(100n), Promise.resolve(99n)];
    });
    advance(1_000);
    f.progressed(101n);
    await f.check();
    expect(asked).toBe(0);
    for (let i = 0; i < 42; i++) {
      advance(5_000);
      expect((await f.check()).healthy).toBe(true);
    }
    expect(asked).toBeGreaterThan(30);
    expect(f.verdict().state).toBe("quiet");
    expect(logs.events("chain_quiet")).toHaveLength(1);
    expect(logs.events("keeper_behind")).toHaveLength(0);
  });

  it("behind the endpoints: unhealthy and logged once (keeper_behind), current again once processed", async () => {
    let head = 100n;
    const { f, logs, advance } = fixture(() => [Promise.resolve(head), Promise.reject(new Error("down"))]);
    f.progressed(100n);
    advance(6_000);
    head = 103n;
    await f.check();
    expect(f.verdict().healthy).toBe(true); // just reported: not yet behind
    for (let i = 0; i < 12; i++) {
      advance(5_000);
      await f.check();
    }
    expect(f.verdict()).toMatchObject({ state: "behind", healthy: false, reportedHead: 103n });
    expect(logs.events("keeper_behind")).toEqual([
      expect.objectContaining({ level: 40, reason: "behind", processedBlock: "100", reportedHead: "103" }),
    ]);
    f.progressed(103n);
    await f.check();
    expect(f.verdict().state).toBe("current");
    expect(logs.events("keeper_current")).toEqual([expect.objectContaining({ processedBlock: "103" })]);
  });

  it("no endpoint answers: unhealthy once the limit passed, with the endpoints' error (never a key or URL)", async () => {
    const { f, logs, advance } = fixture(() => [Promise.reject(new Error("connect ECONNREFUSED"))]);
    for (let i = 0; i < 14; i++) {
      advance(5_000);
      await f.check();
    }
    expect(f.verdict().state).toBe("no_answer");
    expect(logs.events("keeper_behind")).toEqual([
      expect.objectContaining({ reason: "no_answer", error: expect.stringMatching(/ECONNREFUSED/) }),
    ]);
  });

  it("drives /healthz and perp_keeper_head_behind", async () => {
    let head = 100n;
    const { f, advance } = fixture(() => [Promise.resolve(head)]);
    const s: OpsSources = {
      adapter: "perp-engine",
      book: new Book(),
      watcher: { processedBlock: 100n, latestTick: undefined },
      executor: { stats: {} as ExecutorStats, pendingAttempts: [] },
      signers: [],
      startHead: 100n,
      backfilled: () => true,
      rewardsEarned: () => 0n,
      startedAt: performance.now() - 600_000, // the old rule would say: no head for 600 s
      atRiskDistance: 0.05,
      freshness: () => f.verdict(),
    };
    const registry = keeperMetrics(s);
    const behind = async () => (await registry.getSingleMetric("perp_keeper_head_behind")?.get())?.values[0]?.value;
    advance(70_000);
    await f.check();
    expect(health(s, { maxHeadAgeSeconds: 60, maxPendingBlocks: 9n })).toMatchObject({
      healthy: true,
      chain: "quiet",
      reportedHead: "100",
    });
    expect(await behind()).toBe(0);
    head = 105n;
    await f.check();
    advance(61_000);
    await f.check();
    const h = health(s, { maxHeadAgeSeconds: 60, maxPendingBlocks: 9n });
    expect(h).toMatchObject({ healthy: false, chain: "behind" });
    expect(h.reasons[0]).toMatch(/^behind: an endpoint reported block 105/);
    expect(await behind()).toBe(1);
    expect((await registry.getSingleMetric("perp_keeper_endpoint_head_block")?.get())?.values[0]?.value).toBe(105);
  });
});
