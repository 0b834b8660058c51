/** Liquidatable positions left open: followed from the first tick that found them, said once per episode. */
import { describe, expect, it } from "vitest";
import { LeftBehind } from "../../src/ops/leftBehind.ts";
import { captureLogs } from "../helpers/logs.ts";

function clock() {
  let t = 1_000_000;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

const at = (key: string, marketId = 0) => ({ key, marketId });

describe("LeftBehind", () => {
  it("ages the oldest position from the first tick that found it, in seconds and blocks", () => {
    const c = clock();
    const lb = new LeftBehind({ warnAfterBlocks: 100n, now: c.now });
    expect(lb.read()).toMatchObject({ count: 0, oldestAgeSeconds: 0, oldestAgeBlocks: 0 });
    lb.update(100n, [at("0:a")]);
    c.advance(12_000);
    lb.update(101n, [at("0:a"), at("1:b", 1)]);
    c.advance(12_000);
    lb.update(102n, [at("0:a"), at("1:b", 1)]);
    const r = lb.read();
    expect(r.count).toBe(2);
    expect([...r.byMarket]).toEqual([
      [0, 1],
      [1, 1],
    ]);
    expect(r.oldestKey).toBe("0:a");
    expect(r.oldestAgeSeconds).toBe(24);
    expect(r.oldestAgeBlocks).toBe(2);
  });

  it("forgets a position a tick no longer finds (liquidated, recovered): found again, it starts over", () => {
    const c = clock();
    const lb = new LeftBehind({ warnAfterBlocks: 100n, now: c.now });
    lb.update(100n, [at("0:a")]);
    c.advance(5_000);
    lb.update(101n, []);
    expect(lb.read()).toMatchObject({ count: 0, oldestAgeSeconds: 0, oldestAgeBlocks: 0 });
    c.advance(5_000);
    lb.update(102n, [at("0:a")]);
    c.advance(1_000);
    expect(lb.read()).toMatchObject({ count: 1, oldestAgeSeconds: 1, oldestAgeBlocks: 0 });
  });

  it("says liquidatable_left_behind once an episode, and liquidatable_cleared when none is left", () => {
    const c = clock();
    const logs = captureLogs();
    const lb = new LeftBehind({ warnAfterBlocks: 3n, now: c.now, log: logs.log });
    for (let b = 100n; b < 103n; b++) lb.update(b, [at("0:a")]);
    expect(logs.events("liquidatable_left_behind")).toHaveLength(0); // 2 blocks old
    for (let b = 103n; b < 110n; b++) lb.update(b, [at("0:a")]);
    expect(logs.events("liquidatable_left_behind")).toEqual([
      expect.objectContaining({ level: 40, positions: 1, oldestKey: "0:a", oldestAgeBlocks: 3, blockNumber: "103" }),
    ]);
    lb.update(110n, []);
    expect(logs.events("liquidatable_cleared")).toEqual([expect.objectContaining({ blockNumber: "110" })]);
    for (let b = 111n; b < 115n; b++) lb.update(b, [at("0:b")]);
    expect(logs.events("liquidatable_left_behind")).toHaveLength(2);
  });

  it("a reorganisation's reset judges again from the next tick", () => {
    const c = clock();
    const lb = new LeftBehind({ warnAfterBlocks: 3n, now: c.now });
    lb.update(100n, [at("0:a")]);
    c.advance(60_000);
    lb.reset();
    lb.update(101n, [at("0:a")]);
    expect(lb.read().oldestAgeSeconds).toBe(0);
  });
});
