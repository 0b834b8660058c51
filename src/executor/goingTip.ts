/**
 * The going tip at a head: the median, over the last TIP_BLOCKS blocks, of each block's tip at the configured
 * percentile (eth_feeHistory, one request). One block of a bidding war, ours or others', does not make the going tip
 * for everything after it: with the last block's alone, a war's bids priced every later liquidation as unprofitable.
 */
import type { PublicClient } from "viem";

/** Blocks whose tips make the going tip (their median). */
export const TIP_BLOCKS = 5;

/** The going tip observed up to `blockNumber`, wei; undefined when the node gave none (or failed). */
export async function observedTip(
  client: Pick<PublicClient, "getFeeHistory">,
  blockNumber: bigint,
  percentile: number,
): Promise<bigint | undefined> {
  try {
    const history = await client.getFeeHistory({
      blockCount: TIP_BLOCKS,
      blockNumber,
      rewardPercentiles: [percentile],
    });
    return median((history.reward ?? []).map((r) => r[0]).filter((t): t is bigint => t !== undefined));
  } catch {
    return undefined;
  }
}

/** The lower median; undefined for none. */
export function median(values: readonly bigint[]): bigint | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return sorted[Math.floor((sorted.length - 1) / 2)];
}
