/**
 * Which candidates go first and how they are grouped into transactions. Pure: a function of the candidates and
 * the batch sizing, no I/O.
 */
import type { Finding } from "../protocol/adapter.ts";
import type { TargetPlan } from "./attempt.ts";

/** The targets of a group of findings, as the protocol addresses them, with the risk model's expected rewards. */
export function targetPlans(group: readonly Finding[]): TargetPlan[] {
  return group.map((f) => ({ ...f.target, expectedReward: f.expectedReward }));
}

/** Most underwater first (largest shortfall), then the largest reward, then by key for a stable order. */
export function prioritise(findings: readonly Finding[]): Finding[] {
  return [...findings].sort((a, b) => {
    const s = b.shortfall - a.shortfall;
    if (s !== 0n) return s > 0n ? 1 : -1;
    const r = b.expectedReward - a.expectedReward;
    if (r !== 0n) return r > 0n ? 1 : -1;
    return a.target.key < b.target.key ? -1 : a.target.key > b.target.key ? 1 : 0;
  });
}

export interface BatchSizing {
  /** Batching on and the protocol has a batch call. */
  readonly batching: boolean;
  /** Most positions one batch may hold (from the batch gas cap over the gas one position costs). */
  readonly maxPositions: number;
  /**
   * Positions in the first batch of a burst: a small one, simulated and broadcast quickly, so the most urgent
   * positions do not wait for the simulation of a full batch.
   */
  readonly firstPositions: number;
}

/**
 * Most positions one batch may hold: its gas limit within batchGasLimit, and within what the node's transaction fee
 * cap allows at the max fee a batch would offer now (gas limit x maxFeePerGas <= txFeeCap): the higher the fees, the
 * fewer positions per batch. 0: not even one position fits (a single liquidation is then refused by its fee plan).
 */
export function batchCapacity(o: {
  /** keeper.batchGasLimit. */
  readonly batchGasLimit: bigint;
  /** Gas limit one position adds to a batch (measured gas x the gas limit multiplier). */
  readonly gasPerPosition: bigint;
  /** The max fee per gas a new batch would offer at this head. */
  readonly maxFeePerGas: bigint;
  /** The node's cap on gas x maxFeePerGas, wei; undefined: none. */
  readonly txFeeCap: bigint | undefined;
}): number {
  let gas = o.batchGasLimit;
  if (o.txFeeCap !== undefined && o.maxFeePerGas > 0n && o.txFeeCap / o.maxFeePerGas < gas) {
    gas = o.txFeeCap / o.maxFeePerGas;
  }
  return Number(gas / (o.gasPerPosition > 0n ? o.gasPerPosition : 1n));
}

/**
 * Groups prioritised candidates into transactions: one each without batching; with batching, a small first batch
 * and then full ones, in priority order. A group of one is sent as a single call.
 */
export function pack<T>(ordered: readonly T[], sizing: BatchSizing): T[][] {
  if (!sizing.batching) return ordered.map((c) => [c]);
  const max = Math.max(1, sizing.maxPositions);
  const groups: T[][] = [];
  let i = 0;
  const first = Math.max(1, Math.min(sizing.firstPositions, max));
  if (ordered.length > first) {
    groups.push(ordered.slice(0, first));
    i = first;
  }
  // spread the rest evenly over the fewest batches that hold it
  const rest = ordered.length - i;
  const count = Math.ceil(rest / max);
  for (let g = 0; g < count; g++) {
    const size = Math.ceil((ordered.length - i) / (count - g));
    groups.push(ordered.slice(i, i + size));
    i += size;
  }
  return groups;
}
