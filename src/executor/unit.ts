/** What travels between the executor's parts: a planned unit of work, and the plan of a pending oracle update. */
import type { Address, Hex, Log } from "viem";
import type { TargetPlan } from "./attempt.ts";
import type { FeePlan, Fees } from "./fees.ts";
import type { UnsignedCall } from "./lane.ts";

/** A simulated call's result against a pending update's state (src/precompute/simulate.ts). */
export type PendingCallResult =
  | { readonly ok: true; readonly gasUsed: bigint | undefined; readonly logs: readonly Log[] | undefined }
  | { readonly ok: false; readonly revertData: Hex | undefined; readonly error: string };

/**
 * Liquidations prepared on an oracle update still in the mempool (issue 9). The executor plans them as any others,
 * but simulates them after the update (`simulate`), prices them with `fees` when they must order behind it
 * (backrun), and either sends them at once, tied to the update, or holds them for `fire` (on-block).
 */
export interface PendingPlan {
  /** The update's transaction hash. */
  readonly id: Hex;
  readonly mode: "on-block" | "backrun";
  /** Our calls run after the update, in the block it will be mined in; throws when the RPC gave no answer. */
  readonly simulate: (calls: readonly { from: Address; to: Address; data: Hex }[]) => Promise<PendingCallResult[]>;
  /** Backrun: fees just under the update's, within the policy's ceiling for this liquidation. */
  readonly fees?: (
    ceiling: bigint | undefined,
    baseFeePerGas: bigint,
    cancel: { readonly cap: bigint | undefined; readonly bumpBps: bigint },
  ) => FeePlan | { ok: false; reason: string };
  /** performance.now() when the update was seen. */
  readonly seenAt: number;
  /** Set by the precomputer: a unit prepared after the update landed is sent at once, after it was unwound never. */
  state: "pending" | "landed" | "gone";
  /** On-block: the units prepared, waiting for the update's block. */
  readonly held: PreparedUnit[];
}

/** A group of candidates, simulated and priced, on its way to a lane. */
export interface Unit {
  readonly kind: "single" | "batch";
  readonly targets: TargetPlan[];
  readonly call: UnsignedCall;
  readonly fees: Fees;
  readonly head: bigint;
  tries: number;
  /** Called once its first broadcast has been answered (or it went nowhere): the burst's probe. */
  readonly sent?: () => void;
  /** Backrun: the pending update it is tied to. */
  readonly after?: Hex;
  /** Prepared on a pending update: its plan, whose state says whether the unit may still go. */
  readonly plan?: PendingPlan;
  /** Prepared on a pending update: performance.now() when the update was seen. */
  readonly seenAt?: number;
}

/** A simulated, priced liquidation held for the block of its update (on-block). */
export type PreparedUnit = Unit;
