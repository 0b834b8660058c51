/**
 * Oracle updates waiting in the node's pool (issue 9): the pending transactions addressed to a market's aggregator
 * whose calldata sets an answer (pendingAnswer.ts). `updateOf` reads one transaction, as a `newPendingTransactions`
 * notification or `eth_getTransactionByHash` gives it; `pendingOracleUpdates` is the polling source,
 * `txpool_content`, for nodes without that subscription. An answer that is not a pool (a node without the txpool
 * namespace) is an InconsistentAnswerError, never a guess.
 */
import type { Address, Hex, PublicClient } from "viem";
import { InconsistentAnswerError } from "../chain/errors.ts";
import { type PendingAnswer, pendingAnswer } from "./pendingAnswer.ts";

export interface PendingUpdate extends PendingAnswer {
  /** The markets whose oracle this aggregator feeds (usually one). */
  readonly marketIds: readonly number[];
  readonly aggregator: Address;
  readonly txHash: Hex;
  readonly from: Address;
  readonly nonce: bigint;
  /** Its fee cap and tip (a legacy transaction: its gas price in both), wei. */
  readonly maxFeePerGas: bigint;
  readonly maxPriorityFeePerGas: bigint;
  /** The transaction as the node gave it, for simulating it first (eth_simulateV1). */
  readonly input: Hex;
  readonly gas: bigint | undefined;
}

/** Lower-cased aggregator address -> the markets it feeds. */
export type AggregatorMap = ReadonlyMap<string, readonly number[]>;

type RawTx = {
  hash?: unknown;
  to?: unknown;
  input?: unknown;
  from?: unknown;
  nonce?: unknown;
  gas?: unknown;
  gasPrice?: unknown;
  maxFeePerGas?: unknown;
  maxPriorityFeePerGas?: unknown;
  blockNumber?: unknown;
};

function quantity(v: unknown): bigint | undefined {
  if (typeof v !== "string" || !/^0x[0-9a-fA-F]+$/.test(v)) return undefined;
  return BigInt(v);
}

/**
 * The oracle update a node's JSON-RPC transaction carries, or undefined: not to one of these aggregators, sets no
 * answer (or one the aggregator would refuse), already mined, or fields missing.
 */
export function updateOf(raw: unknown, aggregators: AggregatorMap): PendingUpdate | undefined {
  const tx = raw as RawTx | null;
  if (!tx || typeof tx.to !== "string" || typeof tx.input !== "string" || typeof tx.hash !== "string") return undefined;
  if (tx.blockNumber !== undefined && tx.blockNumber !== null) return undefined; // mined already
  const marketIds = aggregators.get(tx.to.toLowerCase());
  if (!marketIds || marketIds.length === 0) return undefined;
  const answer = pendingAnswer(tx.input as Hex);
  if (!answer) return undefined;
  const from = typeof tx.from === "string" ? (tx.from as Address) : undefined;
  const nonce = quantity(tx.nonce);
  const gasPrice = quantity(tx.gasPrice);
  const maxFeePerGas = quantity(tx.maxFeePerGas) ?? gasPrice;
  const maxPriorityFeePerGas = quantity(tx.maxPriorityFeePerGas) ?? gasPrice;
  if (!from || nonce === undefined || maxFeePerGas === undefined || maxPriorityFeePerGas === undefined)
    return undefined;
  return {
    ...answer,
    marketIds,
    aggregator: tx.to as Address,
    txHash: tx.hash as Hex,
    from,
    nonce,
    maxFeePerGas,
    maxPriorityFeePerGas,
    input: tx.input as Hex,
    gas: quantity(tx.gas),
  };
}

/**
 * The pending answers of these aggregators, in the pool's order (by sender, then nonce). Queued transactions (a
 * nonce gap before them) are left out: they cannot be mined next.
 */
export async function pendingOracleUpdates(client: PublicClient, aggregators: AggregatorMap): Promise<PendingUpdate[]> {
  const pool: unknown = await client.request({ method: "txpool_content" as never, params: [] as never });
  const pending = (pool as { pending?: unknown } | null)?.pending;
  if (typeof pending !== "object" || pending === null) {
    throw new InconsistentAnswerError("txpool_content answered no pending pool");
  }
  const updates: PendingUpdate[] = [];
  for (const [sender, byNonce] of Object.entries(pending as Record<string, Record<string, RawTx>>)) {
    for (const tx of Object.values(byNonce ?? {})) {
      const update = updateOf(tx?.from === undefined ? { ...tx, from: sender } : tx, aggregators);
      if (update) updates.push(update);
    }
  }
  return updates;
}
