/**
 * The follow step for one new head whose parent is the block last processed: one round trip, all pinned to the
 * head's hash. Its logs by block hash (the exchange's, and those of the oracles followed from their logs, see
 * feeds.ts), checked against its bloom (evidence.ts), and the answers of the oracles still read at every head; then
 * the tick the keeper acts on.
 *
 * Invariants: a log of another block than the head refutes the answer; the events are applied whole or undone back
 * to the checkpoint; the head is recorded in the window, and the window pruned at the floor, at every tick.
 */

import type { Address, Hex } from "viem";
import { InconsistentAnswerError, rpcRead } from "../chain/errors.ts";
import { big } from "../ops/logger.ts";
import type { Market } from "../state/book.ts";
import { apply, decodeTrusted } from "./apply.ts";
import { checkBlockLogs } from "./evidence.ts";
import { OracleFeeds } from "./feeds.ts";
import { type OracleReading, readOracles, resolveSource } from "./oracle.ts";
import type { WatcherState } from "./state.ts";
import type { Head } from "./types.ts";

/**
 * A head whose parent is the block last processed: one round trip. Its logs by block hash (the exchange's, and
 * those of the oracles followed from their logs, see feeds.ts), and the answers of the oracles still read at every
 * head, pinned to that hash. A market listed in this very block, or whose proxy logged (a new aggregator behind
 * it), has its oracle resolved and read after (a second round trip, rare).
 */
export async function extend(s: WatcherState, block: Head, markets: Market[], receivedAt: number): Promise<void> {
  const check = s.feeds.checkDue(block.number);
  const oracles = s.feeds.addresses();
  const [logs, reads] = await Promise.all([
    rpcRead("eth_getLogs", () =>
      s.ep.client.getLogs({
        address: oracles.length > 0 ? [s.o.address, ...oracles] : s.o.address,
        blockHash: block.hash,
      }),
    ),
    readAndResolve(s, s.feeds.toRead(markets, check), check ? markets : s.feeds.unresolved(markets), block.hash),
    s.finality.ask(s.ep.client, block.number),
  ]);
  await checkBlockLogs(s, block, oracles.length > 0 ? [s.o.address, ...oracles] : [s.o.address], logs);
  // one pass: every log of the block asked for, the exchange's apart from the oracles'
  const exchangeLogs: typeof logs = [];
  const others: typeof logs = [];
  for (const l of logs) {
    if (l.blockHash !== block.hash || l.blockNumber !== block.number) {
      throw new InconsistentAnswerError(
        `eth_getLogs for block ${block.hash} answered a log of block ${l.blockNumber} (${l.blockHash})`,
      );
    }
    (l.address.toLowerCase() === s.engine ? exchangeLogs : others).push(l);
  }
  const oracleLogs = OracleFeeds.split(others);
  const from = s.checkpoint;
  try {
    apply(s, decodeTrusted(s, exchangeLogs), true, 0n);
  } catch (error) {
    if (from) s.undoAbove(from);
    throw error;
  }
  s.servedBy(block.number, block.number);
  s.processed = block.number;
  s.checkpoint = { number: block.number, hash: block.hash };
  const all = [...s.o.book.markets.values()];
  // listed in this block, or behind a proxy that logged (a new aggregator): resolved and read again; usually none
  const listed = all.length > markets.length ? new Set(markets) : undefined;
  const touched = oracleLogs.touched.size > 0 ? new Set(s.feeds.proxiesTouched(all, oracleLogs)) : undefined;
  const again = listed || touched ? all.filter((m) => listed?.has(m) === false || touched?.has(m.id)) : [];
  if (again.length > 0) {
    for (const [id, read] of await readAndResolve(s, again, again, block.hash)) reads.set(id, read);
  }
  const merged = s.feeds.merge(all, reads, oracleLogs, block.number, check, "head");
  for (const id of merged.mismatched) {
    const market = s.o.book.markets.get(id);
    s.o.log.warn(
      { event: "oracle_logs_mismatch", market: market?.name, blockNumber: big(block.number) },
      `${market?.name} oracle's answer differs from what its logs said: read at every head again`,
    );
  }
  tick(s, block, all, merged.readings, receivedAt);
}

/** Reads these markets' oracles and resolves these sources at a block, in one batch; returns the reads by market. */
export async function readAndResolve(
  s: WatcherState,
  read: readonly Market[],
  resolve: readonly Market[],
  blockHash: Hex,
): Promise<Map<number, PromiseSettledResult<OracleReading>>> {
  const [readings, sources] = await Promise.all([
    readOracles(
      s.ep.client,
      read.map((m) => m.oracle),
      blockHash,
      s.o.multicall3,
    ),
    Promise.all(resolve.map((m) => resolveSource(s.ep.client, m.oracle, blockHash))),
  ]);
  resolve.forEach((m, i) => {
    s.feeds.resolved(m.id, m.oracle, sources[i] as Address);
  });
  return new Map(read.map((m, i) => [m.id, readings[i] as PromiseSettledResult<OracleReading>]));
}

/**
 * Turns the oracle answers read at a head into mark prices (a market whose oracle was refused is left out, and
 * said once) and hands the tick to the keeper.
 */
export function tick(
  s: WatcherState,
  block: Head,
  markets: readonly Market[],
  readings: readonly PromiseSettledResult<OracleReading>[],
  receivedAt: number,
): void {
  const head = block.number;
  const prices = s.prices.at(head, block.timestamp, markets, readings);
  const oracleUpdatedAt = new Map<number, bigint>();
  markets.forEach((m, i) => {
    const r = readings[i];
    if (r?.status === "fulfilled") oracleUpdatedAt.set(m.id, r.value.updatedAt);
  });
  s.window.record(head, block.hash, s.o.book.cursor);
  s.window.prune(s.finality.floor(head));
  s.lastTick = {
    blockNumber: head,
    timestamp: block.timestamp,
    baseFeePerGas: block.baseFeePerGas ?? 0n,
    prices,
    receivedAt,
    oracleUpdatedAt,
  };
  s.o.onTick(s.lastTick);
}
