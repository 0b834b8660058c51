import { describe, expect, it } from "vitest";
import type { Attempt } from "../../src/executor/attempt.ts";
import { planRecovery } from "../../src/executor/recovery.ts";

const attempt = (nonce: number): Attempt => ({
  id: `a${nonce}`,
  signer: "0x00000000000000000000000000000000000000aa",
  nonce,
  kind: "single",
  targets: [],
  to: "0x00000000000000000000000000000000000000cc",
  data: "0x",
  gas: 1n,
  txs: [],
  status: "pending",
  createdAtBlock: 1n,
});
const ids = (list: readonly Attempt[]) => list.map((a) => a.nonce);

describe("recovery plan at start", () => {
  it("settles what the chain mined, tracks what the pool has, never sends anything twice", () => {
    const plan = planRecovery(
      [attempt(5), attempt(3), attempt(4)],
      { latest: 4, pending: 6 },
      (a) => a.nonce === 5 || a.nonce === 4,
    );
    expect(ids(plan.mined)).toEqual([3]);
    expect(ids(plan.pending)).toEqual([4, 5]);
    expect(plan.lost).toHaveLength(0);
    expect(plan.nextNonce).toBe(6);
  });

  it("keeps a lost attempt below a pending one (its nonce must be filled) and frees one above them all", () => {
    // 10 lost, 11 pending, 12 lost: 10 holds 11 back; 12 never reached the chain
    const plan = planRecovery(
      [attempt(10), attempt(11), attempt(12)],
      { latest: 10, pending: 10 },
      (a) => a.nonce === 11,
    );
    expect(ids(plan.lost)).toEqual([10]);
    expect(ids(plan.pending)).toEqual([11]);
    expect(ids(plan.abandoned)).toEqual([12]);
    expect(plan.nextNonce).toBe(12); // 12 is handed out again
  });

  it("treats a node that cannot answer as 'may have it': tracked, not abandoned", () => {
    const plan = planRecovery([attempt(7)], { latest: 7, pending: 7 }, () => undefined);
    expect(ids(plan.pending)).toEqual([7]);
    expect(plan.abandoned).toHaveLength(0);
    expect(plan.nextNonce).toBe(8);
  });

  it("after a chain reset (a fresh devnet): every journaled attempt above the chain is abandoned", () => {
    const plan = planRecovery([attempt(40), attempt(41)], { latest: 0, pending: 0 }, () => false);
    expect(ids(plan.abandoned)).toEqual([40, 41]);
    expect(plan.nextNonce).toBe(0);
  });
});
