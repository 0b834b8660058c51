/**
 * What becomes of a pending oracle update at each check (issue 9). Pure: the precomputer supplies what the head and
 * the node say; the answer says whether the liquidations prepared on the update fire, wait, or are unwound.
 *
 * - `landed`: the head's mark price of every market the update feeds is the one it sets (or the node says it is
 *   mined in a block the head has reached): what was prepared on it is valid now.
 * - `expired`: still pending after `maxWaitBlocks` heads: not worth holding nonces and positions for.
 * An update the node no longer has (dropped, or replaced by its sender) is found between heads, by the precomputer's
 * checks, and unwound there.
 */

export type UpdateVerdict = "wait" | "landed" | "expired";

export interface UpdateView {
  /** Head at which the update was first seen. */
  readonly seenAtBlock: bigint;
  /** The head now. */
  readonly head: bigint;
  readonly maxWaitBlocks: bigint;
  /** By market, the mark price (WAD) the update will set. */
  readonly pendingPrices: ReadonlyMap<number, bigint>;
  /** The head's valid mark prices (WAD) by market. */
  readonly headPrices: ReadonlyMap<number, bigint>;
  /** The node said it is mined, in a block this head has reached. */
  readonly mined: boolean;
}

export function judgeUpdate(v: UpdateView): UpdateVerdict {
  if (v.mined) return "landed";
  if (v.pendingPrices.size > 0) {
    let all = true;
    for (const [marketId, price] of v.pendingPrices) if (v.headPrices.get(marketId) !== price) all = false;
    if (all) return "landed";
  }
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
