/**
 * Which candidates go first and how they are grouped into transactions. Pure: a function of the candidates and
 * the batch sizing, no I/O.
 */
import type { Candidate } from "../risk/scan.ts";
import type { TargetPlan } from "./attempt.ts";

/** The targets of a group of candidates, as the protocol addresses them, with the risk model's expected rewards. */
export function targetPlans(group: readonly Candidate[]): TargetPlan[] {
  return group.map((c) => ({
    key: c.position.key,
    trader: c.position.trader,
    marketId: c.position.marketId,
    expectedReward: c.keeperReward,
  }));
}

/** Margin missing below maintenance (requirement - balance), WAD: the larger, the more urgent. */
export function shortfall(c: Candidate): bigint {
  return c.health.maintenanceRequirement - c.health.marginBalance;
}

/** Most underwater first (largest shortfall), then the largest reward, then by key for a stable order. */
export function prioritise(candidates: readonly Candidate[]): Candidate[] {
  return [...candidates].sort((a, b) => {
    const s = shortfall(b) - shortfall(a);
    if (s !== 0n) return s > 0n ? 1 : -1;
    const r = b.keeperReward - a.keeperReward;
    if (r !== 0n) return r > 0n ? 1 : -1;
    return a.position.key < b.position.key ? -1 : a.position.key > b.position.key ? 1 : 0;
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
export function pack(ordered: readonly Candidate[], sizing: BatchSizing): Candidate[][] {
  if (!sizing.batching) return ordered.map((c) => [c]);
  const max = Math.max(1, sizing.maxPositions);
  const groups: Candidate[][] = [];
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
