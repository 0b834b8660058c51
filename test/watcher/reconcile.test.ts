/**
 * The follow step's decision table (src/watcher/README.md), row by row, on the pure reconcile: no chain, no I/O.
 * Being behind is never a reorganisation; only another hash at a height the window holds, or a checkpoint the chain
 * no longer has, is.
 */

import type { Hex } from "viem";
import { describe, expect, it } from "vitest";
import { type ReconcileInput, reconcile, remedy, settle } from "../../src/watcher/reconcile.ts";
import type { Checkpoint } from "../../src/watcher/types.ts";

const h = (n: number, fork = "a"): Hex => `0x${fork.repeat(2)}${n.toString(16).padStart(62, "0")}` as Hex;
const blk = (n: number, fork = "a") => ({ number: BigInt(n), hash: h(n, fork), parentHash: h(n - 1, fork) });

/** A window holding these blocks: the newest held at or under a height, as UnfinalizedBlocks.at answers. */
function holding(blocks: readonly Checkpoint[]): (n: bigint) => Checkpoint | undefined {
  return (n) => [...blocks].reverse().find((b) => b.number <= n);
}

const cp: Checkpoint = { number: 100n, hash: h(100) };
function input(head: ReturnType<typeof blk>, over: Partial<ReconcileInput> = {}): ReconcileInput {
  return {
    head,
    checkpoint: cp,
    ticked: true,
    hasMarkets: true,
    caughtUp: true,
    held: holding([
      { number: 90n, hash: h(90) },
      { number: 97n, hash: h(97) },
      { number: 100n, hash: h(100) },
    ]),
    ...over,
  };
}

describe("reconcile", () => {
  it("no checkpoint yet (after a rebuild): gap, indexed from the deployment block", () => {
    expect(reconcile(input(blk(100), { checkpoint: undefined })).kind).toBe("gap");
  });

  it("the head is the checkpoint, ticked at already: duplicate", () => {
    expect(reconcile(input(blk(100))).kind).toBe("duplicate");
  });

  it("the head is the checkpoint, not ticked at yet (after a backfill or a rollback): gap, read at the head", () => {
    expect(reconcile(input(blk(100), { ticked: false })).kind).toBe("gap");
  });

  it("the checkpoint's height with another hash: reorg, no question asked", () => {
    expect(reconcile(input(blk(100, "b"))).kind).toBe("reorg");
  });

  it("a head whose parent is the checkpoint: extend (one round trip)", () => {
    expect(reconcile(input(blk(101))).kind).toBe("extend");
  });

  it("a head on top of the checkpoint that cannot be extended: the chain decides, then gap", () => {
    const cases: Partial<ReconcileInput>[] = [{ ticked: false }, { hasMarkets: false }, { caughtUp: false }];
    for (const over of cases) {
      expect(reconcile(input(blk(101), over))).toEqual({ kind: "maybeReorg", check: cp, otherwise: "gap" });
    }
  });

  it("one ahead but on another parent: the chain decides whether the checkpoint stands", () => {
    expect(reconcile(input(blk(101, "b")))).toEqual({ kind: "maybeReorg", check: cp, otherwise: "gap" });
  });

  it("a head two ahead: gap, once the chain says the checkpoint stands; reorg when it does not", () => {
    const d = reconcile(input(blk(102)));
    expect(d).toEqual({ kind: "maybeReorg", check: cp, otherwise: "gap" });
    if (d.kind !== "maybeReorg") throw new Error("unreachable");
    expect(settle(d, cp.hash)).toBe("gap");
    expect(settle(d, h(100, "b"))).toBe("reorg");
    expect(settle(d, undefined)).toBe("reorg"); // the chain has no block there any more
  });

  it("below the checkpoint at a height the window does not reach: behind, never a reorganisation", () => {
    const held = holding([{ number: 100n, hash: h(100) }]);
    expect(reconcile(input(blk(95), { held })).kind).toBe("behind");
  });

  it("below the checkpoint at a recorded height with the same hash: behind", () => {
    expect(reconcile(input(blk(97))).kind).toBe("behind");
    expect(reconcile(input(blk(97), { ticked: false, hasMarkets: false, caughtUp: false })).kind).toBe("behind");
  });

  it("below the checkpoint at a recorded height with another hash: reorg", () => {
    expect(reconcile(input(blk(97, "b"))).kind).toBe("reorg");
  });

  it("below the checkpoint at an unrecorded height over a held block: behind if that block stands, else reorg", () => {
    const d = reconcile(input(blk(95)));
    const held90 = { number: 90n, hash: h(90) };
    expect(d).toEqual({ kind: "maybeReorg", check: held90, otherwise: "behind" });
    if (d.kind !== "maybeReorg") throw new Error("unreachable");
    expect(settle(d, held90.hash)).toBe("behind");
    expect(settle(d, h(90, "b"))).toBe("reorg");
    expect(settle(d, undefined)).toBe("reorg");
  });

  it("a reorganisation rolls back to a held common ancestor, and rebuilds without one or when a listing goes", () => {
    expect(remedy({ number: 97n, hash: h(97) }, false)).toBe("rollback");
    expect(remedy({ number: 97n, hash: h(97) }, true)).toBe("rebuild");
    expect(remedy(undefined, false)).toBe("rebuild");
  });
});
