/**
 * The watcher as a state machine, one step per head: the head the head source brings is reconciled with the
 * checkpoint (reconcile.ts, pure; README.md has the table) and the outcome acted on. `extend` is one round trip
 * pinned to the head's hash (follow.ts); `gap` indexes by range and reads every oracle at the head; `reorg` rolls
 * back to the common ancestor (or rebuilds); `duplicate` and `behind` do nothing.
 *
 * Invariants: what is applied always ends at the checkpoint (a partial index is undone), so the next step's
 * reorganisation check covers every applied block; a tick is handed on only at a head whose logs are of its own
 * chain; being behind is never a reorganisation.
 */

import { InconsistentAnswerError } from "../chain/errors.ts";
import { big } from "../ops/logger.ts";
import { index } from "./apply.ts";
import { checkBookAt } from "./backfill.ts";
import { canonicalHash, commonAncestor, heldBlocksCanonical } from "./canonical.ts";
import { BackfillStopped } from "./errors.ts";
import { extend, tick } from "./follow.ts";
import type { HeadSource } from "./headSource.ts";
import { reconcile, remedy, type Settled, settle } from "./reconcile.ts";
import type { WatcherState } from "./state.ts";
import type { Checkpoint, Head } from "./types.ts";

/** One step: reconciles the next head and acts on it. Returns false when idle (a duplicate, or behind). */
export async function step(s: WatcherState, heads: HeadSource, signal?: AbortSignal): Promise<boolean> {
  const { block, endpoint, receivedAt } = await heads.next();
  s.ep = endpoint;
  const rebuilt = recheck(s);
  const seen = s.checkpoint;
  const decided = reconcile({
    head: block,
    checkpoint: seen,
    ticked: s.lastTick !== undefined,
    hasMarkets: s.o.book.marketCount > 0,
    caughtUp: seen !== undefined && s.processed === seen.number,
    held: (n) => s.window.at(n)?.entry,
  });
  const outcome: Settled | "duplicate" | "extend" =
    decided.kind === "maybeReorg"
      ? settle(decided, await canonicalHash(s.ep.client, decided.check.number))
      : decided.kind;
  if (outcome === "duplicate" || outcome === "behind") return false;
  if (outcome === "extend") {
    await extend(s, block, receivedAt);
    return true;
  }
  let live = !rebuilt;
  if (outcome === "reorg" && !(await rollBack(s, seen as Checkpoint, block))) live = false;
  return sync(s, block, live, receivedAt, signal);
}

/**
 * The checkpoint is no longer on the head's chain: the newest block held whose hash is still canonical is the
 * common ancestor, and every book change above it is undone; deeper than the window (or un-listing a market), all is
 * forgotten. Returns false when it rebuilt (the new branch's events are then not live).
 */
async function rollBack(s: WatcherState, seen: Checkpoint, block: Head): Promise<boolean> {
  const started = performance.now();
  const ancestor = await commonAncestor(s, block);
  const cut = ancestor === undefined ? undefined : s.window.cutAbove(ancestor.number);
  const removesListing = cut?.changes.some((c) => s.o.removesListing(c)) ?? false;
  if (ancestor && cut && remedy(ancestor, removesListing) === "rollback") {
    if (cut.blocks > 0) s.o.onRollback(cut.changes, cut.cursor);
    s.processed = ancestor.number;
    s.checkpoint = ancestor;
    s.o.log.warn(
      {
        event: "reorg_detected",
        lastSeenBlock: big(seen.number),
        head: big(block.number),
        action: "rollback",
        ancestor: big(ancestor.number),
        depth: big(seen.number - ancestor.number),
        changesUndone: cut.changes.length,
        ms: Math.round((performance.now() - started) * 10) / 10,
      },
      `the chain reorganised above block ${ancestor.number}; ${cut.changes.length} book changes undone, ` +
        "indexing the new branch",
    );
    return true;
  }
  s.o.log.warn(
    { event: "reorg_detected", lastSeenBlock: big(seen.number), head: big(block.number), action: "rebuild" },
    "the chain reorganised deeper than the blocks held; rebuilding state from the deployment block",
  );
  s.forgetAll();
  return false;
}

/**
 * The general path (after a gap, a reconnect or a reorganisation): (processed, head] indexed by range, the blocks a
 * range answered events for checked against the chain, and every oracle read (and every source resolved) at the head.
 */
async function sync(
  s: WatcherState,
  block: Head,
  live: boolean,
  receivedAt: number,
  signal: AbortSignal | undefined,
): Promise<boolean> {
  const head = block.number;
  if (head > s.processed) {
    const from = s.checkpoint;
    const first = s.processed + 1n;
    try {
      // a stop asked during a long index (a rebuild from the deployment block) ends it after the range applied
      await index(s, head, live, () => {}, signal);
      // rebuilt from the deployment block: trusted only once the exchange's state agrees with the book
      if (!live || !s.complete) await checkBookAt(s, block.hash, head);
    } catch (error) {
      // a partial index is undone, so that what is applied always ends at the checkpoint: the next poll's
      // reorganisation check then covers every applied block
      if (from) s.undoAbove(from);
      if (error instanceof BackfillStopped) return false;
      throw error;
    }
    if (!(await heldBlocksCanonical(s, from?.number ?? s.finality.floor(head), head))) {
      if (from) s.undoAbove(from);
      else s.forgetAll();
      throw new InconsistentAnswerError(
        `eth_getLogs up to block ${head} answered events of blocks no longer on the chain; indexing them again`,
      );
    }
    s.servedBy(first, head);
  }
  s.complete = true;
  // logs answered from another fork than the head: the next poll sees the mismatch and rolls it back
  const held = s.window.hashAt(head);
  s.checkpoint = { number: head, hash: held ?? block.hash };
  if (held !== undefined && held !== block.hash) return true;
  // after a gap, a reconnect or a reorganisation: every price is read at the head
  const [prices] = await Promise.all([s.o.prices.resync(s.ep.client, block), s.finality.ask(s.ep.client, head)]);
  tick(s, block, prices, receivedAt);
  return true;
}

/**
 * Acts on a contradiction our receipts found (see WatcherState.contradicted): the blocks from the contradicted one
 * are undone, to be indexed again at this step from the endpoint it is pinned to (the one that answered them is
 * demoted). Returns whether it rebuilt from the deployment block.
 */
function recheck(s: WatcherState): boolean {
  const at = s.recheckAt;
  if (at === undefined) return false;
  s.recheckAt = undefined;
  if (at > s.processed) return false;
  const below = s.window.at(at - 1n);
  let rebuilt = false;
  if (below && s.checkpoint) {
    s.undoAbove({ number: below.entry.number, hash: below.entry.hash });
    s.lastTick = undefined; // the next head goes through the general path
  } else {
    s.forgetAll();
    rebuilt = true;
  }
  s.o.log.warn(
    { event: "reindex_requested", fromBlock: big(at), processedBlock: big(s.processed) },
    `indexing again from block ${at}: ${rebuilt ? "rebuilding the book" : "undoing the blocks from there"}`,
  );
  return rebuilt;
}
