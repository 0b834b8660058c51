/** The latency histograms, fed by the log's events through the logger's tap, and the tap itself. */
import { describe, expect, it } from "vitest";
import { LATENCY_BUCKETS, Latency, type LatencyName } from "../../src/ops/latency.ts";
import { tapOf } from "../../src/ops/logger.ts";
import { captureLogs } from "../helpers/logs.ts";

const SIGNER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

async function figures(
  l: Latency,
  name: LatencyName,
): Promise<{ count: number; sum: number; le: Map<number, number> }> {
  const values = (await l.histograms.get(name)?.get())?.values ?? [];
  const le = new Map<number, number>();
  let count = 0;
  let sum = 0;
  for (const v of values) {
    if (v.metricName?.endsWith("_bucket")) le.set(Number(v.labels.le), v.value);
    if (v.metricName?.endsWith("_count")) count = v.value;
    if (v.metricName?.endsWith("_sum")) sum = v.value;
  }
  return { count, sum, le };
}

describe("latency histograms", () => {
  it("have buckets for 1 to 12 s blocks, in seconds", () => {
    for (const s of [1, 2, 4, 6, 12]) expect(LATENCY_BUCKETS).toContain(s);
    expect(LATENCY_BUCKETS[0]).toBeLessThan(1);
    const names = [...new Latency().histograms.values()].map((h) => (h as unknown as { name: string }).name);
    expect(names.sort()).toEqual([
      "perp_keeper_broadcast_to_inclusion_seconds",
      "perp_keeper_head_to_tick_seconds",
      "perp_keeper_pending_update_to_broadcast_seconds",
      "perp_keeper_tick_to_broadcast_seconds",
    ]);
  });

  it("head to tick: from the head's receipt to the tick handled", async () => {
    const l = new Latency();
    l.tick(1_000, 1_750);
    l.tick(undefined, 2_000); // a head without its receipt time: not observed
    const f = await figures(l, "head_to_tick");
    expect(f.count).toBe(1);
    expect(f.sum).toBeCloseTo(0.75);
    expect(f.le.get(0.5)).toBe(0);
    expect(f.le.get(1)).toBe(1);
  });

  it("tick to broadcast, pending update to broadcast, and broadcast to inclusion by signer and nonce", async () => {
    const l = new Latency();
    l.tick(undefined, 10_000);
    l.onLog({ event: "liquidation_sent", signer: SIGNER, nonce: 7 }, 10_400);
    l.onLog(
      { event: "liquidation_sent", signer: SIGNER, nonce: 8, afterUpdate: true, msSinceUpdateSeen: 120.5 },
      10_500,
    );
    // a batch's receipt says one line per position: its first counts; another signer's nonce is not ours
    l.onLog({ event: "liquidation_confirmed", signer: SIGNER.toLowerCase(), nonce: 7 }, 22_400);
    l.onLog({ event: "liquidation_confirmed", signer: SIGNER, nonce: 7 }, 22_400);
    l.onLog({ event: "liquidation_confirmed", signer: "0x0000000000000000000000000000000000000001", nonce: 8 }, 22_500);
    l.onLog({ event: "liquidation_lost_race", signer: SIGNER, nonce: 8 }, 13_500);
    const tick = await figures(l, "tick_to_broadcast");
    expect(tick.count).toBe(1);
    expect(tick.sum).toBeCloseTo(0.4);
    const pending = await figures(l, "pending_update_to_broadcast");
    expect(pending.count).toBe(1);
    expect(pending.sum).toBeCloseTo(0.1205);
    const inclusion = await figures(l, "broadcast_to_inclusion");
    expect(inclusion.count).toBe(2);
    expect(inclusion.sum).toBeCloseTo(12 + 3);
    expect(inclusion.le.get(4)).toBe(1);
    expect(inclusion.le.get(12)).toBe(2);
  });

  it("a refused or cancelled broadcast is not followed to inclusion", async () => {
    const l = new Latency();
    l.onLog({ event: "liquidation_sent", signer: SIGNER, nonce: 1 }, 0);
    l.onLog({ event: "liquidation_failed", signer: SIGNER, nonce: 1 }, 10);
    l.onLog({ event: "liquidation_confirmed", signer: SIGNER, nonce: 1 }, 5_000);
    expect((await figures(l, "broadcast_to_inclusion")).count).toBe(0);
  });
});

describe("the logger's tap", () => {
  it("hands each event line, with its level, to listeners; children share it; removal stops it", () => {
    const logs = captureLogs();
    const tap = tapOf(logs.log);
    expect(tap).toBeDefined();
    const seen: [number, unknown][] = [];
    const off = tap?.on((level, fields) => seen.push([level, fields.event]));
    logs.log.info({ event: "a" }, "x");
    logs.log.child({ part: "executor" }).warn({ event: "b", n: 1 }, "y");
    logs.log.info("no event");
    logs.log.debug({ event: "below_level" }, "z");
    off?.();
    logs.log.info({ event: "c" }, "after removal");
    expect(seen).toEqual([
      [30, "a"],
      [40, "b"],
    ]);
    expect(logs.events("c")).toHaveLength(1); // the line itself is written as ever
  });

  it("a listener that throws never fails the log call", () => {
    const logs = captureLogs();
    tapOf(logs.log)?.on(() => {
      throw new Error("listener bug");
    });
    expect(() => logs.log.warn({ event: "x" }, "y")).not.toThrow();
    expect(logs.events("x")).toHaveLength(1);
  });

  it("feeds a keeper's latency from its own log lines", async () => {
    const logs = captureLogs();
    const l = new Latency();
    tapOf(logs.log)?.on((_level, fields, at) => l.onLog(fields, at));
    logs.log.info({ event: "liquidation_sent", signer: SIGNER, nonce: 3 }, "sent");
    logs.log.info({ event: "liquidation_confirmed", signer: SIGNER, nonce: 3 }, "confirmed");
    const f = await figures(l, "broadcast_to_inclusion");
    expect(f.count).toBe(1);
    expect(f.sum).toBeGreaterThanOrEqual(0);
  });
});
