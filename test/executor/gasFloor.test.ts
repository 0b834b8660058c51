/**
 * A protocol's gas floor (Perp v2: eth_estimateGas of a batch behind a try/catch is no measure): it is the gas limit
 * itself where it is above the padded estimate, and a batch whose floor is above keeper.batchGasLimit is split, never
 * sent with a gas limit a block might not hold.
 */
import { type Hex, parseTransaction } from "viem";
import { describe, expect, it } from "vitest";
import type { LiquidationProtocol } from "../../src/protocol/adapter.ts";
import { candidate, fakeProtocol, harness, position, settle, started, tick, until } from "./fakes.ts";

const FLOOR = 1_400_000n;

function floored(): LiquidationProtocol {
  return { ...fakeProtocol(), gasFloor: (targets) => FLOOR * BigInt(targets.length) } as LiquidationProtocol;
}

const gasOf = (raw: Hex) => parseTransaction(raw).gas ?? 0n;
const positionsOf = (raw: Hex) => {
  const data = Buffer.from((parseTransaction(raw).data ?? "0x").slice(2), "hex").toString();
  return data.startsWith("batch:") ? data.slice(6).split(",").length : 1;
};

describe("gas floor", () => {
  it("takes the floor as the gas limit over a padded estimate below it, and splits a batch whose floor is too much", async () => {
    const h = harness({
      protocol: floored(),
      batching: true,
      batchGasLimit: 3_000_000n,
      firstBatchPositions: 8,
    });
    await started(h);
    const positions = [1, 2, 3, 4, 5].map(position);
    h.executor.submit(
      positions.map((p) => candidate(p)),
      tick(101n),
    );
    await until(() => h.node.raws.reduce((s, r) => s + positionsOf(r), 0) === 5, 5_000);
    await settle(h);
    const sent = h.node.raws.map((r) => ({ gas: gasOf(r), positions: positionsOf(r) }));
    // every position sent once, in transactions no larger than a batch may be: at most 2 of them at 1.4M each
    expect(sent.reduce((s, t) => s + t.positions, 0)).toBe(5);
    for (const t of sent) {
      expect(t.gas).toBeLessThanOrEqual(3_000_000n);
      // the floor, not the estimate (100k) padded by 120%
      expect(t.gas).toBe(FLOOR * BigInt(t.positions));
    }
    expect(sent.length).toBeGreaterThanOrEqual(3);
  });
});
