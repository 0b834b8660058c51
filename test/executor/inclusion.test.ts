/**
 * The inclusion pass against a fake node and journal: receipts settle what was mined, a lookup that errors settles
 * nothing, a journal that refuses the status record is logged (the settlement stands in memory), and the counters
 * never fall or count one settlement twice across a reorganisation.
 */
import type { Hex } from "viem";
import { describe, expect, it } from "vitest";
import type { Attempt } from "../../src/executor/attempt.ts";
import { Attempts } from "../../src/executor/attempts.ts";
import { Inclusion } from "../../src/executor/inclusion.ts";
import type { NonceLane } from "../../src/executor/lane.ts";
import { type ExecutorOptions, newStats } from "../../src/executor/types.ts";
import type { TargetOutcome } from "../../src/protocol/adapter.ts";
import { FEE_POLICY } from "../helpers/fees.ts";
import { FakeNode, fakeProtocol, lane, memoryLog, position, SIGNER_A, tick } from "./fakes.ts";

function setup(outcome: "liquidated" | "none" = "liquidated") {
  const node = new FakeNode();
  const log = memoryLog();
  const l = lane();
  l.init(0);
  const p = position(1);
  const outcomes = () =>
    new Map<string, TargetOutcome>(
      outcome === "liquidated" ? [[p.key, { kind: "liquidated", keeper: SIGNER_A, reward: 5n, badDebt: 0n }]] : [],
    );
  const o = {
    client: node.client,
    protocol: fakeProtocol(outcomes),
    lanes: [l],
    log,
    fees: FEE_POLICY,
    marketName: () => "ETH-PERP",
    current: () => p,
  } as unknown as ExecutorOptions;
  const attempts = new Attempts(new Map([[SIGNER_A.toLowerCase(), l as NonceLane]]), log);
  const stats = newStats();
  const inclusion = new Inclusion({
    o,
    stats,
    updateStats: { distance: { "0": 0, "1": 0, "2": 0, "3": 0 }, prepared: 0 },
    attempts,
    rebuilding: () => false,
    settled: () => {},
    refreshBalance: async () => {},
    coolDown: () => {},
    describeTargets: () => "a position",
    raced: () => {},
    withdrawn: () => false,
  });
  /** A liquidation of `p` at the lane's next nonce, journaled and pending. */
  const send = async (): Promise<Attempt> => {
    const a = attempts.open(l, {
      nonce: l.take(),
      kind: "single",
      targets: [{ key: p.key, trader: p.trader, marketId: 0, expectedReward: 5n }],
      to: SIGNER_A,
      data: "0x01",
      gas: 100_000n,
      createdAtBlock: 100n,
    });
    const hash = `0x${String(a.nonce + 1).padStart(64, "0")}` as Hex;
    const tx = {
      hash,
      raw: "0x" as Hex,
      purpose: "liquidate" as const,
      maxFeePerGas: 2n,
      maxPriorityFeePerGas: 1n,
      sentAtBlock: 100n,
    };
    a.txs.push(tx);
    await attempts.journalIntents(l, [{ attempt: a, tx }]);
    await attempts.setStatus(a, "pending");
    node.pool.add(hash);
    return a;
  };
  return { node, log, l, p, attempts, stats, inclusion, send, o };
}

describe("Inclusion", () => {
  it("settles a mined liquidation from the block's receipts and journals its status", async () => {
    const { node, l, stats, inclusion, send, attempts } = setup();
    const a = await send();
    inclusion.startAt(100n);
    node.mine(a.txs[0]?.hash as Hex, 101n, SIGNER_A, 0);
    await inclusion.settle(tick(101n));
    expect(a.status).toBe("confirmed");
    expect(a.minedBlock).toBe(101n);
    expect(stats.confirmed).toBe(1);
    expect(l.live.size).toBe(0);
    expect(attempts.claims.size).toBe(0);
    await Promise.resolve();
    expect(l.fake.statuses(a.id)).toEqual(["pending", "confirmed"]);
  });

  it("a receipt lookup that errors settles nothing: the used nonce is not taken for another sender's", async () => {
    const { node, l, inclusion, send, log } = setup();
    const a = await send();
    inclusion.startAt(100n);
    node.nonces.set(SIGNER_A.toLowerCase(), 1); // the nonce is used; whose transaction, the lookup must say
    node.pool.clear();
    node.blockReceipts.clear();
    node.receiptFault = () => new Error("fetch failed");
    await inclusion.settle(tick(101n));
    expect(a.status).toBe("pending"); // not superseded on a failed lookup
    expect(log.events()).not.toContain("liquidation_superseded");
    expect(l.live.get(0)).toBe(a);
    // the lookup answers at the next head: settled then
    node.receiptFault = undefined;
    node.mine(a.txs[0]?.hash as Hex, 101n, SIGNER_A, 0);
    node.blockReceipts.clear();
    await inclusion.settle(tick(102n));
    expect(a.status).toBe("confirmed");
  });

  it("a journal that refuses the status record: the settlement stands, the failure is logged, nothing thrown", async () => {
    const { node, l, inclusion, send, log } = setup();
    const a = await send();
    inclusion.startAt(100n);
    node.mine(a.txs[0]?.hash as Hex, 101n, SIGNER_A, 0);
    l.fake.failNext = 1;
    await inclusion.settle(tick(101n));
    await new Promise((r) => setTimeout(r, 5));
    expect(a.status).toBe("confirmed");
    expect(log.lines.find((x) => x.event === "executor_error")).toMatchObject({ step: "journal" });
  });

  it("counters never fall and one settlement is never counted twice across a reorganisation", async () => {
    const { node, inclusion, send, stats, attempts, l } = setup();
    const a = await send();
    const hash = a.txs[0]?.hash as Hex;
    inclusion.startAt(100n);
    node.mine(hash, 101n, SIGNER_A, 0);
    await inclusion.settle(tick(101n));
    expect(stats.confirmed).toBe(1);
    const gas = stats.gasPaidWei;
    // a reorganisation takes the block away, and the same transaction is mined again in the new chain
    inclusion.untally(a);
    expect(stats.confirmed).toBe(1); // a counter read by Prometheus never goes down
    a.status = "pending";
    attempts.track(l, a);
    node.unmine(hash, SIGNER_A, 0);
    node.mine(hash, 102n, SIGNER_A, 0);
    inclusion.startAt(101n);
    await inclusion.settle(tick(102n));
    expect(a.status).toBe("confirmed");
    expect(stats.confirmed).toBe(1);
    expect(stats.gasPaidWei).toBe(gas);
    // a later liquidation is counted as usual
    const b = await send();
    node.mine(b.txs[0]?.hash as Hex, 103n, SIGNER_A, 1);
    await inclusion.settle(tick(103n));
    expect(stats.confirmed).toBe(2);
  });

  it("keeps mined attempts for the watcher's window, not a fixed 64 blocks", async () => {
    const { node, inclusion, send, o } = setup();
    (o as { reorgWindowBlocks?: (head: bigint) => bigint }).reorgWindowBlocks = () => 8192n;
    const a = await send();
    inclusion.startAt(100n);
    node.mine(a.txs[0]?.hash as Hex, 101n, SIGNER_A, 0);
    await inclusion.settle(tick(101n));
    await inclusion.settle(tick(101n + 1000n)); // 1000 blocks later, well inside a finality lag of 8192
    expect(inclusion.recentAttempts()).toEqual([a]);
    await inclusion.settle(tick(101n + 8193n));
    expect(inclusion.recentAttempts()).toEqual([]);
  });
});
