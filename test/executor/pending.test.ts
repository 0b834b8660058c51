/**
 * PendingWork (liquidations prepared on a pending oracle update) through the Executor, against a fake node, journal
 * and signer: a simulation that errors, an update gone while its unit waited for a lane, an unwind whose cancel
 * cannot be signed, a held unit fired at a head where its target is no longer liquidatable.
 */
import { type Hex, parseTransaction } from "viem";
import { describe, expect, it } from "vitest";
import type { PendingPlan } from "../../src/executor/unit.ts";
import { candidate, fakeSigner, harness, position, settle, started, tick } from "./fakes.ts";

const UPDATE = `0x${"ab".repeat(32)}` as Hex;

function plan(mode: PendingPlan["mode"], simulate?: PendingPlan["simulate"]): PendingPlan {
  return {
    id: UPDATE,
    mode,
    simulate: simulate ?? (async (calls) => calls.map(() => ({ ok: true, gasUsed: 90_000n, logs: undefined }))),
    seenAt: performance.now(),
    state: "pending",
    held: [],
  };
}

const purposes = (raws: readonly Hex[]) =>
  raws.map((raw) => {
    const tx = parseTransaction(raw);
    return `${tx.nonce}:${tx.data === undefined || tx.data === "0x" ? "cancel" : "liquidate"}`;
  });

describe("PendingWork", () => {
  it("a simulation that errors frees the positions with no cooldown: planned again at once", async () => {
    const h = harness({ tiedVerdict: () => "hold" });
    await started(h);
    const p = position(1);
    h.executor.submit(
      [candidate(p)],
      tick(100n),
      plan("backrun", async () => {
        throw new Error("fetch failed");
      }),
    );
    await settle(h);
    expect(h.log.lines.find((l) => l.event === "liquidation_prepare_failed")).toMatchObject({ reason: "rpc_error" });
    expect(h.node.raws).toEqual([]);
    h.executor.submit([candidate(p)], tick(100n)); // same block: a cooldown would hold it back
    await settle(h);
    expect(purposes(h.node.raws)).toEqual(["0:liquidate"]);
  });

  it("a backrun whose update is gone while it waited for the lane is never signed", async () => {
    const h = harness({ tiedVerdict: () => "hold" });
    await started(h);
    const [lane] = h.lanes;
    if (!lane) throw new Error("no lane");
    lane.busy = true; // the lane is busy: the unit waits in its queue
    const pending = plan("backrun");
    h.executor.submit([candidate(position(1))], tick(100n), pending);
    await new Promise((r) => setTimeout(r, 20));
    pending.state = "gone";
    lane.busy = false;
    h.executor.submit([candidate(position(2))], tick(100n)); // an ordinary unit starts the pump
    await settle(h);
    expect(purposes(h.node.raws)).toEqual(["0:liquidate"]);
    expect(h.executor.pendingAttempts.map((a) => a.targets[0]?.key)).toEqual([position(2).key]);
  });

  it("unwind replaces every attempt tied to a gone update by a cancel; a signer fault there is logged, not thrown", async () => {
    const signer = fakeSigner();
    const h = harness({ tiedVerdict: () => "hold", signers: [signer] });
    await started(h);
    h.executor.submit([candidate(position(1))], tick(100n), plan("backrun"));
    await settle(h);
    const [a] = h.executor.pendingAttempts;
    expect(a?.after).toBe(UPDATE);
    h.executor.onHead(tick(100n)); // held: tied to its update
    await settle(h);
    signer.failOn.add(signer.calls + 1); // the cancel's signature fails
    h.executor.unwind(UPDATE);
    await settle(h);
    expect(h.log.lines.find((l) => l.event === "executor_error")).toMatchObject({ step: "unwind" });
    expect(a?.status).toBe("pending");
    // judged at the next head like any attempt nobody follows: cancelled
    h.liquidatable.set(position(1).key, false);
    h.executor.onHead(tick(101n));
    await settle(h);
    expect(purposes(h.node.raws)).toEqual(["0:liquidate", "0:cancel"]);
    expect(a?.status).toBe("cancelling");
  });

  it("on-block: a held unit fired at a head where its target is no longer liquidatable sends nothing, frees it", async () => {
    const h = harness();
    await started(h);
    const p = position(1);
    const pending = plan("on-block");
    h.executor.submit([candidate(p)], tick(100n), pending);
    await settle(h);
    expect(pending.held).toHaveLength(1);
    expect(h.node.raws).toEqual([]);
    h.liquidatable.set(p.key, false);
    expect(h.executor.fire(pending.held, tick(101n))).toBe(0);
    await settle(h);
    expect(h.node.raws).toEqual([]);
    h.liquidatable.set(p.key, true);
    h.executor.submit([candidate(p)], tick(101n)); // free again
    await settle(h);
    expect(purposes(h.node.raws)).toEqual(["0:liquidate"]);
  });
});

describe("Dispatch beside a held backrun", () => {
  it("ordinary work goes to another signer than one holding a backrun, even one still queued for signing", async () => {
    const h = harness({ tiedVerdict: () => "hold", signers: [fakeSigner(), fakeSigner()] });
    await started(h);
    const [a, b] = h.lanes;
    if (!a || !b) throw new Error("two lanes");
    a.busy = true; // the backrun waits in A's queue, not yet signed
    h.executor.submit([candidate(position(1))], tick(100n), plan("backrun"));
    await settle(h);
    h.executor.submit([candidate(position(2))], tick(100n)); // A holds the backrun: to B
    await settle(h);
    expect([...b.live.values()].map((x) => x.targets[0]?.key)).toEqual([position(2).key]);
    h.executor.submit([candidate(position(3))], tick(100n)); // equal loads: never behind the backrun
    await settle(h);
    expect([...b.live.values()].map((x) => x.targets[0]?.key)).toEqual([position(2).key, position(3).key]);
    a.busy = false;
  });
});
