/**
 * Block times for logs that come without them. An exchange whose events are applied at their block's time (Perp v2:
 * funding accrues by the second) needs each log's `blockTimestamp`; Anvil, geth >= 1.16 and reth put it in eth_getLogs
 * answers, other endpoints do not. Such logs get it from their block's header, fetched by the log's block hash (so
 * a header of a block reorganised away never lends its time to another), one request per block, answered in one
 * HTTP batch by a batching client.
 */
import { type Hex, type PublicClient, toHex } from "viem";
import { InconsistentAnswerError } from "../chain/errors.ts";
import type { ChainLog } from "../protocol/adapter.ts";

type Timed = ChainLog & { blockTimestamp?: bigint | Hex | null };

/** Fills in `blockTimestamp` where a log has none; a header the endpoint does not know or that disagrees throws. */
export async function fillTimestamps(client: PublicClient, logs: readonly ChainLog[]): Promise<void> {
  const missing = new Map<Hex, Timed[]>();
  for (const log of logs as readonly Timed[]) {
    if (log.blockTimestamp !== undefined && log.blockTimestamp !== null) continue;
    if (!log.blockHash) throw new InconsistentAnswerError("eth_getLogs answered a log without its block hash");
    const same = missing.get(log.blockHash);
    if (same) same.push(log);
    else missing.set(log.blockHash, [log]);
  }
  await Promise.all(
    [...missing].map(async ([hash, same]) => {
      const header: unknown = await client.request({ method: "eth_getBlockByHash", params: [hash, false] });
      const h = header as { number?: Hex; timestamp?: Hex; hash?: Hex } | null;
      if (!h || typeof h.timestamp !== "string" || typeof h.number !== "string" || h.hash !== hash) {
        throw new InconsistentAnswerError(`eth_getBlockByHash(${hash}) answered no header of that block`);
      }
      for (const log of same) {
        if (log.blockNumber !== null && BigInt(log.blockNumber) !== BigInt(h.number)) {
          throw new InconsistentAnswerError(`a log of block ${log.blockNumber} names block ${hash} (${h.number})`);
        }
        log.blockTimestamp = h.timestamp;
      }
    }),
  );
}

/** A head's logs take its header's time (the head is at hand). */
export function stampLogs(logs: readonly ChainLog[], timestamp: bigint): void {
  for (const log of logs as readonly Timed[]) {
    if (log.blockTimestamp === undefined || log.blockTimestamp === null) log.blockTimestamp = toHex(timestamp);
  }
}
