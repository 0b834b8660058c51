/**
 * The going tip (src/executor/goingTip.ts): the median of the last blocks' percentile tips, so that one block of a
 * bidding war does not price every later liquidation out.
 */
import { describe, expect, it } from "vitest";
import { median, observedTip, TIP_BLOCKS } from "../../src/executor/goingTip.ts";

const gwei = (n: number) => BigInt(n) * 10n ** 9n;

describe("the going tip", () => {
  it("is the median of the last blocks' tips: one block of bids far above the rest does not move it", async () => {
    let asked: { blockCount?: number; blockNumber?: bigint; rewardPercentiles?: number[] } = {};
    const client = {
      getFeeHistory: async (a: typeof asked) => {
        asked = a;
        return { reward: [[gwei(1)], [gwei(2)], [gwei(990)], [gwei(1)], [gwei(3)]] };
      },
    };
    expect(await observedTip(client as never, 40n, 50)).toBe(gwei(2));
    expect(asked).toEqual({ blockCount: TIP_BLOCKS, blockNumber: 40n, rewardPercentiles: [50] });
  });

  it("is undefined when the node gives no tips or fails, and the lower median of an even count", async () => {
    expect(await observedTip({ getFeeHistory: async () => ({ reward: [] }) } as never, 1n, 50)).toBeUndefined();
    expect(await observedTip({ getFeeHistory: async () => ({}) } as never, 1n, 50)).toBeUndefined();
    const failing = {
      getFeeHistory: async () => {
        throw new Error("no fee history");
      },
    };
    expect(await observedTip(failing as never, 1n, 50)).toBeUndefined();
    expect(median([4n, 1n, 3n, 2n])).toBe(2n);
    expect(median([7n])).toBe(7n);
  });
});
