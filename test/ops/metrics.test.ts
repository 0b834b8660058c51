/** The health rules and the counters' scrape-time mirroring, on fake keeper parts (no chain). */

import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import type { ExecutorStats } from "../../src/executor/executor.ts";
import { newStats } from "../../src/executor/types.ts";
import { keeperMetrics, type OpsSources } from "../../src/ops/metrics.ts";
import { health } from "../../src/ops/server.ts";
import { Book } from "../../src/protocol/perpEngine/book.ts";
import type { Tick } from "../../src/watcher/watcher.ts";

const SIGNER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8" as const;

function sources(o: { tick?: Tick; pending?: bigint[]; s?: ExecutorStats; backfilled?: boolean } = {}): OpsSources {
  return {
    adapter: "perp-engine",
    book: new Book(),
    watcher: { processedBlock: o.tick?.blockNumber ?? 0n, latestTick: o.tick },
    executor: {
      stats: o.s ?? newStats(),
      pendingAttempts: (o.pending ?? []).map((b) => ({ signer: SIGNER, createdAtBlock: b })),
    },
    signers: [{ address: SIGNER, balance: 10n ** 18n }],
    startHead: 0n,
    backfilled: () => o.backfilled ?? true,
    rewardsEarned: () => 0n,
    startedAt: performance.now(),
    atRiskDistance: 0.05,
  };
}

const tick = (blockNumber: bigint, ageMs = 0): Tick => ({
  blockNumber,
  timestamp: 1n,
  baseFeePerGas: 0n,
  prices: new Map(),
  receivedAt: performance.now() - ageMs,
});

describe("health", () => {
  const limits = { maxHeadAgeSeconds: 2, maxPendingBlocks: 9n };

  it("is healthy with a fresh head and nothing stuck", () => {
    expect(health(sources({ tick: tick(100n), pending: [95n] }), limits)).toMatchObject({ healthy: true, reasons: [] });
  });

  it("fails on a stale head, once the backfill completed", () => {
    expect(health(sources({ tick: tick(100n, 5000) }), limits).reasons[0]).toMatch(/no new head processed for 5 s/);
    expect(health(sources({ tick: tick(100n, 5000), backfilled: false }), limits).healthy).toBe(true);
  });

  it("fails on a transaction unresolved for longer than the limit", () => {
    const h = health(sources({ tick: tick(100n), pending: [90n, 99n] }), limits);
    expect(h.healthy).toBe(false);
    expect(h.reasons[0]).toMatch(/executor wedged: 1 transaction\(s\).*oldest from block 90/);
  });
});

describe("counters", () => {
  it("follow the executor's figures, never down", async () => {
    const s = newStats();
    const registry = keeperMetrics(sources({ s }));
    const value = async (name: string, label: string) =>
      (await registry.getSingleMetric(name)?.get())?.values.find((v) => v.labels.outcome === label)?.value;
    s.confirmed = 3;
    expect(await value("perp_keeper_liquidations_total", "confirmed")).toBe(3);
    s.confirmed = 2; // a reorganisation took one back
    expect(await value("perp_keeper_liquidations_total", "confirmed")).toBe(3);
    s.confirmed = 5;
    expect(await value("perp_keeper_liquidations_total", "confirmed")).toBe(5);
    s.gasPaidWei = 21_000n * 10n ** 9n;
    expect((await registry.getSingleMetric("perp_keeper_gas_spent_wei_total")?.get())?.values[0]?.value).toBe(
      21_000 * 1e9,
    );
  });

  it("perp_keeper_build_info: 1, labelled with the package's version, the commit and the adapter", async () => {
    const registry = keeperMetrics(sources({ s: newStats() }));
    const text = await registry.metrics();
    const version = JSON.parse(readFileSync(resolve(import.meta.dirname, "../../package.json"), "utf8")).version;
    expect(text).toMatch(
      new RegExp(
        `^perp_keeper_build_info\\{version="${version}",commit="[^"]+",adapter="perp-engine",node="v[\\d.]+"\\} 1$`,
        "m",
      ),
    );
  });

  it("every metric name follows Prometheus' conventions: counters end in _total, units are suffixes", async () => {
    const registry = keeperMetrics(sources({ s: newStats() }));
    const metrics = (await registry.getMetricsAsJSON()).filter((m) => !/_(process|nodejs)_/.test(m.name));
    for (const m of metrics) {
      if (String(m.type) === "counter") expect(m.name).toMatch(/_total$/);
      expect(m.name).not.toMatch(/keeper_rewards_total$/); // renamed with its unit: rewards_collateral_total
    }
    expect(metrics.map((m) => m.name)).toContain("perp_keeper_rewards_collateral_total");
  });
});
