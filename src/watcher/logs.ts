import type { Address, Log, PublicClient } from "viem";
import { classifyRpcError } from "../chain/errors.ts";

export interface LogRangeOptions {
  readonly address: Address;
  readonly fromBlock: bigint;
  readonly toBlock: bigint;
  /** Largest block range asked in one eth_getLogs. */
  readonly maxRange: bigint;
  /** Called with each range's logs, in block order, before the next range is asked. */
  readonly onRange: (logs: Log[], fromBlock: bigint, toBlock: bigint) => void;
}

/**
 * Fetches every log of an address in [fromBlock, toBlock], range by range, in order. A range the provider
 * refuses as too large (or whose answer is too large) is halved and asked again; a single block that still
 * fails is an error, as is any other failure: the caller retries from where it stands.
 */
export async function fetchLogRanges(client: PublicClient, options: LogRangeOptions): Promise<void> {
  let from = options.fromBlock;
  let range = options.maxRange > 0n ? options.maxRange : 1n;
  while (from <= options.toBlock) {
    const to = from + range - 1n < options.toBlock ? from + range - 1n : options.toBlock;
    let logs: Log[];
    try {
      logs = await client.getLogs({ address: options.address, fromBlock: from, toBlock: to });
    } catch (error) {
      if (classifyRpcError(error) === "range_too_large" && to > from) {
        range = (to - from + 1n) / 2n;
        continue;
      }
      throw error;
    }
    options.onRange(logs, from, to);
    from = to + 1n;
    if (range < options.maxRange) range = range * 2n > options.maxRange ? options.maxRange : range * 2n;
  }
}
