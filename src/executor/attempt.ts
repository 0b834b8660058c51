/**
 * The lifecycle of one liquidation transaction, as data: an attempt owns one nonce of one signer and every
 * transaction ever signed at that nonce (the liquidation, its fee replacements, a cancel). Its status changes only
 * through `Attempts.setStatus` (attempts.ts), which applies `transition` and writes the journal record. See
 * src/executor/README.md for the table.
 */
import type { Address, Hex } from "viem";
import { KeeperError } from "../errors.ts";
import type { LiquidationTarget } from "../protocol/adapter.ts";
import type { Fees } from "./fees.ts";

export type AttemptStatus =
  /** Signed and journaled; the broadcast has not answered yet. */
  | "signed"
  /** The node has it (or may: an uncertain broadcast is looked up, then treated as pending until proven dropped). */
  | "pending"
  /** A zero-value self-transfer at the same nonce replaces the liquidation: the targets are no longer wanted. */
  | "cancelling"
  // terminal
  /** Mined and at least one target liquidated by us. */
  | "confirmed"
  /** Mined, but a competitor (or the trader) was first for every target: a normal outcome. */
  | "lost_race"
  /** Mined and reverted for another reason. */
  | "reverted"
  /** The cancel was mined: the nonce is used, nothing was liquidated. */
  | "cancelled"
  /** The nonce was used by a transaction that is not ours (another process with the same key). */
  | "superseded"
  /** Never reached the node; its nonce was given back or filled. */
  | "failed";

const TERMINAL: ReadonlySet<AttemptStatus> = new Set([
  "confirmed",
  "lost_race",
  "reverted",
  "cancelled",
  "superseded",
  "failed",
]);

export function isTerminal(status: AttemptStatus): boolean {
  return TERMINAL.has(status);
}

/** One signed transaction at the attempt's nonce. */
export interface SignedTx extends Fees {
  readonly hash: Hex;
  readonly raw: Hex;
  readonly purpose: "liquidate" | "cancel";
  /** Head block number when it was (last) broadcast: stuck-ness is counted in blocks from here. */
  sentAtBlock: bigint;
}

export interface TargetPlan extends LiquidationTarget {
  /** The reward the risk model (or the batch simulation) expects, WAD collateral. */
  readonly expectedReward: bigint;
}

export interface Attempt {
  readonly id: string;
  readonly signer: Address;
  readonly nonce: number;
  readonly kind: "single" | "batch";
  readonly targets: readonly TargetPlan[];
  /** The liquidation call: to, calldata, gas limit. */
  readonly to: Address;
  readonly data: Hex;
  readonly gas: bigint;
  /** Wei the liquidation sends (a pull oracle's update fee); absent: 0. A cancel sends nothing. */
  readonly value?: bigint;
  /** Every transaction signed at this nonce, oldest first. */
  readonly txs: SignedTx[];
  status: AttemptStatus;
  /** Block it was created at. */
  readonly createdAtBlock: bigint;
  /**
   * The pending oracle update it was prepared on (issue 9, backrun): while that update is pending the attempt is
   * judged at the update's price and never bumped (a bump would order it before the update); cleared when the update
   * lands. Journaled: an attempt still tied to an update nobody follows (after a restart, or the update gone) is
   * cancelled, never bumped over it.
   */
  after?: Hex;
  /** Set once mined: the block and which hash. */
  minedBlock?: bigint;
  minedHash?: Hex;
}

export function latestTx(a: Attempt): SignedTx | undefined {
  return a.txs[a.txs.length - 1];
}

/** The status change rules: from which statuses each status may be entered. */
const ALLOWED: Record<AttemptStatus, readonly AttemptStatus[]> = {
  signed: [],
  pending: ["signed", "pending", "cancelling", "confirmed", "lost_race", "reverted", "cancelled"],
  cancelling: ["signed", "pending", "cancelling"],
  confirmed: ["signed", "pending", "cancelling"],
  lost_race: ["signed", "pending", "cancelling"],
  reverted: ["signed", "pending", "cancelling"],
  cancelled: ["signed", "pending", "cancelling"],
  superseded: ["signed", "pending", "cancelling"],
  failed: ["signed", "pending", "cancelling"],
};

/** A move the attempt's state machine does not allow: the keeper's own bug, never retried, exit 1. */
export class TransitionError extends KeeperError {
  override name = "TransitionError";
  readonly retryable = false;
  readonly exitCode = 1;
}

/**
 * Moves an attempt to `to`. Mined statuses may go back to pending (a reorganisation removed the block). Throws on
 * a change the lifecycle does not allow: a bug, never a chain condition.
 */
export function transition(a: Attempt, to: AttemptStatus): void {
  if (!ALLOWED[to].includes(a.status)) {
    throw new TransitionError(`attempt ${a.id} (nonce ${a.nonce}) cannot go from ${a.status} to ${to}`);
  }
  a.status = to;
  if (to === "pending" || to === "cancelling") {
    a.minedBlock = undefined;
    a.minedHash = undefined;
  }
}
