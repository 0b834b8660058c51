import { describe, expect, it } from "vitest";
import { BlockClock } from "../../src/chain/blockClock.ts";

const FAR = 0; // a wall clock far from the chain's: the chain's own estimate stands

describe("BlockClock", () => {
  it("expects the next block one usual interval after the head: the lower median of the last ones", () => {
    const clock = new BlockClock();
    expect(clock.next(1_000n, FAR)).toBe(1_001n); // nothing seen yet: 1 s
    for (const t of [1_000n, 1_015n, 1_016n]) clock.observe(t); // a 15 s jump, then 1 s
    expect(clock.interval()).toBe(1n); // of two, the shorter: never a block forecast 14 s late
    for (const t of [1_018n, 1_020n, 1_022n]) clock.observe(t);
    expect(clock.interval()).toBe(2n); // [1, 2, 2, 2, 15]
    expect(clock.next(1_022n, FAR)).toBe(1_024n);
    clock.observe(1_022n); // a repeat adds nothing
    clock.observe(1_010n); // nor an older head
    expect(clock.interval()).toBe(2n);
  });

  it("shares the time between two heads seen by the blocks between them: a missed head is no long block", () => {
    const clock = new BlockClock();
    // heads 10, 15, 20 (those between never seen), 21, 26: every block 1 s apart (per head seen: 5, 5, 1, 5 s)
    for (const [n, t] of [
      [10n, 1_000n],
      [15n, 1_005n],
      [20n, 1_010n],
      [21n, 1_011n],
      [26n, 1_016n],
    ] as const)
      clock.observe(t, n);
    expect(clock.interval()).toBe(1n);
    expect(clock.next(1_016n, FAR)).toBe(1_017n);
    // a lower block number (a reorganised head) adds nothing, and the next is measured from the last one kept
    clock.observe(1_009n, 19n);
    clock.observe(1_018n, 28n);
    expect(clock.interval()).toBe(1n);
  });

  it("caps the interval at 60 s, and takes the wall clock when it is a little ahead of the estimate", () => {
    const clock = new BlockClock();
    clock.observe(0n);
    clock.observe(500n);
    expect(clock.interval()).toBe(60n);
    const ticking = new BlockClock();
    for (const t of [100n, 102n, 104n]) ticking.observe(t);
    expect(ticking.next(104n, 107_000)).toBe(107n); // 1 s past the estimate of 106: now
    expect(ticking.next(104n, 120_000)).toBe(106n); // 14 s past: the host clock is not trusted
    ticking.clear();
    expect(ticking.interval()).toBe(1n);
  });
});
