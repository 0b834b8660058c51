/**
 * Applying the exchange's logs to the book, by range (a backfill, a gap, a rebuild) or one block's (a head that
 * extends the last): decoded, applied in chain order, and recorded in the window so that a reorganisation can undo
 * them.
 *
 * Invariant: `processed` advances only after a range is applied whole; logs that do not decode, or events that do
 * not add up in the book, refute the answer they came in (never applied in part, never an exit).
 */

import { describeError } from "../chain/errors.ts";
import type { ChainLog } from "../protocol/adapter.ts";
import { BookError } from "../state/errors.ts";
import { BackfillStopped } from "./errors.ts";
import { BLOOM_CHECKED_GAP, checkRange, gapBlooms } from "./evidence.ts";
import { fetchLogRanges } from "./logs.ts";
import type { WatcherState } from "./state.ts";
import { fillTimestamps } from "./timestamps.ts";
import type { WatchedEvent } from "./types.ts";

/**
 * Applies the logs of (processed, head]. Following (`live`), every block's changes are kept in the window, so that
 * a failed index can be undone; a backfill keeps only the blocks a reorganisation could still remove.
 */
export async function index(
  s: WatcherState,
  head: bigint,
  live: boolean,
  count: (n: number) => void,
  signal?: AbortSignal,
  holdFrom: bigint = live ? 0n : s.finality.floor(head),
): Promise<void> {
  const from = s.processed + 1n;
  // a short gap while following: every block's logs are checked against its header's bloom, as a head's are
  const blooms = live && head - from < BLOOM_CHECKED_GAP ? gapBlooms(s, from, head) : undefined;
  blooms?.catch(() => {}); // awaited below; a failure before then must not go unhandled
  await fetchLogRanges(s.ep.logsClient, {
    addresses: s.o.addresses,
    fromBlock: from,
    toBlock: head,
    maxRange: s.o.maxLogRange,
    concurrency: s.o.logConcurrency,
    onRange: (logs, _from, to) => {
      if (signal?.aborted) throw new BackfillStopped();
      const events = decodeTrusted(s, logs);
      apply(s, events, live, holdFrom);
      count(events.length);
      s.processed = to;
    },
    verify: blooms && (async (logs, rangeFrom, rangeTo) => checkRange(s, await blooms, logs, rangeFrom, rangeTo)),
    ...(s.o.timedLogs ? { prepare: (logs: ChainLog[]) => fillTimestamps(s.ep.logsClient, logs) } : {}),
  });
}

/** Decodes the exchange's logs; logs that do not add up to the book refute the answer they came in. */
export function decodeTrusted(s: WatcherState, logs: readonly ChainLog[]): WatchedEvent[] {
  try {
    return s.o.decode(logs);
  } catch (error) {
    return s.refuted("logs_do_not_decode", describeError(error));
  }
}

/**
 * Applies decoded events in order. The changes of blocks from `holdFrom` on are kept in the window, to be undone
 * by a rollback (following: every block; a backfill: those a reorganisation could still remove).
 */
export function apply(s: WatcherState, events: readonly WatchedEvent[], live: boolean, holdFrom: bigint): void {
  for (const event of events) {
    const cursor = s.o.book.cursor;
    let change: unknown;
    try {
      change = s.o.onEvent(event, live);
    } catch (error) {
      // events that do not add up (a market never listed, a position never opened): some answer left events out
      if (!(error instanceof BookError)) throw error;
      // following: the book itself missed something earlier, so it is rebuilt; a backfill starts over
      if (s.complete) s.recheckAt = s.o.fromBlock;
      else s.setAsideSnapshot();
      s.refuted("events_do_not_add_up", error.message);
    }
    if (event.ref.blockNumber >= holdFrom) {
      s.window.record(event.ref.blockNumber, event.ref.blockHash, cursor, change);
    }
  }
}
