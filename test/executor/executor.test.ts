/**
 * The executor against a fake node, journal and signer, with faults injected where a real deployment meets them: a
 * remote signer failing mid-group, a disk refusing the journal write, a receipt lookup erroring, a reorganisation
 * after a cancel. Each test asserts what breaks when its feature is missing.
 */
import { type Hex, parseTransaction } from "viem";
import { describe, expect, it } from "vitest";
import {
  candidate,
  FakeNode,
  fakeProtocol,
  fakeSigner,
  harness,
  position,
  rpcRefusal,
  SIGNER_A,
  settle,
  started,
  tick,
} from "./fakes.ts";

/** What the node was sent: each transaction's nonce and whether it is a liquidation or a cancel. */
function sentTxs(raws: readonly Hex[]) {
  return raws.map((raw) => {
    const tx = parseTransaction(raw);
    return { nonce: tx.nonce as number, purpose: tx.data === undefined || tx.data === "0x" ? "cancel" : "liquidate" };
  });
}

describe("Executor: sending", () => {
  it("a signing failure mid-group gives the nonces back: nothing sent at a hole, no attempt without a transaction", async () => {
    const signer = fakeSigner();
    const h = harness({ signers: [signer] });
    await started(h);
    const [lane] = h.lanes;
    if (!lane) throw new Error("no lane");
    // the first signature after warm-up succeeds, the second fails: the first unit of the group is signed already
    signer.failOn.add(3);
    lane.busy = true; // hold the pump so that three units queue up as one group
    const ps = [position(1), position(2), position(3)];
    h.executor.submit(
      ps.map((p) => candidate(p)),
      tick(100n),
    );
    await new Promise((r) => setTimeout(r, 20));
    lane.busy = false;
    // a fourth unit starts the pump: the group is all four
    ps.push(position(4));
    h.executor.submit([candidate(ps[3] as ReturnType<typeof position>)], tick(100n));
    await settle(h);
    expect(h.log.events()).toContain("executor_error");
    expect(h.node.raws).toHaveLength(0); // the group was not broadcast
    expect(lane.nextNonce).toBe(0); // every nonce of the group given back
    expect(lane.live.size).toBe(0);
    expect(h.executor.pendingAttempts.filter((a) => a.txs.length === 0)).toEqual([]);
    // the positions are free: the next head sends them at nonces 0 to 3 with no hole
    h.executor.submit(
      ps.map((p) => candidate(p)),
      tick(102n),
    );
    await settle(h);
    expect(sentTxs(h.node.raws).map((t) => t.nonce)).toEqual([0, 1, 2, 3]);
    expect(lane.gaps(0)).toEqual([]);
  });

  it("a journal append that fails sends nothing, gives the nonce back and frees the position", async () => {
    const h = harness();
    await started(h);
    const [lane] = h.lanes;
    if (!lane) throw new Error("no lane");
    lane.fake.failNext = 1;
    const p = position(1);
    h.executor.submit([candidate(p)], tick(100n));
    await settle(h);
    expect(h.node.raws).toHaveLength(0);
    expect(h.log.lines.find((l) => l.event === "executor_error")).toMatchObject({ unsent: 1 });
    expect(lane.nextNonce).toBe(0);
    expect(lane.live.size).toBe(0);
    h.executor.submit([candidate(p)], tick(101n));
    await settle(h);
    expect(sentTxs(h.node.raws)).toEqual([{ nonce: 0, purpose: "liquidate" }]);
    // journaled before it was broadcast: the intent and its transaction, then its status
    expect(lane.fake.records.map((r) => r.t)).toEqual(["attempt", "tx", "status"]);
  });

  it("every status change of an attempt reaches its journal (one function changes it and writes it)", async () => {
    const h = harness();
    await started(h);
    const [lane] = h.lanes;
    if (!lane) throw new Error("no lane");
    const p = position(1);
    h.executor.submit([candidate(p)], tick(100n));
    await settle(h);
    const [a] = h.executor.pendingAttempts;
    if (!a) throw new Error("nothing sent");
    h.liquidatable.set(p.key, false);
    h.executor.onHead(tick(101n));
    await settle(h);
    const cancel = a.txs[1];
    if (!cancel) throw new Error("no cancel");
    h.node.mine(cancel.hash, 102n, SIGNER_A, 0);
    h.executor.onHead(tick(102n));
    await settle(h);
    expect(lane.fake.statuses(a.id)).toEqual(["pending", "cancelling", "cancelled"]);
  });
});

