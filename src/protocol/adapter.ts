/**
 * The seam between the executor and one exchange: how to call its liquidation (single and batched) and how to read
 * what a mined liquidation did. The executor knows nothing else about the protocol; a second exchange is a second
 * adapter beside src/protocol/perpEngine.ts.
 */
import type { Address, Hex, Log } from "viem";

/** A position to liquidate, as the protocol addresses it. */
export interface LiquidationTarget {
  /** The book's key (`${marketId}:${trader}`). */
  readonly key: string;
  readonly trader: Address;
  readonly marketId: number;
}

/** What a mined liquidation transaction did to one target. */
export type TargetOutcome =
  | { readonly kind: "liquidated"; readonly keeper: Address; readonly reward: bigint; readonly badDebt: bigint }
  /** The batch call skipped it: no position any more (someone was first, or it closed), or not liquidatable. */
  | { readonly kind: "skipped"; readonly reason: "no_position" | "not_liquidatable" };

export interface LiquidationProtocol {
  /** The contract every liquidation goes to. */
  readonly address: Address;
  /** Calldata of a single liquidation. */
  encodeSingle(target: LiquidationTarget): Hex;
  /** Calldata of a batch, or undefined when the protocol has no batch call. */
  encodeBatch?(targets: readonly LiquidationTarget[]): Hex;
  /** By target key, what the transaction's logs say happened. */
  outcomes(logs: readonly Log[]): Map<string, TargetOutcome>;
  /** The custom error a reverted call carries (NotLiquidatable, NoPosition, StalePrice...), from its revert data. */
  revertName(data: Hex | undefined): string | undefined;
}

/**
 * A log as the keeper receives it: viem's formatted Log, or the node's raw answer (RpcLog: block number and log
 * index as hex), which the backfill takes as it comes to skip viem's per-log formatting.
 */
export type ChainLog = Pick<Log, "topics" | "data"> & {
  readonly blockNumber: bigint | Hex | null;
  readonly logIndex: number | Hex | null;
  readonly blockHash: Hex | null;
  readonly transactionHash: Hex | null;
};
