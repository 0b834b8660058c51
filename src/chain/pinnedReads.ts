/**
 * Read calls made at one block, pinned by its hash (EIP-1898), so that the answers belong to the block whose logs they
 * go with, whatever the chain did since. With Multicall3 it is one eth_call (aggregate3, each call allowed to fail
 * alone); without, one eth_call per read, which the batching transport sends in one HTTP request. One read that fails
 * never hides the others: each result settles on its own. An answer of the wrong shape refutes the endpoint's answer.
 */
import { decodeFunctionResult, encodeFunctionData, type Hex, type PublicClient, toHex } from "viem";
import { multicall3Abi } from "../../abi/Multicall3.ts";
import type { ReadCall } from "../protocol/types.ts";
import { InconsistentAnswerError } from "./errors.ts";

/** A read the chain refused (reverted), or whose answer is not what the call returns. */
export class PinnedReadError extends Error {
  override readonly name = "PinnedReadError";
}

/**
 * The block the calls run in, as a block built on the pinned one would be: its number and time (eth_call's block
 * overrides, served by geth, reth and Anvil). What the next block will see of a view that moves with time.
 */
export interface NextBlock {
  readonly number: bigint;
  readonly time: bigint;
}

export async function readPinned(
  client: PublicClient,
  calls: readonly ReadCall[],
  blockHash: Hex,
  multicall3?: Hex,
  next?: NextBlock,
): Promise<PromiseSettledResult<Hex>[]> {
  if (calls.length === 0) return [];
  const at = { blockHash } as const;
  // eth_call's third parameter is the state override (none), its fourth the block's
  const over = next ? ([{}, { number: toHex(next.number), time: toHex(next.time) }] as const) : ([] as const);
  if (!multicall3) {
    return Promise.allSettled(
      calls.map(async (call) => {
        const answer: unknown = await client.request({
          method: "eth_call",
          params: [{ to: call.to, data: call.data }, at, ...over],
        });
        if (typeof answer !== "string" || !answer.startsWith("0x")) {
          throw new InconsistentAnswerError(`eth_call answered ${JSON.stringify(answer)?.slice(0, 40)}`);
        }
        return answer as Hex;
      }),
    );
  }
  const data = encodeFunctionData({
    abi: multicall3Abi,
    functionName: "aggregate3",
    args: [calls.map((c) => ({ target: c.to, allowFailure: true, callData: c.data }))],
  });
  const answer: unknown = await client.request({ method: "eth_call", params: [{ to: multicall3, data }, at, ...over] });
  if (typeof answer !== "string" || !answer.startsWith("0x")) {
    throw new InconsistentAnswerError(`Multicall3's eth_call answered ${JSON.stringify(answer)?.slice(0, 40)}`);
  }
  const results = decodeFunctionResult({ abi: multicall3Abi, functionName: "aggregate3", data: answer as Hex });
  if (results.length !== calls.length) {
    throw new InconsistentAnswerError(`Multicall3 answered ${results.length} results for ${calls.length} calls`);
  }
  return results.map(
    (r, i): PromiseSettledResult<Hex> =>
      r.success
        ? { status: "fulfilled", value: r.returnData }
        : { status: "rejected", reason: new PinnedReadError(`the call to ${calls[i]?.to} reverted`) },
  );
}
