import PQueue from "p-queue";
import { type Address, type Hex, numberToHex, type PublicClient } from "viem";
import { classifyRpcError, InconsistentAnswerError } from "../chain/errors.ts";
import type { ChainLog } from "../protocol/adapter.ts";

export interface LogRangeOptions {
  /** The contracts whose logs are fetched (one: asked as an address, several: as a list). */
  readonly addresses: readonly Address[];
  readonly fromBlock: bigint;
  readonly toBlock: bigint;
  /** Largest block range asked in one eth_getLogs. */
  readonly maxRange: bigint;
  /** Ranges fetched at once (default 1); they are still delivered one by one, in block order. */
  readonly concurrency?: number;
  /** Called with each range's logs, in block order. */
  readonly onRange: (logs: ChainLog[], fromBlock: bigint, toBlock: bigint) => void;
  /** After `verify`, before `onRange`: what the logs still need (their block times). */
  readonly prepare?: (logs: ChainLog[]) => Promise<void>;
  /** Checks a range's logs before they are handed over (a rejection ends the fetch, nothing of that range applied). */
  readonly verify?: (logs: ChainLog[], fromBlock: bigint, toBlock: bigint) => Promise<void>;
}

/**
 * Fetches every log of an address in [fromBlock, toBlock] in ranges of maxRange blocks, up to `concurrency` ranges
 * at once, and hands them over strictly in block order. A range the provider refuses as too large (or whose answer is
 * too large) is asked again in halves, and the smaller size is kept for the ranges after it; a single block that
 * still fails is an error, as is any other failure: nothing after the failed range is delivered, so the caller
 * retries from where it stands.
 */
export async function fetchLogRanges(client: PublicClient, options: LogRangeOptions): Promise<void> {
  const concurrency = Math.max(1, options.concurrency ?? 1);
  const step = options.maxRange > 0n ? options.maxRange : 1n;
  const ranges: [bigint, bigint][] = [];
  for (let from = options.fromBlock; from <= options.toBlock; from += step) {
    ranges.push([from, from + step - 1n < options.toBlock ? from + step - 1n : options.toBlock]);
  }
  // the provider's limit as learned: a refusal halves it for every range after
  const limit = { blocks: step };
  const fetchRange = async (from: bigint, to: bigint): Promise<ChainLog[]> => {
    const logs: ChainLog[] = [];
    for (let start = from; start <= to; ) {
      const end = start + limit.blocks - 1n < to ? start + limit.blocks - 1n : to;
      try {
        for (const log of await rawLogs(client, options.addresses, start, end)) logs.push(log);
        start = end + 1n;
      } catch (error) {
        if (classifyRpcError(error) === "range_too_large" && end > start) {
          const half = (end - start + 1n) / 2n;
          if (half < limit.blocks) limit.blocks = half;
          continue;
        }
        throw error;
      }
    }
    return logs;
  };
  const queue = new PQueue({ concurrency });
  const inFlight: Promise<ChainLog[]>[] = [];
  let next = 0;
  const fill = () => {
    // a bounded read-ahead: at most twice the concurrency of ranges fetched and not yet delivered
    while (inFlight.length < concurrency * 2 && next < ranges.length) {
      const [from, to] = ranges[next++] as [bigint, bigint];
      const fetched = queue.add(() => fetchRange(from, to)) as Promise<ChainLog[]>;
      fetched.catch(() => {}); // awaited in order below; a later range's failure must not go unhandled
      inFlight.push(fetched);
    }
  };
  try {
    for (const [from, to] of ranges) {
      fill();
      const logs = await (inFlight.shift() as Promise<ChainLog[]>);
      await options.verify?.(logs, from, to);
      await options.prepare?.(logs);
      options.onRange(logs, from, to);
    }
  } finally {
    queue.clear();
  }
}

/**
 * One eth_getLogs, taken as the node answers it (no per-log formatting: the decoder reads hex), after checking its
 * shape: a list of logs of the address asked, inside the range asked. Anything else is the RPC's fault, retried.
 */
async function rawLogs(
  client: PublicClient,
  addresses: readonly Address[],
  from: bigint,
  to: bigint,
): Promise<ChainLog[]> {
  const answer: unknown = await client.request({
    method: "eth_getLogs",
    params: [
      {
        address: addresses.length === 1 ? addresses[0] : [...addresses],
        fromBlock: numberToHex(from),
        toBlock: numberToHex(to),
      },
    ],
  });
  if (!Array.isArray(answer)) {
    throw new InconsistentAnswerError(`eth_getLogs [${from}, ${to}] answered ${JSON.stringify(answer)?.slice(0, 40)}`);
  }
  const lower = new Set(addresses.map((a) => a.toLowerCase()));
  let lastBlock: unknown;
  for (const log of answer as Record<string, unknown>[]) {
    const ok =
      typeof log === "object" &&
      log !== null &&
      typeof log.address === "string" &&
      (lower.has(log.address) || lower.has(log.address.toLowerCase())) &&
      Array.isArray(log.topics) &&
      typeof log.data === "string" &&
      typeof log.blockNumber === "string" &&
      typeof log.logIndex === "string" &&
      typeof log.blockHash === "string" &&
      typeof log.transactionHash === "string";
    if (!ok) throw new InconsistentAnswerError(`eth_getLogs [${from}, ${to}] answered a malformed log`);
    if (log.blockNumber === lastBlock) continue; // the logs of one block come together: checked once
    lastBlock = log.blockNumber;
    const n = BigInt(log.blockNumber as Hex);
    if (n < from || n > to) {
      throw new InconsistentAnswerError(`eth_getLogs [${from}, ${to}] answered a log of block ${n}`);
    }
  }
  return answer as ChainLog[];
}
