import type { Hex } from "viem";

/** Where an event sits in the chain: the order in which events are applied. */
export interface LogRef {
  readonly blockNumber: bigint;
  readonly logIndex: number;
  readonly blockHash: Hex;
  readonly transactionHash: Hex;
}

/** Total order of chain events: block, then log index. */
export function compareRefs(a: LogRef, b: LogRef): number {
  if (a.blockNumber !== b.blockNumber) return a.blockNumber < b.blockNumber ? -1 : 1;
  return a.logIndex - b.logIndex;
}
