/**
 * Oracle updates waiting in the node's pool (issue 9): the pending transactions addressed to a market's aggregator
 * whose calldata sets an answer (pendingAnswer.ts). This is the polling source, `txpool_content`, for nodes that
 * have no `newPendingTransactions` subscription with full transactions. One call per poll; an answer that is not a
 * pool (a node without the txpool namespace) is an InconsistentAnswerError, never a guess.
 */
import type { Address, Hex, PublicClient } from "viem";
import { InconsistentAnswerError } from "../chain/errors.ts";
import { type PendingAnswer, pendingAnswer } from "./pendingAnswer.ts";

export interface PendingUpdate extends PendingAnswer {
  readonly marketId: number;
  readonly aggregator: Address;
  readonly txHash: Hex;
  readonly from: Address;
  readonly nonce: bigint;
}

type PoolTx = { hash?: unknown; to?: unknown; input?: unknown; from?: unknown; nonce?: unknown };

/**
 * The pending answers of these aggregators (lower-cased address -> market id), in the pool's order (by sender,
 * then nonce). Queued transactions (a nonce gap before them) are left out: they cannot be mined next.
 */
export async function pendingOracleUpdates(
  client: PublicClient,
  aggregators: ReadonlyMap<string, number>,
): Promise<PendingUpdate[]> {
  const pool: unknown = await client.request({ method: "txpool_content" as never, params: [] as never });
  const pending = (pool as { pending?: unknown } | null)?.pending;
  if (typeof pending !== "object" || pending === null) {
    throw new InconsistentAnswerError("txpool_content answered no pending pool");
  }
  const updates: PendingUpdate[] = [];
  for (const [sender, byNonce] of Object.entries(pending as Record<string, Record<string, PoolTx>>)) {
    for (const tx of Object.values(byNonce ?? {})) {
      if (typeof tx?.to !== "string" || typeof tx.input !== "string" || typeof tx.hash !== "string") continue;
      const marketId = aggregators.get(tx.to.toLowerCase());
      if (marketId === undefined) continue;
      const answer = pendingAnswer(tx.input as Hex);
      if (!answer) continue;
      updates.push({
        ...answer,
        marketId,
        aggregator: tx.to as Address,
        txHash: tx.hash as Hex,
        from: (typeof tx.from === "string" ? tx.from : sender) as Address,
        nonce: typeof tx.nonce === "string" ? BigInt(tx.nonce) : 0n,
      });
    }
  }
  return updates;
}
