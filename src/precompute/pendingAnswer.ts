/**
 * The answer a pending oracle transaction will set, read from its calldata before it is mined (issue 9: same-block
 * liquidations). Pure: decoding only; the caller checks the transaction is addressed to a market's aggregator and
 * validates the answer as it validates an on-chain one.
 *
 * - Chainlink's MockV3Aggregator: `updateAnswer(int256 answer)`.
 * - Chainlink OCR2 (OCR2Aggregator): `transmit(bytes32[3] reportContext, bytes report, bytes32[] rs, bytes32[] ss,
 *   bytes32 rawVs)`, the report `abi.encode(uint32 observationsTimestamp, bytes32 rawObservers, int192[]
 *   observations, int192 juelsPerFeeCoin)`. The aggregator takes the median, `observations[length / 2]`, and
 *   reverts unless the observations are sorted: a report it would refuse gives no answer here either.
 * - Chainlink OCR1 (AccessControlledOffchainAggregator): `transmit(bytes report, bytes32[] rs, bytes32[] ss, bytes32
 *   rawVs)`, the report `abi.encode(bytes32 rawReportContext, bytes32 rawObservers, int192[] observations)`, the
 *   same median rule.
 * An OCR aggregator also reverts a median outside its [minAnswer, maxAnswer]; the caller, which knows the feed, checks
 * that bound.
 */
import { decodeAbiParameters, decodeFunctionData, type Hex, parseAbi, toFunctionSelector } from "viem";

const ABI = parseAbi([
  "function updateAnswer(int256 answer)",
  "function transmit(bytes32[3] reportContext, bytes report, bytes32[] rs, bytes32[] ss, bytes32 rawVs)",
  "function transmit(bytes report, bytes32[] rs, bytes32[] ss, bytes32 rawVs)",
]);

export const UPDATE_ANSWER = toFunctionSelector("updateAnswer(int256)");
export const OCR2_TRANSMIT = toFunctionSelector("transmit(bytes32[3],bytes,bytes32[],bytes32[],bytes32)");
export const OCR1_TRANSMIT = toFunctionSelector("transmit(bytes,bytes32[],bytes32[],bytes32)");

export interface PendingAnswer {
  readonly kind: "updateAnswer" | "ocr2" | "ocr1";
  readonly answer: bigint;
  /** The report's observations timestamp (OCR2), when it carries one. */
  readonly observedAt?: bigint;
}

/** The median the aggregator would store, or undefined when it would revert (no observations, not sorted). */
function median(observations: readonly bigint[]): bigint | undefined {
  if (observations.length === 0) return undefined;
  for (let i = 1; i < observations.length; i++) {
    if ((observations[i] as bigint) < (observations[i - 1] as bigint)) return undefined;
  }
  return observations[Math.floor(observations.length / 2)];
}

/** The answer a pending transaction's input would set, or undefined when it sets none (or would revert). */
export function pendingAnswer(input: Hex): PendingAnswer | undefined {
  const selector = input.slice(0, 10).toLowerCase();
  if (selector !== UPDATE_ANSWER && selector !== OCR2_TRANSMIT && selector !== OCR1_TRANSMIT) return undefined;
  try {
    const call = decodeFunctionData({ abi: ABI, data: input });
    if (call.functionName === "updateAnswer") return { kind: "updateAnswer", answer: call.args[0] };
    if (call.args.length === 5) {
      const [timestamp, , observations] = decodeAbiParameters(
        [{ type: "uint32" }, { type: "bytes32" }, { type: "int192[]" }, { type: "int192" }],
        call.args[1],
      );
      const answer = median(observations);
      return answer === undefined ? undefined : { kind: "ocr2", answer, observedAt: BigInt(timestamp) };
    }
    const [, , observations] = decodeAbiParameters(
      [{ type: "bytes32" }, { type: "bytes32" }, { type: "int192[]" }],
      call.args[0],
    );
    const answer = median(observations);
    return answer === undefined ? undefined : { kind: "ocr1", answer };
  } catch {
    return undefined; // malformed: the aggregator would revert
  }
}
