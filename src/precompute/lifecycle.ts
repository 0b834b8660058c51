/**
 * What becomes of a pending oracle update at each check (issue 9). Pure: the precomputer supplies what the head and
 * the node say; the answer says whether the liquidations prepared on the update fire, wait, or are unwound.
 *
 * - `landed`: the head's mark price of every market the update feeds is the one it sets (or the node says it is
 *   mined): what was prepared on it is valid now.
 * - `gone`: the node no longer has it and it was not mined (dropped from the pool, or replaced: a transaction of the
 *   same sender at the same nonce took its place).
 * - `expired`: still pending after `maxWaitBlocks` heads: not worth holding nonces and positions for.
 */

export type UpdateVerdict = "wait" | "landed" | "gone" | "expired";

export interface UpdateView {
  /** Head at which the update was first seen. */
  readonly seenAtBlock: bigint;
  /** The head now. */
  readonly head: bigint;
  readonly maxWaitBlocks: bigint;
  /** By market, the mark price (WAD) the update will set. */
  readonly pendingPrices: ReadonlyMap<number, bigint>;
  /** The head's valid mark prices (WAD) by market; undefined: judged between heads (no new prices). */
  readonly headPrices: ReadonlyMap<number, bigint> | undefined;
  /** What the node says of the update's hash: mined, still pending, unknown; undefined: not asked, or no answer. */
  readonly node: "mined" | "pending" | "unknown" | undefined;
}

export function judgeUpdate(v: UpdateView): UpdateVerdict {
  if (v.node === "mined") return "landed";
  if (v.headPrices !== undefined && v.pendingPrices.size > 0) {
    let all = true;
    for (const [marketId, price] of v.pendingPrices) if (v.headPrices.get(marketId) !== price) all = false;
    if (all) return "landed";
  }
  if (v.node === "unknown") return "gone";
  if (v.head - v.seenAtBlock >= v.maxWaitBlocks) return "expired";
  return "wait";
}

/** Another pending transaction of the same sender at the same nonce replaces this one (only one can be mined). */
export function replaces(
  next: { readonly from: string; readonly nonce: bigint; readonly txHash: string },
  previous: { readonly from: string; readonly nonce: bigint; readonly txHash: string },
): boolean {
  return (
    next.txHash !== previous.txHash &&
    next.nonce === previous.nonce &&
    next.from.toLowerCase() === previous.from.toLowerCase()
  );
}
