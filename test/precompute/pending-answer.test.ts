/**
 * Pending oracle updates decoded from calldata built the way the aggregators' callers build it: updateAnswer, and
 * OCR2 / OCR1 transmit with real ABI-encoded reports. The answer is the median the aggregator would store.
 */
import { encodeAbiParameters, encodeFunctionData, type Hex, parseAbi } from "viem";
import { describe, expect, it } from "vitest";
import { OCR1_TRANSMIT, OCR2_TRANSMIT, pendingAnswer, UPDATE_ANSWER } from "../../src/precompute/pendingAnswer.ts";
import { updateOf } from "../../src/precompute/pendingUpdates.ts";

const ABI = parseAbi([
  "function updateAnswer(int256 answer)",
  "function transmit(bytes32[3] reportContext, bytes report, bytes32[] rs, bytes32[] ss, bytes32 rawVs)",
  "function transmit(bytes report, bytes32[] rs, bytes32[] ss, bytes32 rawVs)",
]);
const word = (n: number) => `0x${n.toString(16).padStart(64, "0")}` as Hex;

function ocr2(observations: bigint[], timestamp = 1_700_000_000): Hex {
  const report = encodeAbiParameters(
    [{ type: "uint32" }, { type: "bytes32" }, { type: "int192[]" }, { type: "int192" }],
    [timestamp, word(0x0102030405), observations, 12345n],
  );
  return encodeFunctionData({
    abi: ABI,
    functionName: "transmit",
    args: [[word(1), word(2), word(3)], report, [word(4), word(5)], [word(6), word(7)], word(8)],
  });
}

function ocr1(observations: bigint[]): Hex {
  const report = encodeAbiParameters(
    [{ type: "bytes32" }, { type: "bytes32" }, { type: "int192[]" }],
    [word(9), word(0x0a0b), observations],
  );
  return encodeFunctionData({ abi: ABI, functionName: "transmit", args: [report, [word(4)], [word(6)], word(8)] });
}

describe("pending oracle answers", () => {
  it("reads MockV3Aggregator.updateAnswer", () => {
    const input = encodeFunctionData({ abi: ABI, functionName: "updateAnswer", args: [237_500_000_000n] });
    expect(input.slice(0, 10)).toBe(UPDATE_ANSWER);
    expect(pendingAnswer(input)).toEqual({ kind: "updateAnswer", answer: 237_500_000_000n });
  });

  it("takes the median of an OCR2 report's observations, as OCR2Aggregator stores it", () => {
    const observations = [199_000_000_000n, 200_000_000_000n, 200_500_000_000n, 201_000_000_000n, 250_000_000_000n];
    const input = ocr2(observations);
    expect(input.slice(0, 10)).toBe(OCR2_TRANSMIT);
    expect(pendingAnswer(input)).toEqual({ kind: "ocr2", answer: 200_500_000_000n, observedAt: 1_700_000_000n });
    // an even count: observations[length / 2], the upper middle
    expect(pendingAnswer(ocr2([1n, 2n, 3n, 4n]))?.answer).toBe(3n);
    // negative answers survive the int192 decoding
    expect(pendingAnswer(ocr2([-5n, -3n, -1n]))?.answer).toBe(-3n);
  });

  it("takes the median of an OCR1 report", () => {
    const input = ocr1([10n, 20n, 30n]);
    expect(input.slice(0, 10)).toBe(OCR1_TRANSMIT);
    expect(pendingAnswer(input)).toEqual({ kind: "ocr1", answer: 20n });
  });

  it("gives nothing for a report the aggregator would refuse, a malformed input, or another call", () => {
    expect(pendingAnswer(ocr2([3n, 1n, 2n]))).toBeUndefined(); // not sorted: the aggregator reverts
    expect(pendingAnswer(ocr2([]))).toBeUndefined();
    expect(pendingAnswer(`${OCR2_TRANSMIT}00ff` as Hex)).toBeUndefined();
    expect(pendingAnswer("0xa9059cbb0000000000000000000000000000000000000000000000000000000000000001")).toBeUndefined();
    expect(pendingAnswer("0x")).toBeUndefined();
  });
});

describe("a node's pending transaction read as an oracle update", () => {
  const aggregator = "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0";
  const input = encodeFunctionData({
    abi: parseAbi(["function updateAnswer(int256)"]),
    functionName: "updateAnswer",
    args: [237_500_000_000n],
  });
  const tx = {
    hash: `0x${"11".repeat(32)}`,
    from: "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266",
    to: aggregator.toLowerCase(),
    input,
    nonce: "0x9",
    gas: "0x30d40",
    maxFeePerGas: "0x4a817c800",
    maxPriorityFeePerGas: "0x77359400",
  };
  const aggregators = new Map([[aggregator.toLowerCase(), [1]]]);

  it("carries the answer, the markets, the sender's nonce and the fees", () => {
    expect(updateOf(tx, aggregators)).toMatchObject({
      kind: "updateAnswer",
      answer: 237_500_000_000n,
      marketIds: [1],
      nonce: 9n,
      maxFeePerGas: 20_000_000_000n,
      maxPriorityFeePerGas: 2_000_000_000n,
      gas: 200_000n,
    });
  });

  it("a legacy transaction's gas price is both its fee cap and its tip", () => {
    const { maxFeePerGas: _, maxPriorityFeePerGas: __, ...legacy } = tx;
    expect(updateOf({ ...legacy, gasPrice: "0x3b9aca00" }, aggregators)).toMatchObject({
      maxFeePerGas: 1_000_000_000n,
      maxPriorityFeePerGas: 1_000_000_000n,
    });
  });

  it("is nothing when mined, to another address, without fees, or setting no answer", () => {
    expect(updateOf({ ...tx, blockNumber: "0x5" }, aggregators)).toBeUndefined();
    expect(updateOf({ ...tx, to: `0x${"22".repeat(20)}` }, aggregators)).toBeUndefined();
    const { maxFeePerGas: _, ...noFee } = tx;
    expect(updateOf(noFee, aggregators)).toBeUndefined();
    expect(updateOf({ ...tx, input: "0x" }, aggregators)).toBeUndefined();
    expect(updateOf(null, aggregators)).toBeUndefined();
  });
});
