import { describe, expect, it } from "vitest";
import { batchCapacity, pack, prioritise } from "../../src/executor/planner.ts";
import type { Finding } from "../../src/protocol/adapter.ts";
import { findingOf } from "../../src/protocol/perpEngine/scan.ts";

function candidate(key: string, balance: bigint, requirement: bigint, reward: bigint): Finding {
  return findingOf({
    position: {
      key,
      trader: "0x0000000000000000000000000000000000000001",
      marketId: 0,
      size: 1n,
      openNotional: 1n,
      margin: 1n,
      lastFundingIndex: 0n,
    },
    health: { marginBalance: balance, maintenanceRequirement: requirement, liquidatable: true },
    markPrice: 1n,
    fundingIndex: 0n,
    keeperReward: reward,
  });
}

describe("priority", () => {
  it("puts the most underwater first, then the largest reward, then a stable order", () => {
    const list = [
      candidate("a", 90n, 100n, 5n), // shortfall 10
      candidate("b", -50n, 100n, 1n), // 150
      candidate("c", 0n, 100n, 1n), // 100
      candidate("d", 0n, 100n, 9n), // 100, larger reward
      candidate("e", 0n, 100n, 9n), // tie with d: by key
    ];
    expect(prioritise(list).map((c) => c.target.key)).toEqual(["b", "d", "e", "c", "a"]);
    expect((list[1] as Finding).shortfall).toBe(150n);
  });
});

describe("packing", () => {
  const many = Array.from({ length: 250 }, (_, i) => candidate(`k${String(i).padStart(3, "0")}`, 0n, 1n, 1n));

  it("one transaction each without batching", () => {
    expect(pack(many, { batching: false, maxPositions: 100, firstPositions: 8 })).toHaveLength(250);
  });

  it("a small first batch, then the fewest full batches, in priority order, none over the cap", () => {
    const groups = pack(many, { batching: true, maxPositions: 100, firstPositions: 8 });
    expect(groups[0]).toHaveLength(8);
    expect(groups.length).toBe(1 + Math.ceil(242 / 100));
    expect(groups.every((g) => g.length <= 100)).toBe(true);
    expect(groups.flat().map((c) => c.target.key)).toEqual(many.map((c) => c.target.key));
  });

  it("a burst no larger than the first batch is one batch", () => {
    expect(pack(many.slice(0, 5), { batching: true, maxPositions: 100, firstPositions: 8 })).toHaveLength(1);
  });
});

describe("batch size", () => {
  const gwei = 1_000_000_000n;
  const sizing = { batchGasLimit: 3_000_000n, gasPerPosition: 100_000n, txFeeCap: 10n ** 18n };

  it("the batch gas limit over a position's gas while fees are low", () => {
    expect(batchCapacity({ ...sizing, maxFeePerGas: 50n * gwei })).toBe(30);
    expect(batchCapacity({ ...sizing, txFeeCap: undefined, maxFeePerGas: 10_000n * gwei })).toBe(30);
  });

  it("fewer positions when fees are high: gas x max fee stays within the node's cap", () => {
    // 1 ETH / 400 gwei = 2.5M gas: 25 positions; 1 ETH / 5000 gwei = 200k gas: 2
    expect(batchCapacity({ ...sizing, maxFeePerGas: 400n * gwei })).toBe(25);
    expect(batchCapacity({ ...sizing, maxFeePerGas: 5_000n * gwei })).toBe(2);
    expect(batchCapacity({ ...sizing, maxFeePerGas: 20_000n * gwei })).toBe(0);
  });
});
