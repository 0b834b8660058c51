/**
 * The seam between the executor and one exchange: how to call its liquidation (single and batched) and how to read
 * what a mined liquidation did. The executor knows nothing else about the protocol; a second exchange is a second
 * adapter beside src/protocol/perpEngine/.
 */
import type { Address, Hex, Log } from "viem";
import type { LogRef } from "../state/events.ts";

/**
 * What one liquidation call addresses, as the protocol addresses it. A target is not an account: a PerpEngine target
 * is its position (target = account), a Perp v2 target is one market of a trader's cross-margin account, with a size.
 * Journals, claims and cooldowns key on the target; risk keys on the account.
 */
export interface LiquidationTarget {
  /** The target's key: PerpEngine `${marketId}:${trader}`, Perp v2 `${trader}/${marketId}`. */
  readonly key: string;
  /** The account whose health the target belongs to; absent: the key itself (PerpEngine, older journals). */
  readonly account?: string;
  /** The account's owner (log field `trader`). */
  readonly trader: Address;
  /** The market the call addresses (log field `marketId`). */
  readonly marketId: number;
  /** Base size the call asks for, signed like the position; absent: what the contract allows. */
  readonly size?: bigint;
}

/** The account a target belongs to. */
export function accountOf(target: LiquidationTarget): string {
  return target.account ?? target.key;
}

/**
 * A liquidatable target as the risk model hands it to the executor: exchange-neutral. `state` is the book's record
 * of the target when found; cooldowns and hold-backs last while the book holds that same record.
 */
export interface Finding {
  readonly target: LiquidationTarget;
  readonly state: object;
  /** Requirement minus balance, quote WAD: the larger, the more urgent. */
  readonly shortfall: bigint;
  /** What the keeper expects to earn from it, quote WAD. */
  readonly expectedReward: bigint;
}

/** What a mined liquidation transaction did to one target. */
export type TargetOutcome =
  | { readonly kind: "liquidated"; readonly keeper: Address; readonly reward: bigint; readonly badDebt: bigint }
  /** The batch call skipped it: no position any more (someone was first, or it closed), or not liquidatable. */
  | {
      readonly kind: "skipped";
      /** liquidator_capacity: the liquidator could not take it over (Perp v2: its free collateral, CH_NEFCI). */
      readonly reason: "no_position" | "not_liquidatable" | "out_of_gas" | "liquidator_capacity";
    }
  /**
   * Upkeep, not a liquidation: the keeper's own position in the target's market was closed (Perp v2's inventory),
   * or the close was refused (the pool's price beyond the bound; said by the adapter, tried again later).
   */
  | { readonly kind: "closed" }
  | { readonly kind: "close_refused" };