describe("Executor: a reorganisation never frees a position a live attempt holds", () => {
  /**
   * The scenario: a cancel mines, the position is planned again and a second attempt is pending; a
   * reorganisation within the recent window must neither free it nor let the next tick send a third liquidation.
   */
  async function cancelThenReplan(receiptAfterReorg: "gone" | "kept" | "error") {
    const h = harness();
    await started(h);
    const [lane] = h.lanes;
    if (!lane) throw new Error("no lane");
    const p = position(1);
    h.executor.submit([candidate(p)], tick(100n));
    await settle(h);
    const [first] = h.executor.pendingAttempts;
    if (!first) throw new Error("nothing sent");
    h.liquidatable.set(p.key, false);
    h.executor.onHead(tick(101n));
    await settle(h);
    const cancel = first.txs[1];
    if (!cancel) throw new Error("no cancel");
    h.node.mine(cancel.hash, 102n, SIGNER_A, 0);
    h.liquidatable.set(p.key, true);
    h.executor.onHead(tick(102n));
    await settle(h);
    expect(first.status).toBe("cancelled");
    expect(h.replanned.flat()).toContain(p.key);
    h.executor.submit([candidate(p)], tick(102n));
    await settle(h);
    const second = h.executor.pendingAttempts.find((a) => a !== first);
    expect(second?.nonce).toBe(1);
    // the reorganisation: the cancel's block is gone, kept, or the node cannot say
    if (receiptAfterReorg === "gone") h.node.unmine(cancel.hash, SIGNER_A, 0);
    if (receiptAfterReorg === "error") h.node.receiptFault = () => new Error("fetch failed");
    h.executor.onReorg();
    await settle(h);
    h.node.receiptFault = undefined;
    for (const block of [103n, 104n]) {
      h.executor.submit([candidate(p)], tick(block));
      h.executor.onHead(tick(block));
      await settle(h);
    }
    const liquidations = sentTxs(h.node.raws).filter((t) => t.purpose === "liquidate");
    return { h, first, second, liquidations, p };
  }

  it("the cancel stays mined: no third liquidation, the second attempt keeps its position", async () => {
    const { h, second, liquidations, p } = await cancelThenReplan("kept");
    expect(liquidations.map((t) => t.nonce)).toEqual([0, 1]);
    expect(h.executor.pendingAttempts).toContain(second);
    expect(second?.targets.map((t) => t.key)).toEqual([p.key]);
  });

  it("the cancel's block is gone: its nonce is tracked again, still no third liquidation", async () => {
    const { h, first, liquidations } = await cancelThenReplan("gone");
    expect(h.log.events()).toContain("liquidation_reorged");
    expect(first.status).not.toBe("cancelled");
    expect(liquidations.map((t) => t.nonce)).toEqual([0, 1]);
  });

  it("the receipt lookup errors: nothing is settled on a guess and nothing sent a third time", async () => {
    const { liquidations } = await cancelThenReplan("error");
    expect(liquidations.map((t) => t.nonce)).toEqual([0, 1]);
  });
});

/** One liquidation sent at head 100 and mined in block 101, the executor past that head. */
async function sentAndMined(h: ReturnType<typeof harness>) {
  await started(h);
  const p = position(1);
  h.executor.submit([candidate(p)], tick(100n));
  await settle(h);
  const [a] = h.executor.pendingAttempts;
  if (!a) throw new Error("nothing sent");
  const hash = a.txs[0]?.hash as Hex;
  h.node.mine(hash, 101n, SIGNER_A, 0);
  h.executor.onHead(tick(101n));
  await settle(h);
  return { h, p, a, hash };
}

describe("Executor: the receipt check after a reorganisation", () => {
  it("an RPC error is not 'still mined': the position stays held and the attempt is looked up again", async () => {
    const { h, p, a, hash } = await sentAndMined(harness());
    expect(a.status).toBe("lost_race");
    h.node.receiptFault = () => new Error("fetch failed");
    h.executor.onReorg();
    await settle(h);
    // the node cannot say whether it is still mined: not freed, so not sent for again
    h.executor.submit([candidate(p)], tick(102n));
    await settle(h);
    expect(sentTxs(h.node.raws).map((t) => t.nonce)).toEqual([0]);
    // it was reorganised away: found at the next head once the node answers
    h.node.receiptFault = undefined;
    h.node.unmine(hash, SIGNER_A, 0);
    h.executor.onHead(tick(103n));
    await settle(h);
    expect(h.log.events()).toContain("liquidation_reorged");
    expect(a.status).toBe("pending");
    h.executor.submit([candidate(p)], tick(104n));
    h.executor.onHead(tick(104n));
    await settle(h);
    expect(sentTxs(h.node.raws).every((t) => t.nonce === 0)).toBe(true);
  });
});

