/**
 * A call's gas, as the simulation finds it: eth_estimateGas's search (many executions), or, where the protocol's
 * contract measures its own gas and returns it (LiquidationProtocol.gasUsedIn: the keeper's Perp v2 liquidator), one
 * eth_call made as the next block will run it. The measure makes a tight gas limit possible: blocks are packed by gas
 * limit, not by gas used, so a padded limit leaves a crash's block space unused.
 */
import { type Address, type Hex, hexToBytes, type PublicClient } from "viem";
import type { LiquidationProtocol } from "../protocol/adapter.ts";
import type { Tick } from "../watcher/watcher.ts";

/** A measured call's limit: its gas with this margin (percent) ... */
export const MEASURED_MARGIN_PERCENT = 110n;
/** ... and this headroom (the 1/64 each nested call keeps back, a storage slot warm in the simulation but cold). */
export const MEASURED_HEADROOM = 150_000n;

/** What a transaction pays before its code runs: 21000 and its calldata (EIP-2028: 16 a non-zero byte, 4 a zero). */
export function intrinsicGas(data: Hex): bigint {
  let gas = 21_000n;
  for (const byte of hexToBytes(data)) gas += byte === 0 ? 4n : 16n;
  return gas;
}

export interface CallGas {
  /** The gas the call takes (measured: its intrinsic gas included). */
  readonly raw: bigint;
  /** Whether the call measured it (a tight limit from it), or eth_estimateGas guessed it (floors and multiplier). */
  readonly measured: boolean;
  /** The protocol's worst case, known without a simulation (LiquidationProtocol.plannedGas): the limit itself. */
  readonly planned?: boolean;
}

/**
 * The gas of `data` sent by `from` to the protocol. Measured: one eth_call with `simulationGas`, run as the next
 * block will run it (block overrides: the head's number + 1, and the time the tick forecasts, else a second later):
 * on the head's own block a call finds the head's once-a-block work done (Perp v2's funding update of each market)
 * and measures short. A call that reverts throws, as eth_estimateGas does, for the caller to refuse it.
 */
export async function callGas(
  client: PublicClient,
  protocol: Pick<LiquidationProtocol, "address" | "gasUsedIn">,
  from: Address | undefined,
  data: Hex,
  tick: Pick<Tick, "ahead" | "blockNumber" | "timestamp">,
  simulationGas: bigint,
  value = 0n,
): Promise<CallGas> {
  const paid = value > 0n ? { value } : {};
  if (protocol.gasUsedIn) {
    const next = tick.ahead ?? { blockNumber: tick.blockNumber + 1n, timestamp: tick.timestamp + 1n };
    const { data: answer } = await client.call({
      ...(from ? { account: from } : {}),
      to: protocol.address,
      data,
      gas: simulationGas,
      ...paid,
      blockOverrides: { number: next.blockNumber, time: next.timestamp },
    });
    const used = answer ? protocol.gasUsedIn(answer, data) : undefined;
    if (used !== undefined && used > 0n && used < simulationGas)
      return { raw: used + intrinsicGas(data), measured: true };
    // an answer that does not say: the estimate
  }
  // at the head the risk model judged, never the node's pending block: there, competitors' pending liquidations of
  // the same targets have already run, and a batch's estimate would cover only skipping them (out of gas when mined)
  return {
    raw: await client.estimateGas({ account: from, to: protocol.address, data, blockTag: "latest", ...paid }),
    measured: false,
  };
}

/** The gas limit of a measured call. */
export function measuredLimit(raw: bigint): bigint {
  return (raw * MEASURED_MARGIN_PERCENT) / 100n + MEASURED_HEADROOM;
}