export interface LiquidationProtocol {
  /** The contract every liquidation goes to. */
  readonly address: Address;
  /**
   * The account liquidations are made as, when it is not the signer (Perp v2: the keeper's own liquidator contract,
   * which takes positions over): an outcome is ours when its liquidator is this, or else the signer.
   */
  readonly liquidator?: Address;
  /**
   * The gas limit these targets' transaction gets at least, whatever eth_estimateGas says (its worst case, margin
   * included: the gas multiplier pads the estimate, not the floor): a batch that catches each item's revert (Perp v2's
   * liquidator contract) succeeds with too little gas by letting its items fail out of gas, so its estimate is no
   * measure. Undefined: the estimate stands.
   */
  gasFloor?(targets: readonly LiquidationTarget[]): bigint;
  /**
   * Gas the call may need in the next block beyond what its simulation at the head measured: work the next block
   * allows that the head's state did not (a liquidation window that frees in between). Added to the estimate before
   * its margin. Undefined: none.
   */
  gasExtra?(targets: readonly LiquidationTarget[]): bigint;
  /**
   * The gas limit of a call known without simulating it: a worst case from the protocol's own figures, for a call
   * that cannot revert for its targets (a batch that skips what it cannot do) on an exact model, where a simulation's
   * round trip would only delay the first broadcast. The call is then sent unsimulated with this limit. Undefined
   * (the method, or its answer): simulated.
   */
  plannedGas?(targets: readonly LiquidationTarget[], data: Hex): bigint | undefined;
  /**
   * The most gas a single liquidation of one target can take, on an exact model (keeper.bidding.firstSingles): the
   * most valuable targets of a burst go first as singles, unsimulated, with this limit, before any batch is packed.
   * It may revert only when someone else settled the target first. Undefined: such singles are simulated.
   */
  firstOutGas?(target: LiquidationTarget): bigint;
  /**
   * The gas a call needs by its own return data (a contract of the keeper's that measures itself with gasleft():
   * Perp v2's liquidator): what it used in the simulation, and what the targets it skipped there would use if they are
   * due when it runs (`data`: the call). With it a simulation is one eth_call rather than eth_estimateGas's search, and
   * the gas limit is that gas with a small margin (executor/gas.ts), not the floor. Undefined (the method, or its
   * answer): the estimate and the floor.
   */
  gasUsedIn?(returnData: Hex, data: Hex): bigint | undefined;
  /** Calldata of a single liquidation. */
  encodeSingle(target: LiquidationTarget): Hex;
  /** Calldata of a batch, or undefined when the protocol has no batch call. */
  encodeBatch?(targets: readonly LiquidationTarget[]): Hex;
  /**
   * Wei the call for these targets sends, as last encoded (a pull oracle's update fee for the price updates the
   * calldata carries: call it right after encodeSingle/encodeBatch). Undefined (the method): 0.
   */
  value?(targets: readonly LiquidationTarget[]): bigint;
  /**
   * Whether a call's attached prices (a pull oracle's update bytes) are too old for the block after this head: a
   * pending transaction that carries them would revert, so it is cancelled and its targets planned again with fresh
   * prices, never bumped as it is. Undefined (the method, or a call it does not know): they never expire.
   */
  priceExpired?(data: Hex): boolean | undefined;
  /**
   * By target key, what the transaction's logs say happened. `from`: the transaction's sender, for exchanges whose
   * events do not name the keeper (Synthetix-shaped: the reward goes to msg.sender).
   */
  outcomes(logs: readonly Log[], from?: Address): Map<string, TargetOutcome>;
  /**
   * Whether `value` is less than what a call for these targets must send now (a pull oracle's fee rose since it was
   * signed): a revert of that call is the fee's doing, not the targets', and they are planned again at the next tick
   * rather than after a cooldown. Undefined (the method): never.
   */
  underpaid?(targets: readonly LiquidationTarget[], value: bigint): boolean;
  /** The custom error a reverted call carries (NotLiquidatable, NoPosition, StalePrice...), from its revert data. */
  revertName(data: Hex | undefined): string | undefined;
  /**
   * The target keys a transaction's calldata liquidates (another sender's pending or mined call to the exchange, or
   * to a known liquidator contract): decoded as this adapter encodes its own calls, keyed as its findings are, each
   * once. An empty array: a liquidation call whose calldata names no target of the book (an empty batch, markets the
   * book does not list, or cross-margin's `liquidateFlagged`, whose accounts the contract picks). Undefined: not a
   * liquidation call of this exchange (another address, another function, or calldata that does not decode); it
   * never throws. Undefined (the method): competitors are not recognised on this exchange.
   */
  competitorTargets?(input: Hex, to: Address): readonly string[] | undefined;
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

/** A log with the block timestamp some endpoints add (Anvil, geth >= 1.16, reth). */
export type TimedChainLog = ChainLog & {
  readonly address: Address | string;
  readonly blockTimestamp?: bigint | Hex | null | undefined;
};

/** Where a log sits in the chain; a pending log (no block position) is `fail`'s error: it is never indexed. */
export function logRef(log: ChainLog, fail: (message: string) => Error): LogRef {
  const { blockNumber, logIndex, blockHash, transactionHash } = log;
  if (blockNumber === null || logIndex === null || blockHash === null || transactionHash === null) {
    throw fail("log without block position (pending logs are not indexed)");
  }
  return {
    blockNumber: typeof blockNumber === "bigint" ? blockNumber : BigInt(blockNumber),
    logIndex: typeof logIndex === "number" ? logIndex : Number(logIndex),
    blockHash,
    transactionHash,
  };
}
