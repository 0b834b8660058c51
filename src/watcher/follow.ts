/**
 * The follow step for one new head whose parent is the block last processed: one round trip, all pinned to the
 * head's hash. Its logs by block hash (the exchange's, and those of the oracles followed from their logs, see
 * feeds.ts), checked against its bloom (evidence.ts), and the answers of the oracles still read at every head; then
 * the tick the keeper acts on.
 *
 * Invariants: a log of another block than the head refutes the answer; the events are applied whole or undone back
 * to the checkpoint; the head is recorded in the window, and the window pruned at the floor, at every tick.
 */

import { InconsistentAnswerError, rpcRead } from "../chain/errors.ts";
import type { ChainLog } from "../protocol/adapter.ts";
import { apply, decodeTrusted } from "./apply.ts";
import { checkBlockLogs } from "./evidence.ts";
import type { TickPrices } from "./prices.ts";
import type { WatcherState } from "./state.ts";
import { stampLogs } from "./timestamps.ts";
import type { Head } from "./types.ts";

/**
 * A head whose parent is the block last processed: one round trip. Its logs by block hash (the exchange's, and
 * those the price source follows), and the price source's reads, pinned to that hash. The price source may read
 * again once the head's events are applied (a market listed in this very block: a second round trip, rare).
 */
export async function extend(s: WatcherState, block: Head, receivedAt: number): Promise<void> {
  const addresses = [...s.o.addresses, ...s.o.prices.logAddresses()];
  const [logs, reads] = await Promise.all([
    rpcRead("eth_getLogs", () =>
      s.ep.client.getLogs({ address: addresses.length === 1 ? addresses[0] : addresses, blockHash: block.hash }),
    ),
    s.o.prices.readHead(s.ep.client, block),
    s.finality.ask(s.ep.client, block.number),
  ]);
  await checkBlockLogs(s, block, addresses, logs);
  // one pass: every log of the block asked for, the exchange's apart from the prices'
  const exchangeLogs: typeof logs = [];
  const others: typeof logs = [];
  for (const l of logs) {
    if (l.blockHash !== block.hash || l.blockNumber !== block.number) {
      throw new InconsistentAnswerError(
        `eth_getLogs for block ${block.hash} answered a log of block ${l.blockNumber} (${l.blockHash})`,
      );
    }
    (s.exchange.has(l.address.toLowerCase()) ? exchangeLogs : others).push(l);
  }
  const from = s.checkpoint;
  if (s.o.timedLogs) stampLogs(exchangeLogs as ChainLog[], block.timestamp);
  try {
    apply(s, decodeTrusted(s, exchangeLogs), true, 0n);
  } catch (error) {
    if (from) s.undoAbove(from);
    throw error;
  }
  s.servedBy(block.number, block.number);
  s.processed = block.number;
  s.checkpoint = { number: block.number, hash: block.hash };
  tick(s, block, await s.o.prices.settleHead(s.ep.client, block, reads, others), receivedAt);
}

/** Hands the tick (the head and its prices) to the keeper; the head is recorded in the window, pruned at the floor. */
export function tick(s: WatcherState, block: Head, prices: TickPrices, receivedAt: number): void {
  const head = block.number;
  s.window.record(head, block.hash, s.o.book.cursor);
  s.window.prune(s.finality.floor(head));
  s.lastTick = {
    blockNumber: head,
    blockHash: block.hash,
    timestamp: block.timestamp,
    baseFeePerGas: block.baseFeePerGas ?? 0n,
    prices: prices.prices,
    receivedAt,
    ...(prices.oracleUpdatedAt ? { oracleUpdatedAt: prices.oracleUpdatedAt } : {}),
    ...(prices.ahead ? { ahead: prices.ahead } : {}),
  };
  s.o.onTick(s.lastTick);
}