describe("Executor: a reorganised liquidation whose carried prices went stale", () => {
  /**
   * A pull-oracle liquidation mined, then reorganised away after the prices it carries grew too old: the node keeps it
   * in its pool and the next block would mine it again, to revert. It is cancelled when the reorganisation is seen, not
   * at the next head (by then it would be mined).
   */
  async function reorgedAfter(expired: boolean, beforeReorg?: (signer: ReturnType<typeof fakeSigner>) => void) {
    const signer = fakeSigner();
    const { h, a, hash } = await sentAndMined(
      harness({ signers: [signer], protocol: { ...fakeProtocol(), priceExpired: () => expired } }),
    );
    expect(a.status).not.toBe("pending");
    h.node.unmine(hash, SIGNER_A, 0);
    h.node.pool.add(hash); // back in the node's pool, as a reorganisation leaves it
    beforeReorg?.(signer);
    h.executor.onReorg();
    await settle(h);
    return { h, a };
  }

  it("is replaced by a cancel at its nonce as soon as the reorganisation is seen", async () => {
    const { h, a } = await reorgedAfter(true);
    expect(h.log.events()).toContain("liquidation_reorged");
    expect(h.log.events()).toContain("liquidation_price_expired");
    expect(sentTxs(h.node.raws)).toEqual([
      { nonce: 0, purpose: "liquidate" },
      { nonce: 0, purpose: "cancel" },
    ]);
    expect(a.status).toBe("cancelling");
  });

  it("a cancel that cannot be signed then is logged, and the next head's pass cancels it", async () => {
    const { h, a } = await reorgedAfter(true, (signer) => signer.failOn.add(signer.calls + 1));
    expect(h.log.lines.find((l) => l.event === "rpc_error")).toMatchObject({ step: "reorg_cancel" });
    expect(sentTxs(h.node.raws)).toEqual([{ nonce: 0, purpose: "liquidate" }]);
    h.executor.onHead(tick(102n));
    await settle(h);
    expect(sentTxs(h.node.raws)).toEqual([
      { nonce: 0, purpose: "liquidate" },
      { nonce: 0, purpose: "cancel" },
    ]);
    expect(a.status).toBe("cancelling");
  });

  it("one whose prices are still good is tracked again, not cancelled", async () => {
    const { h, a } = await reorgedAfter(false);
    expect(h.log.events()).toContain("liquidation_reorged");
    expect(sentTxs(h.node.raws)).toEqual([{ nonce: 0, purpose: "liquidate" }]);
    expect(a.status).toBe("pending");
  });
});

describe("Executor: gas of a single liquidation", () => {
  it("is its own call's estimate, never the largest seen before", async () => {
    const h = harness();
    await started(h);
    h.node.estimates = [200_000n, 90_000n];
    h.executor.submit([candidate(position(1))], tick(100n));
    await settle(h);
    h.executor.submit([candidate(position(2))], tick(100n));
    await settle(h);
    const gas = h.node.raws.map((raw) => parseTransaction(raw).gas);
    expect(gas).toEqual([240_000n, 108_000n]); // estimate x gasLimitMultiplierPercent (120)
  });
});

describe("Executor: broadcasting to several endpoints", () => {
  it("one refuses, one gives no answer: tracked as pending, its nonce never given back", async () => {
    const refusing = new FakeNode();
    refusing.send = () => rpcRefusal("invalid sender");
    const silent = new FakeNode();
    silent.send = () => new Error("fetch failed");
    const twoEndpoints = harness({ broadcastClients: [refusing.client, silent.client] });
    await started(twoEndpoints);
    const [lane] = twoEndpoints.lanes;
    twoEndpoints.executor.submit([candidate(position(1))], tick(100n));
    await settle(twoEndpoints);
    const [a] = twoEndpoints.executor.pendingAttempts;
    expect(a?.status).toBe("pending");
    expect(lane?.nextNonce).toBe(1);
    expect(twoEndpoints.log.events()).toContain("liquidation_send_uncertain");
    expect(twoEndpoints.log.events()).not.toContain("liquidation_failed");
  });
});
