import { describe, expect, it } from "vitest";
import { judgeUpdate, replaces } from "../../src/precompute/lifecycle.ts";

const base = {
  seenAtBlock: 100n,
  head: 101n,
  maxWaitBlocks: 3n,
  pendingPrices: new Map([[1, 2375n]]),
  headPrices: new Map([[1, 2500n]]),
  mined: false,
} as const;

describe("a pending update's verdict", () => {
  it("waits while its price is not the head's", () => {
    expect(judgeUpdate(base)).toBe("wait");
  });

  it("lands when the head's price of every market it feeds is its own", () => {
    expect(judgeUpdate({ ...base, headPrices: new Map([[1, 2375n]]) })).toBe("landed");
    const two = new Map([
      [1, 2375n],
      [2, 10n],
    ]);
    expect(judgeUpdate({ ...base, pendingPrices: two, headPrices: new Map([[1, 2375n]]) })).toBe("wait");
  });

  it("lands when the node says it is mined, even at another price (a later update in its block)", () => {
    expect(judgeUpdate({ ...base, mined: true })).toBe("landed");
    expect(judgeUpdate({ ...base, mined: true, head: 200n })).toBe("landed"); // landed beats expired
  });

  it("expires after maxWaitBlocks heads", () => {
    expect(judgeUpdate({ ...base, head: 102n })).toBe("wait");
    expect(judgeUpdate({ ...base, head: 103n })).toBe("expired");
  });
});

describe("replacement", () => {
  const a = { from: "0xAbC", nonce: 7n, txHash: "0x1" };
  it("same sender and nonce, another hash", () => {
    expect(replaces({ from: "0xabc", nonce: 7n, txHash: "0x2" }, a)).toBe(true);
    expect(replaces({ from: "0xabc", nonce: 7n, txHash: "0x1" }, a)).toBe(false);
    expect(replaces({ from: "0xabc", nonce: 8n, txHash: "0x2" }, a)).toBe(false);
    expect(replaces({ from: "0xdef", nonce: 7n, txHash: "0x2" }, a)).toBe(false);
  });
});
