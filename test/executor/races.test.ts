/**
 * The executor's answers to competitors (issue 18: src/executor/races.ts, planning.ts), on the fake node: a bid on a
 * target of our pending liquidation is outbid while that pays, or ours is withdrawn (a cancel at its nonce) when it
 * does not; planning bids for a contested target and refuses one the reward cannot win; a first-come chain replaces
 * nothing; without bidding nothing answers at all.
 */
import { type Address, type Hex, parseGwei, parseTransaction, toHex } from "viem";
import { describe, expect, it } from "vitest";
import type { BiddingPolicy } from "../../src/executor/bidding.ts";
import type { CompetitorWatch } from "../../src/executor/competitors.ts";
import { FEE_POLICY } from "../helpers/fees.ts";
import { candidate, fakeProtocol, harness, position, settle, started, tick } from "./fakes.ts";

const RIVAL = "0x00000000000000000000000000000000000000bb" as Address;
const BIDDING: BiddingPolicy = { ordering: "priority", profitShareBps: 5_000n, maxPriorityFeePerGas: undefined };
/** Gas priced at 3000 collateral: a 1-collateral reward pays about 3.3e14 wei of gas (some 3,300 gwei at 100k gas). */
const PRICED = { ...FEE_POLICY, gasTokenPrice: 3_000n * 10n ** 18n };

/**
 * The executor, with bidding, on a protocol whose calls spell their targets ("single:<key>" / "batch:<k1>,<k2>"), so
 * that its own pool watch (Races.watch) recognises a rival's.
 */
function racing(bidding: BiddingPolicy = BIDDING) {
  const protocol = {
    ...fakeProtocol(),
    competitorTargets: (input: Hex) => {
      const text = Buffer.from(input.slice(2), "hex").toString();
      const at = text.indexOf(":");
      return at < 0 ? undefined : text.slice(at + 1).split(",");
    },
  };
  const h = harness({ fees: PRICED, bidding, protocol });
  const watch = h.executor.races.watch;
  if (!watch) throw new Error("no pool watch with bidding on");
  return { h, watch };
}

/** The rival's pending single of `key` at this tip. */
function rivalBid(watch: CompetitorWatch, key: string, tip: bigint, n = 1) {
  watch.observe({
    hash: `0x${n.toString(16).padStart(64, "0")}` as Hex,
    from: RIVAL,
    to: "0x00000000000000000000000000000000000000e1",
    input: toHex(`single:${key}`),
    nonce: BigInt(n),
    maxFeePerGas: tip + parseGwei("10"),
    maxPriorityFeePerGas: tip,
  });
}

const txs = (raws: readonly Hex[]) =>
  raws.map((raw) => {
    const tx = parseTransaction(raw);
    return { nonce: tx.nonce, tip: tx.maxPriorityFeePerGas ?? 0n, cancel: tx.data === undefined || tx.data === "0x" };
  });

describe("races for contested targets", () => {
  it("outbids a competitor's bid on our pending liquidation at once, while it pays", async () => {
    const { h, watch } = racing();
    await started(h);
    const p = position(1);
    h.executor.submit([candidate(p)], tick(100n));
    await settle(h);
    const [first] = txs(h.node.raws);
    expect(first?.cancel).toBe(false);
    rivalBid(watch, p.key, (first?.tip ?? 0n) * 3n);
    await settle(h);
    const sent = txs(h.node.raws);
    expect(sent).toHaveLength(2);
    expect(sent[1]).toMatchObject({ nonce: first?.nonce, cancel: false });
    expect(sent[1]?.tip).toBeGreaterThan((first?.tip ?? 0n) * 3n);
    expect(h.log.events()).toContain("liquidation_outbid");
    expect(h.executor.stats.outbid).toBe(1);
  });

  it("withdraws (a cancel at its nonce) when the competitor bids more than the reward pays", async () => {
    const { h, watch } = racing();
    await started(h);
    const p = position(1);
    h.executor.submit([candidate(p)], tick(100n));
    await settle(h);
    rivalBid(watch, p.key, parseGwei("1000000")); // a million gwei: no 1-collateral reward pays that
    await settle(h);
    const sent = txs(h.node.raws);
    expect(sent).toHaveLength(2);
    expect(sent[1]).toMatchObject({ nonce: sent[0]?.nonce, cancel: true });
    expect(h.log.events()).toContain("liquidation_withdrawn");
    expect(h.executor.stats.withdrawn).toBe(1);
  });

  it("planning bids over a contested target's competitor, and refuses one the reward cannot win", async () => {
    const { h, watch } = racing();
    await started(h);
    const [a, b] = [position(1), position(2)];
    rivalBid(watch, a.key, parseGwei("0.5"), 1);
    rivalBid(watch, b.key, parseGwei("1000000"), 2);
    h.executor.submit([candidate(a), candidate(b)], tick(100n));
    await settle(h);
    const sent = txs(h.node.raws);
    expect(sent).toHaveLength(1);
    expect(sent[0]?.tip).toBeGreaterThan(parseGwei("0.5"));
    const refused = h.log.lines.filter((l) => l.event === "liquidation_skipped");
    expect(refused.map((l) => l.reason)).toEqual(["outbid_by_competitor"]);
  });

  it("on a first-come chain a competitor's bid replaces nothing; without bidding the pool is not watched", async () => {
    const { h, watch } = racing({ ...BIDDING, ordering: "fcfs" });
    await started(h);
    const p = position(1);
    h.executor.submit([candidate(p)], tick(100n));
    await settle(h);
    rivalBid(watch, p.key, parseGwei("50"));
    expect(watch.contested).toBe(1); // seen
    await settle(h);
    h.executor.onHead(tick(101n));
    await settle(h);
    expect(txs(h.node.raws)).toHaveLength(1);
    expect(h.log.events()).not.toContain("liquidation_outbid");
    const off = harness({ fees: PRICED, protocol: { ...fakeProtocol(), competitorTargets: () => [] } });
    expect(off.executor.races.watch).toBeUndefined();
  });
});
