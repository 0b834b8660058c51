/**
 * A block's logs, as an endpoint answered them, against the block's own logs bloom (the header's `logsBloom`, which
 * the block hash commits to). The bloom cannot prove a log exists (it has false positives), but it proves one does
 * not: an answered log whose address or first topic is not in the bloom is of another block, and an address the
 * bloom says nothing of has no logs there. An address the bloom may hold while the answer has no log of it is
 * suspect: the answer may be a backend's that lacks the block (an empty answer from a load balancer), or the bloom's
 * false positive; the block's receipts tell which (see the watcher).
 *
 * Bloom tests are ethereum-bloom-filters' (the library web3.js uses), not written here again.
 */
import { isContractAddressInBloom, isTopicInBloom } from "ethereum-bloom-filters";
import type { Address, Hex } from "viem";

/** The empty bloom: a block without a single log. */
const EMPTY_BLOOM = `0x${"0".repeat(512)}`;

export interface BloomVerdict {
  /** Answered logs the bloom rules out (address or first topic absent): the answer is not this block's. */
  readonly foreign: number;
  /** Addresses the bloom may hold of which the answer has no log: to be confirmed from the block's receipts. */
  readonly suspect: Address[];
}

export function checkLogsAgainstBloom(
  bloom: Hex,
  addresses: readonly Address[],
  logs: readonly { readonly address?: string; readonly topics: readonly (Hex | null)[] }[],
): BloomVerdict {
  if (bloom === EMPTY_BLOOM) return { foreign: logs.length, suspect: [] };
  let foreign = 0;
  const seen = new Set<string>();
  for (const log of logs) {
    const address = String(log.address).toLowerCase();
    seen.add(address);
    const topic = log.topics[0];
    if (!isContractAddressInBloom(bloom, address) || (topic && !isTopicInBloom(bloom, topic))) foreign++;
  }
  const suspect = addresses.filter((a) => !seen.has(a.toLowerCase()) && isContractAddressInBloom(bloom, a));
  return { foreign, suspect };
}
