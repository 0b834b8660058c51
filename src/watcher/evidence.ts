/**
 * A block's logs, as an endpoint answered them, put to the test of its header's `logsBloom` (the follow step's
 * bloom check, as Ponder does): for a head that extends the last one, and for every block of a short gap. An answer
 * is evidence, not truth.
 *
 * Invariant: a log the bloom rules out, or one of another block than asked, refutes the answer (its endpoint is
 * demoted and the step retried, see WatcherState.refuted); an empty answer where the bloom says logs may be is
 * settled by the block's receipts, asked of another endpoint where there is one.
 */

import type { Address, Hex } from "viem";
import { InconsistentAnswerError } from "../chain/errors.ts";
import type { ChainLog } from "../protocol/adapter.ts";
import { checkLogsAgainstBloom } from "./bloom.ts";
import type { WatcherState } from "./state.ts";
import type { Head } from "./types.ts";

/** A gap of fewer blocks than this, while following, has every block's logs checked against its bloom. */
export const BLOOM_CHECKED_GAP = 64n;

/** The headers of (from, to], by number, from the endpoint the step is pinned to: their blooms check the gap. */
export async function gapBlooms(s: WatcherState, from: bigint, to: bigint): Promise<Map<bigint, Head>> {
  const numbers: bigint[] = [];
  for (let n = from; n <= to; n++) numbers.push(n);
  const blocks = await Promise.all(numbers.map((n) => s.ep.client.getBlock({ blockNumber: n })));
  return new Map(blocks.map((b) => [b.number, b]));
}

/** A range's logs against the blooms of its blocks (see checkBlockLogs): a refuted answer demotes its endpoint. */
export async function checkRange(
  s: WatcherState,
  headers: Map<bigint, Head>,
  logs: ChainLog[],
  from: bigint,
  to: bigint,
): Promise<void> {
  const byBlock = new Map<bigint, ChainLog[]>();
  for (const l of logs) {
    const n = BigInt(l.blockNumber as Hex);
    if (headers.get(n)?.hash !== l.blockHash) {
      s.refuted("logs_of_another_block", `a log of block ${n} with hash ${l.blockHash} in [${from}, ${to}]`);
    }
    byBlock.set(n, [...(byBlock.get(n) ?? []), l]);
  }
  for (let n = from; n <= to; n++) {
    const header = headers.get(n);
    if (header) await checkBlockLogs(s, header, s.o.addresses, byBlock.get(n) ?? []);
  }
}

/**
 * One block's logs of `addresses`, as answered, against its header's bloom: a log the bloom rules out refutes the
 * answer; an address the bloom may hold with no log answered is settled by the block's receipts (asked of another
 * endpoint where there is one): logs there refute the answer, none there make it the bloom's false positive.
 */
export async function checkBlockLogs(
  s: WatcherState,
  block: Head,
  addresses: readonly Address[],
  logs: readonly { readonly topics: readonly (Hex | null)[] }[],
): Promise<void> {
  if (!block.logsBloom) return;
  const verdict = checkLogsAgainstBloom(block.logsBloom, addresses, logs);
  if (verdict.foreign > 0) {
    s.refuted("logs_not_in_bloom", `${verdict.foreign} of the logs answered for block ${block.number} are not its`);
  }
  if (verdict.suspect.length === 0) return;
  const witness = s.eps.ordered().find((e) => e !== s.ep) ?? s.ep;
  const receipts = (await witness.client.request({
    method: "eth_getBlockReceipts",
    params: [block.hash],
  } as never)) as { blockHash?: string; logs?: { address?: string }[] }[] | null;
  if (!Array.isArray(receipts) || receipts.some((r) => r.blockHash !== block.hash)) {
    throw new InconsistentAnswerError(`eth_getBlockReceipts for block ${block.number} answered another block`);
  }
  const suspect = new Set(verdict.suspect.map((a) => a.toLowerCase()));
  const missed = receipts.flatMap((r) => r.logs ?? []).filter((l) => suspect.has(String(l.address).toLowerCase()));
  if (missed.length > 0) {
    s.refuted("logs_missing", `block ${block.number} has ${missed.length} logs its eth_getLogs answer left out`);
  }
}
