import { encodeAbiParameters, encodeFunctionData, type Hex, type PublicClient } from "viem";
import { describe, expect, it } from "vitest";
import { perpV2LiquidatorAbi } from "../../abi/PerpV2Liquidator.ts";
import { callGas, intrinsicGas, MEASURED_HEADROOM, measuredLimit } from "../../src/executor/gas.ts";
import { liquidatorGasUsed } from "../../src/protocol/perpV2/adapter.ts";

const TO = "0x00000000000000000000000000000000000000aa";
const FROM = "0x00000000000000000000000000000000000000bb";
const HEAD = { blockNumber: 10n, timestamp: 1_000n };
const answer = (count: bigint, used: bigint, done = (1n << count) - 1n): Hex =>
  encodeAbiParameters([{ type: "uint256" }, { type: "uint256" }, { type: "uint256" }], [count, used, done]);
const A = "0x00000000000000000000000000000000000000a1";
const B = "0x00000000000000000000000000000000000000b2";
const BASE = "0x00000000000000000000000000000000000000c3";
/** liquidateBatch of A, A's follow-up, and B. */
const batch: Hex = encodeFunctionData({
  abi: perpV2LiquidatorAbi,
  functionName: "liquidateBatch",
  args: [
    [
      { trader: A, baseToken: BASE, positionSize: 0n },
      { trader: A, baseToken: BASE, positionSize: 0n },
      { trader: B, baseToken: BASE, positionSize: 0n },
    ],
  ],
});

function node(reply: { call?: Hex | Error; estimate?: bigint }) {
  const calls: Record<string, unknown>[] = [];
  let estimates = 0;
  const client = {
    async call(args: Record<string, unknown>) {
      calls.push(args);
      if (reply.call instanceof Error) throw reply.call;
      return { data: reply.call };
    },
    async estimateGas() {
      estimates++;
      return reply.estimate ?? 0n;
    },
  } as unknown as PublicClient;
  return { client, calls, estimates: () => estimates };
}

describe("a call's gas", () => {
  it("intrinsic gas: 21000 and 4 per zero byte, 16 per other byte", () => {
    expect(intrinsicGas("0x")).toBe(21_000n);
    expect(intrinsicGas("0x0001ff00")).toBe(21_000n + 4n + 16n + 16n + 4n);
  });

  it("measured by one eth_call at the forecast block when the contract returns its gas; no estimate", async () => {
    const n = node({ call: answer(3n, 2_500_000n) });
    const protocol = { address: TO, gasUsedIn: liquidatorGasUsed } as const;
    const data = batch;
    const ahead = { prices: new Map(), blockNumber: 11n, timestamp: 1_001n };
    const gas = await callGas(
      n.client,
      protocol,
      FROM,
      data,
      { ahead, blockNumber: 10n, timestamp: 1_000n },
      30_000_000n,
    );
    expect(gas).toEqual({ raw: 2_500_000n + intrinsicGas(data), measured: true });
    expect(n.estimates()).toBe(0);
    expect(n.calls[0]).toMatchObject({ to: TO, data, gas: 30_000_000n, blockOverrides: { number: 11n, time: 1_001n } });
    // the limit: a small margin, far under the 1.4x an estimate gets
    expect(measuredLimit(gas.raw)).toBeLessThan((gas.raw * 12n) / 10n + MEASURED_HEADROOM);
    expect(measuredLimit(gas.raw)).toBeGreaterThan(gas.raw + MEASURED_HEADROOM);
    // no forecast: the block after the head, a second later (never the head's own block, its once-a-block work done)
    await callGas(n.client, protocol, FROM, data, { blockNumber: 10n, timestamp: 1_000n }, 30_000_000n);
    expect(n.calls[1]?.blockOverrides).toEqual({ number: 11n, time: 1_001n });
  });

  it("an answer that does not say (short, or all the gas given: items ran out) falls back to eth_estimateGas", async () => {
    const protocol = { address: TO, gasUsedIn: liquidatorGasUsed } as const;
    for (const call of ["0x" as Hex, answer(0n, 30_000_000n)]) {
      const n = node({ call, estimate: 700_000n });
      expect(await callGas(n.client, protocol, FROM, batch, HEAD, 30_000_000n)).toEqual({
        raw: 700_000n,
        measured: false,
      });
      expect(n.estimates()).toBe(1);
    }
    // a protocol that does not measure: the estimate alone
    const n = node({ estimate: 90_000n });
    expect(await callGas(n.client, { address: TO }, FROM, "0x", HEAD, 1n)).toEqual({ raw: 90_000n, measured: false });
    expect(n.calls).toEqual([]);
  });

  it("a target the simulation skipped gets a liquidation's gas on top; a skipped follow-up does not", async () => {
    const protocol = { address: TO, gasUsedIn: liquidatorGasUsed } as const;
    const used = 1_000_000n;
    const all = await callGas(node({ call: answer(3n, used) }).client, protocol, FROM, batch, HEAD, 30_000_000n);
    // A liquidated, its follow-up skipped (no longer needed), B skipped (healthy at the simulated state)
    const some = await callGas(
      node({ call: answer(1n, used, 0b001n) }).client,
      protocol,
      FROM,
      batch,
      HEAD,
      30_000_000n,
    );
    const followUpOnly = await callGas(
      node({ call: answer(2n, used, 0b101n) }).client,
      protocol,
      FROM,
      batch,
      HEAD,
      30_000_000n,
    );
    expect(all.measured && some.measured && followUpOnly.measured).toBe(true);
    expect(followUpOnly.raw).toBe(all.raw);
    expect(some.raw - all.raw).toBeGreaterThanOrEqual(1_000_000n); // B's liquidation, should it be due on chain
  });

  it("a call that reverts throws (the caller refuses it)", async () => {
    const n = node({ call: new Error("execution reverted: NotOperator") });
    await expect(
      callGas(n.client, { address: TO, gasUsedIn: liquidatorGasUsed }, FROM, "0x", HEAD, 1_000n),
    ).rejects.toThrow(/NotOperator/);
    expect(n.estimates()).toBe(0);
  });
});
