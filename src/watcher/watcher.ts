/**
 * Follows one exchange contract: backfills its events with eth_getLogs from the deployment block, then follows
 * new heads (announced over a WebSocket subscription, or polled for), and reads every market's oracle at each new
 * head. A head that extends the last one (its parent is the block last processed) costs one round trip: its logs by
 * block hash and every oracle's answer at that hash, in one JSON-RPC batch. It hands decoded events to the state in
 * chain order and a tick (block, time, mark prices) to the keeper after each head.
 */

import { type Address, BlockNotFoundError, type Hex, type PublicClient } from "viem";
import { type Endpoint, Endpoints } from "../chain/endpoints.ts";
import { describeError, InconsistentAnswerError, isRetryable, rpcRead } from "../chain/errors.ts";
import type { Subscription } from "../chain/subscription.ts";
import { backoffMs } from "../ops/backoff.ts";
import { big, type Logger } from "../ops/logger.ts";
import { sleep } from "../ops/sleep.ts";
import type { ChainLog } from "../protocol/adapter.ts";
import { type Book, type BookAtBlock, type BookChange, BookError, type BookState, type Market } from "../state/book.ts";
import type { ExchangeEvent, LogRef } from "../state/events.ts";
import { checkLogsAgainstBloom } from "./bloom.ts";
import { NO_ORACLE_LOGS, OracleFeeds } from "./feeds.ts";
import { HeadStall } from "./headStall.ts";
import { fetchLogRanges } from "./logs.ts";
import { MarkPrices } from "./markPrices.ts";
import { type OracleReading, readOracles, resolveSource } from "./oracle.ts";
import { UnfinalizedBlocks } from "./unfinalized.ts";

/** What the chain says at one head. */
export interface Tick {
  readonly blockNumber: bigint;
  readonly timestamp: bigint;
  /** The head's base fee, wei (0 before London): what the executor prices gas from. */
  readonly baseFeePerGas: bigint;
  /** Valid mark prices (WAD) by market id; a market whose oracle was refused is absent. */
  readonly prices: ReadonlyMap<number, bigint>;
  /** performance.now() when the keeper learned of this head (its announcement, or the poll's answer). */
  readonly receivedAt?: number;
  /** Each market's oracle answer time (updatedAt, unix seconds) known at this head, refused answers included. */
  readonly oracleUpdatedAt?: ReadonlyMap<number, bigint>;
}

/** A live head subscription (renewed when it was open but announced nothing while blocks came). */
export type HeadSubscription = Subscription;

/** A block header, as far as the watcher needs it. */
export interface Head {
  readonly number: bigint;
  readonly hash: Hex;
  readonly parentHash: Hex;
  readonly timestamp: bigint;
  readonly baseFeePerGas: bigint | null;
  /** The header's logs bloom: what the block's logs are checked against (absent: not checked). */
  readonly logsBloom?: Hex | null;
}

/**
 * Reads the exchange's own state at a block and compares it with the book: a description of the first disagreement,
 * or undefined when they agree. What the book is checked against after a backfill, before it is trusted.
 */
export type BookCheck = (client: PublicClient, blockHash: Hex, book: Book) => Promise<string | undefined>;

export interface WatcherOptions {
  readonly client: PublicClient;
  readonly address: Address;
  /** First block to index (the engine's deployment block). */
  readonly fromBlock: bigint;
  readonly book: Book;
  readonly log: Logger;
  readonly decode: (logs: readonly ChainLog[]) => ExchangeEvent[];
  /**
   * Applies each decoded event, in chain order, and returns what it changed in the book (undefined: nothing, e.g. an
   * event already applied). `live`: seen while following the head, not replayed by a backfill or a rebuild.
   */
  readonly onEvent: (event: ExchangeEvent, live: boolean) => BookChange | undefined;
  /**
   * The chain reorganised above a block the watcher still holds: undo these changes (in the order they were
   * applied; undo newest first) and set the book's cursor back to `cursor`. The new branch's events follow.
   */
  readonly onRollback: (changes: readonly BookChange[], cursor: LogRef | undefined) => void;
  /** Replaces all state with a snapshot's (see resume); needed only when resuming. */
  readonly onRestore?: (state: BookState) => void;
  readonly onTick: (tick: Tick) => void;
  /**
   * The chain reorganised deeper than the blocks the watcher holds (or un-listed a market): forget all state; the
   * watcher re-indexes from the deployment block.
   */
  readonly onReorg: () => void;
  readonly maxLogRange: bigint;
  readonly pollIntervalMs: number;
  /** Blocks under the head kept with their book changes, so that a reorganisation is rolled back, not rebuilt. */
  readonly reorgDepth: bigint;
  /**
   * Subscribes to new heads: each call of `onHead` wakes the watcher at once with the
   * head's header, or without one when the subscription is (re)established: the watcher then asks for the head, to
   * fill whatever came while it was not subscribed. A poll for the head covers what a subscription misses: after
   * 5 s (or pollIntervalMs, if longer) without an announcement.
   */
  readonly subscribeHeads?: (onHead: (head: Head | undefined) => void) => HeadSubscription;
  /** The client for backfill log ranges (one request each, large answers allowed); default `client`. */
  readonly logsClient?: PublicClient;
  /**
   * Every endpoint on its own, with its standing: each step is pinned to one (the one with the freshest head), and one
   * whose answers the chain contradicts is demoted. Default: `client` (and `logsClient`) as the only endpoint.
   */
  readonly endpoints?: Endpoints;
  /** The exchange's state read at the backfill's head and compared with the book (see BookCheck). */
  readonly checkBook?: BookCheck;
  /** Multicall3 on this chain: every oracle read in one eth_call (without it, one eth_call per oracle, batched). */
  readonly multicall3?: Address;
  /** eth_getLogs ranges fetched at once (applied in block order). */
  readonly logConcurrency?: number;
  /** No new head for this long is reported (head_stalled); undefined: 3 block times, at least 30 s. */
  readonly headStallMs?: number;
}

/** A gap of fewer blocks than this, while following, has every block's logs checked against its bloom. */
const BLOOM_CHECKED_GAP = 64n;

/** The finalized block is asked once every this many heads (one call more in that head's batch). */
const FINALIZED_EVERY = 32n;
/** The most blocks the window holds, however far behind the chain's finality lags. */
const MAX_WINDOW_BLOCKS = 8192n;

/** Polls in a row that found a new head the subscription did not announce, before it is renewed. */
const SILENT_SUBSCRIPTION_HEADS = 2;

/** With a head subscription, the fallback poll: what a missed notification costs at most. */
const SUBSCRIBED_POLL_MS = 5_000;

/** An answer the chain refuted (its endpoint demoted already): retried, elsewhere first. */
class RefutedAnswerError extends InconsistentAnswerError {
  override name = "RefutedAnswerError";
}

/** A backfill asked to stop: not a failure. */
class BackfillStopped extends Error {
  override name = "BackfillStopped";
}

export class StartBlockError extends Error {
  override name = "StartBlockError";
}

export class Watcher {
  /** Last block whose logs have all been applied. */
  private processed: bigint;
  /** Mark prices from oracle answers, and the log lines of their changes. */
  private readonly prices: MarkPrices;
  /** Whether heads still come (head_stalled / head_resumed). */
  private readonly stall: HeadStall;
  private lastTick: Tick | undefined;
  /** The last block indexed, by number and hash: how a reorganisation under it is noticed. */
  private checkpoint: { readonly number: bigint; readonly hash: Hex } | undefined;

  /** The unfinalized blocks applied, with what each changed. */
  private readonly window: UnfinalizedBlocks;
  /** The snapshot the watcher resumed from: what a failed backfill starts over from. */
  private resumedFrom: BookAtBlock | undefined;
  /** A backfill ran (a second call is a retry, which starts over). */
  private backfillStarted = false;
  /** The backfill completed and nothing since forced a rebuild: the book is whole. */
  private complete = false;
  /** The chain's finalized block, where the RPC serves the tag, and the head at which it was last asked. */
  private finalized: bigint | undefined;
  private finalizedAskedAt: bigint | undefined;
  /** Oracles followed from their logs, and the answers carried between updates. */
  private readonly feeds = new OracleFeeds();
  /** The last head the subscription announced, and when (performance.now()). */
  private announced: { readonly head: Head; readonly at: number } | undefined;

  /** The exchange's address, lower-cased once. */
  private readonly engine: string;
  /** The endpoints, and the one the current step is pinned to (heads, logs and reads of one head from one). */
  private readonly eps: Endpoints;
  private ep: Endpoint;
  /** Which endpoint answered the logs of which blocks lately: what a contradiction found later is laid at. */
  private served: { readonly from: bigint; readonly to: bigint; readonly by: Endpoint }[] = [];
  /** A block our own receipt says the book has wrong (see contradicted): indexed again, from another endpoint. */
  private recheckAt: bigint | undefined;
  /** The backfill's anchor (its floor when it started), and whether it must start over (its answers were refuted). */
  private anchor: bigint | undefined;
  private startOver = false;

  constructor(private readonly o: WatcherOptions) {
    this.engine = o.address.toLowerCase();
    this.eps =
      o.endpoints ??
      new Endpoints([{ url: "", label: "rpc", client: o.client, logsClient: o.logsClient ?? o.client }], o.log);
    this.ep = this.eps.preferred();
    this.processed = o.fromBlock - 1n;
    this.window = new UnfinalizedBlocks();
    this.prices = new MarkPrices(o.log);
    this.stall = new HeadStall(o.log, o.headStallMs);
  }

  get processedBlock(): bigint {
    return this.processed;
  }

  /**
   * Each market's aggregator, where its answers are set: the one behind its proxy (`aggregator()`, followed when it
   * changes), or its oracle itself. Markets whose source is not resolved yet are absent.
   */
  oracleSources(): Map<number, Address> {
    return this.feeds.sources();
  }

  get latestTick(): Tick | undefined {
    return this.lastTick;
  }

  /**
   * Starts from a snapshot's block instead of the deployment block: the book is restored to its state (onRestore)
   * and the backfill replays from the block after it. The caller checked the block is still canonical.
   */
  resume(from: BookAtBlock): void {
    if (!this.o.onRestore) throw new Error("resuming needs onRestore");
    this.resumedFrom = from;
    this.restoreResumePoint();
  }

  private restoreResumePoint(): void {
    const from = this.resumedFrom as BookAtBlock;
    this.o.onRestore?.(from.state);
    this.window.clear();
    this.window.record(from.blockNumber, from.blockHash, from.state.cursor);
    this.processed = from.blockNumber;
    this.checkpoint = { number: from.blockNumber, hash: from.blockHash };
  }

  /**
   * The floor of the window under `head`: the chain's finalized block where the RPC serves it (at most
   * MAX_WINDOW_BLOCKS under the head), otherwise reorgDepth under the head. Blocks at or under it are final.
   */
  private floor(head: bigint): bigint {
    const f = this.finalized;
    if (f === undefined || f > head) return head - this.o.reorgDepth;
    return f < head - MAX_WINDOW_BLOCKS ? head - MAX_WINDOW_BLOCKS : f;
  }

  /** The finalized block, asked every FINALIZED_EVERY heads alongside other calls; never fails a step. */
  private askFinalized(head: bigint): Promise<void> | undefined {
    if (this.finalizedAskedAt !== undefined && head - this.finalizedAskedAt < FINALIZED_EVERY) return undefined;
    this.finalizedAskedAt = head;
    return this.ep.client.getBlock({ blockTag: "finalized" }).then(
      (b) => {
        if (b.number !== null) this.finalized = b.number;
      },
      () => {}, // not served (or not now): the configured depth stands in
    );
  }

  /** The chain's finalized block as last read, if the RPC serves it. */
  get finalizedBlock(): bigint | undefined {
    return this.finalized;
  }

  /**
   * The book at a final block, for a snapshot: the newest block held at the window's floor (the chain's finalized
   * block, or reorgDepth under the last block processed). Undefined before the backfill completes or while no
   * block that old is held. Synchronous: a consistent copy.
   */
  finalState(): BookAtBlock | undefined {
    if (!this.complete) return undefined;
    const at = this.window.at(this.floor(this.processed));
    if (!at) return undefined;
    const cursor = at.firstAbove ? at.firstAbove.cursorBefore : this.o.book.cursor;
    return {
      blockNumber: at.entry.number,
      blockHash: at.entry.hash,
      state: this.o.book.stateBefore(at.changes, cursor),
    };
  }

  /**
   * Indexes every event from the deployment block (or the snapshot's, see resume) to the current head. Aborting
   * `signal` ends it after the range being applied (a stop never waits for a long backfill).
   */
  async backfill(signal?: AbortSignal): Promise<void> {
    try {
      await this.backfillOnce(signal);
    } catch (error) {
      this.blame(error);
      throw error;
    }
  }

  private async backfillOnce(signal?: AbortSignal): Promise<void> {
    if (this.backfillStarted) this.prepareRetry();
    this.backfillStarted = true;
    this.finalizedAskedAt = undefined;
    const [{ block: headBlock, endpoint }] = await Promise.all([this.freshestHead(true), this.askFinalized(0n)]);
    this.ep = endpoint;
    const head = headBlock.number;
    this.finalizedAskedAt = head;
    if (this.processed > head) {
      throw new StartBlockError(
        `the exchange's deployBlock ${this.processed + 1n} is above the chain head ${head}: wrong chain or config`,
      );
    }
    if (this.anchor === undefined) await this.checkStartBlock();
    // the window's floor is held as its anchor: where a snapshot can be taken at once
    const anchor = this.anchor ?? this.floor(head);
    this.anchor = anchor;
    const anchorBlock = anchor > this.processed ? await this.ep.client.getBlock({ blockNumber: anchor }) : undefined;
    const started = performance.now();
    this.o.log.info(
      {
        event: "backfill_started",
        fromBlock: big(this.processed + 1n),
        toBlock: big(head),
        fromSnapshot: this.resumedFrom !== undefined,
        endpoint: this.ep.label,
      },
      "backfilling exchange events",
    );
    let events = 0;
    const count = (n: number) => {
      events += n;
    };
    try {
      if (anchorBlock) {
        await this.index(anchor, false, count, signal, anchor + 1n);
        this.window.record(anchor, anchorBlock.hash, this.o.book.cursor);
      }
      await this.index(head, false, count, signal, anchor + 1n);
    } catch (error) {
      if (error instanceof BackfillStopped) return;
      throw error;
    }
    // evidence, not an answer: the book is trusted (and a snapshot written) only once the exchange's own state, read
    // at the head's hash, agrees with it
    await this.checkBookAt(headBlock.hash, head);
    this.checkpoint = { number: head, hash: headBlock.hash };
    this.window.record(head, headBlock.hash, this.o.book.cursor);
    this.served = [{ from: 0n, to: head, by: this.ep }];
    this.anchor = undefined;
    this.complete = true;
    this.o.log.info(
      {
        event: "backfill_completed",
        toBlock: big(head),
        events,
        markets: this.o.book.markets.size,
        positions: this.o.book.positions.size,
        ms: Math.round(performance.now() - started),
      },
      "backfill complete",
    );
  }

  /**
   * A backfill asked again after a failure. After an I/O failure it resumes: what it applied up to its anchor is
   * final, and what it applied above the anchor (blocks a reorganisation could still remove) is undone. After its
   * answers were refuted (the book disagreed with the chain) it starts over from the snapshot, or from the deployment
   * block when the snapshot itself was part of what disagreed.
   */
  private prepareRetry(): void {
    const start = this.resumedFrom?.blockNumber ?? this.o.fromBlock - 1n;
    const anchor = this.anchor;
    const resumable =
      !this.startOver &&
      anchor !== undefined &&
      this.processed > start &&
      (this.processed <= anchor || (anchor >= start && this.window.hashAt(anchor) !== undefined));
    if (resumable) {
      if (this.processed > anchor) {
        const cut = this.window.cutAbove(anchor);
        if (cut.blocks > 0) this.o.onRollback(cut.changes, cut.cursor);
        this.processed = anchor;
      }
      this.o.log.info(
        { event: "backfill_resumed", fromBlock: big(this.processed + 1n) },
        `backfill resumes from block ${this.processed + 1n}`,
      );
      return;
    }
    this.startOver = false;
    this.anchor = undefined;
    this.o.onReorg();
    this.window.clear();
    this.processed = this.o.fromBlock - 1n;
    this.checkpoint = undefined;
    if (this.resumedFrom) this.restoreResumePoint();
  }

  /**
   * The contract has no code before its deployment block: a deployBlock set too late (which would make the events
   * not add up) fails here, plainly, instead of being taken for a lying endpoint. A node without that old state
   * cannot say: then nothing is concluded.
   */
  private async checkStartBlock(): Promise<void> {
    if (this.o.fromBlock === 0n || this.resumedFrom) return;
    const code = await Promise.resolve()
      .then(() => this.ep.client.getCode({ address: this.o.address, blockNumber: this.o.fromBlock - 1n }))
      .catch(() => undefined);
    if (code && code !== "0x") {
      throw new StartBlockError(
        `the exchange already has code at block ${this.o.fromBlock - 1n}: its deployBlock ${this.o.fromBlock} is too ` +
          "late, and events before it would be missed (set exchange.deployBlock to its deployment block)",
      );
    }
  }

  /**
   * Compares the book with the exchange's state read at `blockHash` (checkBook). A disagreement refutes the log
   * answers the book was built from: their endpoint is demoted, the snapshot resumed from is set aside, and the work
   * starts over (retried, never a stop: chain_state_inconsistent says it).
   */
  private async checkBookAt(blockHash: Hex, head: bigint): Promise<void> {
    if (!this.o.checkBook) return;
    const disagreement = await this.o.checkBook(this.ep.client, blockHash, this.o.book);
    if (disagreement === undefined) return;
    this.setAsideSnapshot();
    this.refuted("book_contradicts_chain", `at block ${head}: ${disagreement}`);
  }

  /**
   * What the backfill applied does not hold up: it starts over, and not from the snapshot it resumed from (which
   * may itself be what disagrees: one written by an older keeper from an incomplete answer). The file stays until a
   * verified snapshot replaces it.
   */
  private setAsideSnapshot(): void {
    this.startOver = true;
    if (!this.resumedFrom) return;
    this.o.log.warn(
      { event: "snapshot_set_aside", blockNumber: big(this.resumedFrom.blockNumber) },
      "the book built on the snapshot disagrees with the chain: indexing again from the deployment block",
    );
    this.resumedFrom = undefined;
  }

  /**
   * The current endpoint's answers are refuted by the chain: it is demoted, said as chain_state_inconsistent, and the
   * step fails with a retryable error (another endpoint is asked next).
   */
  private refuted(reason: string, detail: string): never {
    this.eps.demote(this.ep, reason, detail);
    this.o.log.error(
      { event: "chain_state_inconsistent", reason, detail, endpoint: this.ep.label },
      `what the RPC answered disagrees with the chain (${reason}); asking again`,
    );
    throw new RefutedAnswerError(`${reason}: ${detail}`);
  }

  /**
   * A step failed: an answer that cannot be right (logs of another block, a malformed answer) demotes the endpoint
   * the step was pinned to, as a refuted one does (already demoted); a transport failure only moves it behind.
   */
  private blame(error: unknown): void {
    if (error instanceof RefutedAnswerError || error instanceof BackfillStopped) return;
    if (error instanceof InconsistentAnswerError) {
      this.eps.demote(this.ep, "inconsistent_answer", error.message.slice(0, 200));
    } else if (isRetryable(error)) this.eps.failed(this.ep);
  }

  /**
   * The latest block, from the endpoint that has the freshest one: every usable endpoint is asked at once (one
   * request each, in parallel), each one's lag is measured against the freshest head reported in that same round,
   * and the step is pinned to the endpoint with the highest head (the first configured among equals).
   */
  private async freshestHead(first = false): Promise<{ block: Head; endpoint: Endpoint }> {
    if (!this.eps.many) {
      const endpoint = this.eps.preferred();
      return { block: await endpoint.client.getBlock({ blockTag: "latest" }), endpoint };
    }
    const asked = this.eps.usable();
    const answers = await Promise.allSettled(asked.map((e) => e.client.getBlock({ blockTag: "latest" })));
    const heads: { block: Head; endpoint: Endpoint }[] = [];
    let failure: unknown;
    answers.forEach((a, i) => {
      const e = asked[i] as Endpoint;
      if (a.status === "rejected") {
        this.eps.failed(e);
        failure ??= a.reason;
        return;
      }
      this.eps.reportHead(e.url, a.value.number);
      heads.push({ block: a.value, endpoint: e });
    });
    if (heads.length === 0) throw failure;
    // a backfill (`first`): the first listed endpoint that does not lag, the operator's primary; following: the first
    // listed of those at the freshest head (the primary while it keeps up and is not refuted, the next one otherwise)
    if (first) return heads.find((h) => !this.eps.isLagging(h.endpoint.url)) ?? (heads[0] as (typeof heads)[0]);
    const top = heads.reduce((m, h) => (h.block.number > m ? h.block.number : m), 0n);
    return heads.find((h) => h.block.number === top) as { block: Head; endpoint: Endpoint };
  }

  /**
   * Our own receipt says the book is wrong at `blockNumber` (a position our liquidation found gone is still open in
   * the book after that block): the endpoint that answered that block's logs is demoted, and the blocks from there
   * are indexed again, from another endpoint, at the next step.
   */
  contradicted(blockNumber: bigint, detail: string): void {
    if (blockNumber > this.processed) return; // not indexed yet: the book has not had its say
    const by = this.served.find((r) => r.from <= blockNumber && blockNumber <= r.to)?.by;
    if (by) this.eps.demote(by, "receipt_contradicts_logs", `block ${blockNumber}: ${detail}`);
    if (this.recheckAt === undefined || blockNumber < this.recheckAt) this.recheckAt = blockNumber;
  }

  /**
   * Acts on a contradiction our receipts found (see contradicted): the blocks from the contradicted one are undone, to
   * be indexed again at this step from the endpoint it is pinned to (the one that answered them is demoted).
   */
  private recheck(): boolean {
    const at = this.recheckAt;
    if (at === undefined) return false;
    this.recheckAt = undefined;
    if (at > this.processed) return false;
    const below = this.window.at(at - 1n);
    let rebuilt = false;
    if (below && this.checkpoint) {
      this.undoAbove({ number: below.entry.number, hash: below.entry.hash });
      this.lastTick = undefined; // the next head goes through the general path
    } else {
      this.forgetAll();
      rebuilt = true;
    }
    this.o.log.warn(
      { event: "reindex_requested", fromBlock: big(at), processedBlock: big(this.processed) },
      `indexing again from block ${at}: ${rebuilt ? "rebuilding the book" : "undoing the blocks from there"}`,
    );
    return rebuilt;
  }

  /**
   * A head below the block last followed: whether it is only behind (its chain holds the newest block we hold at or
   * under its height) rather than on another branch. Only evidence, a different block at a height we hold, makes it
   * a reorganisation; a node that is behind is waited for.
   */
  private async behindOnOurChain(block: Head): Promise<boolean> {
    const held = this.window.at(block.number)?.entry;
    if (!held) return true;
    if (held.number === block.number) return held.hash === block.hash;
    const canonical = await this.ep.client.getBlock({ blockNumber: held.number }).then(
      (b) => b.hash,
      (error: unknown) => {
        if (error instanceof BlockNotFoundError) return undefined;
        throw error;
      },
    );
    return canonical === held.hash;
  }

  /** Remembers that the current endpoint answered the logs of [from, to] (for blame, see contradicted). */
  private servedBy(from: bigint, to: bigint): void {
    const last = this.served.at(-1);
    if (last && last.by === this.ep && last.to + 1n >= from) this.served[this.served.length - 1] = { ...last, to };
    else this.served.push({ from, to, by: this.ep });
    const floor = this.floor(to);
    while (this.served.length > 1 && (this.served[0]?.to ?? 0n) < floor) this.served.shift();
  }

  /**
   * One step of following: checks that the last head it saw is still on the chain, indexes new blocks up to the
   * head and emits a tick. Returns false when idle.
   *
   * A reorganisation (the last head's hash changed, or the chain no longer reaches it) is rolled back: the newest
   * block the watcher holds whose hash is still canonical is the common ancestor, every book change above it is
   * undone, and the new branch is indexed from there. Only a reorganisation deeper than the blocks held (reorgDepth),
   * or one that removed a market's listing, rebuilds the state from the deployment block.
   */
  async poll(signal?: AbortSignal): Promise<boolean> {
    try {
      return await this.step(signal);
    } catch (error) {
      this.blame(error);
      throw error;
    }
  }

  private async step(signal?: AbortSignal): Promise<boolean> {
    const announced = this.announced;
    let block: Head;
    let receivedAt: number;
    if (announced && announced.head.hash !== this.checkpoint?.hash) {
      block = announced.head;
      receivedAt = announced.at;
      this.ep = this.eps.preferred();
    } else {
      ({ block, endpoint: this.ep } = await this.freshestHead());
      receivedAt = performance.now();
    }
    const rebuilt = this.recheck();
    const head = block.number;
    const seen = this.checkpoint;
    if (this.lastTick && seen && head === seen.number && block.hash === seen.hash) return false;
    if (this.lastTick && seen && head === seen.number + 1n && block.parentHash === seen.hash) {
      const markets = [...this.o.book.markets.values()];
      // no oracle read would pin the block (a node that lacks it fails the eth_call): take the general path
      if (markets.length > 0 && this.processed === seen.number) {
        await this.extend(block, markets, receivedAt);
        return true;
      }
    }
    // behind the block we followed: waited for, never taken for a reorganisation, unless the window holds another
    // block at that height (evidence that the chain changed, not only that this answer is old)
    if (seen && head < seen.number && (await this.behindOnOurChain(block))) return false;
    let live = !rebuilt;
    if (seen && !(await this.stillCanonical(seen.number, seen.hash, block))) {
      const started = performance.now();
      const ancestor = await this.commonAncestor(block);
      const cut = ancestor === undefined ? undefined : this.window.cutAbove(ancestor.number);
      if (ancestor && cut && !cut.changes.some((c) => c.type === "market")) {
        if (cut.blocks > 0) this.o.onRollback(cut.changes, cut.cursor);
        this.processed = ancestor.number;
        this.checkpoint = ancestor;
        this.o.log.warn(
          {
            event: "reorg_detected",
            lastSeenBlock: big(seen.number),
            head: big(head),
            action: "rollback",
            ancestor: big(ancestor.number),
            depth: big(seen.number - ancestor.number),
            changesUndone: cut.changes.length,
            ms: Math.round((performance.now() - started) * 10) / 10,
          },
          `the chain reorganised above block ${ancestor.number}; ${cut.changes.length} book changes undone, ` +
            "indexing the new branch",
        );
      } else {
        live = false;
        this.o.log.warn(
          { event: "reorg_detected", lastSeenBlock: big(seen.number), head: big(head), action: "rebuild" },
          "the chain reorganised deeper than the blocks held; rebuilding state from the deployment block",
        );
        this.forgetAll();
      }
    }
    if (head > this.processed) {
      const from = this.checkpoint;
      const first = this.processed + 1n;
      try {
        // a stop asked during a long index (a rebuild from the deployment block) ends it after the range applied
        await this.index(head, live, () => {}, signal);
        // rebuilt from the deployment block: trusted only once the exchange's state agrees with the book
        if (!live || !this.complete) await this.checkBookAt(block.hash, head);
      } catch (error) {
        // a partial index is undone, so that what is applied always ends at the checkpoint: the next poll's
        // reorganisation check then covers every applied block
        if (from) this.undoAbove(from);
        if (error instanceof BackfillStopped) return false;
        throw error;
      }
      if (!(await this.heldBlocksCanonical(from?.number ?? this.floor(head), head))) {
        if (from) this.undoAbove(from);
        else this.forgetAll();
        throw new InconsistentAnswerError(
          `eth_getLogs up to block ${head} answered events of blocks no longer on the chain; indexing them again`,
        );
      }
      this.servedBy(first, head);
    }
    this.complete = true;
    // logs answered from another fork than the head: the next poll sees the mismatch and rolls it back
    const held = this.window.hashAt(head);
    this.checkpoint = { number: head, hash: held ?? block.hash };
    if (held !== undefined && held !== block.hash) return true;
    // after a gap, a reconnect or a reorganisation: every oracle is read (and every source resolved) at the head
    const markets = [...this.o.book.markets.values()];
    const [reads] = await Promise.all([this.readAndResolve(markets, markets, block.hash), this.askFinalized(head)]);
    const merged = this.feeds.merge(markets, reads, NO_ORACLE_LOGS, head, true, "resync");
    this.tick(block, markets, merged.readings, receivedAt);
    return true;
  }

  /**
   * Reads these markets' oracles and resolves these sources at a block, in one batch; returns the reads by market.
   */
  private async readAndResolve(
    read: readonly Market[],
    resolve: readonly Market[],
    blockHash: Hex,
  ): Promise<Map<number, PromiseSettledResult<OracleReading>>> {
    const [readings, sources] = await Promise.all([
      readOracles(
        this.ep.client,
        read.map((m) => m.oracle),
        blockHash,
        this.o.multicall3,
      ),
      Promise.all(resolve.map((m) => resolveSource(this.ep.client, m.oracle, blockHash))),
    ]);
    resolve.forEach((m, i) => {
      this.feeds.resolved(m.id, m.oracle, sources[i] as Address);
    });
    return new Map(read.map((m, i) => [m.id, readings[i] as PromiseSettledResult<OracleReading>]));
  }

  /**
   * A head whose parent is the block last processed: one round trip. Its logs by block hash (the exchange's, and
   * those of the oracles followed from their logs, see feeds.ts), and the answers of the oracles still read at every
   * head, pinned to that hash. A market listed in this very block, or whose proxy logged (a new aggregator behind
   * it), has its oracle resolved and read after (a second round trip, rare).
   */
  private async extend(block: Head, markets: Market[], receivedAt: number): Promise<void> {
    const check = this.feeds.checkDue(block.number);
    const oracles = this.feeds.addresses();
    const [logs, reads] = await Promise.all([
      rpcRead("eth_getLogs", () =>
        this.ep.client.getLogs({
          address: oracles.length > 0 ? [this.o.address, ...oracles] : this.o.address,
          blockHash: block.hash,
        }),
      ),
      this.readAndResolve(
        this.feeds.toRead(markets, check),
        check ? markets : this.feeds.unresolved(markets),
        block.hash,
      ),
      this.askFinalized(block.number),
    ]);
    await this.checkBlockLogs(block, oracles.length > 0 ? [this.o.address, ...oracles] : [this.o.address], logs);
    // one pass: every log of the block asked for, the exchange's apart from the oracles'
    const exchangeLogs: typeof logs = [];
    const others: typeof logs = [];
    for (const l of logs) {
      if (l.blockHash !== block.hash || l.blockNumber !== block.number) {
        throw new InconsistentAnswerError(
          `eth_getLogs for block ${block.hash} answered a log of block ${l.blockNumber} (${l.blockHash})`,
        );
      }
      (l.address.toLowerCase() === this.engine ? exchangeLogs : others).push(l);
    }
    const oracleLogs = OracleFeeds.split(others);
    const from = this.checkpoint;
    try {
      this.apply(this.decodeTrusted(exchangeLogs), true, 0n);
    } catch (error) {
      if (from) this.undoAbove(from);
      throw error;
    }
    this.servedBy(block.number, block.number);
    this.processed = block.number;
    this.checkpoint = { number: block.number, hash: block.hash };
    const all = [...this.o.book.markets.values()];
    // listed in this block, or behind a proxy that logged (a new aggregator): resolved and read again; usually none
    const listed = all.length > markets.length ? new Set(markets) : undefined;
    const touched = oracleLogs.touched.size > 0 ? new Set(this.feeds.proxiesTouched(all, oracleLogs)) : undefined;
    const again = listed || touched ? all.filter((m) => listed?.has(m) === false || touched?.has(m.id)) : [];
    if (again.length > 0) {
      for (const [id, read] of await this.readAndResolve(again, again, block.hash)) reads.set(id, read);
    }
    const merged = this.feeds.merge(all, reads, oracleLogs, block.number, check, "head");
    for (const id of merged.mismatched) {
      const market = this.o.book.markets.get(id);
      this.o.log.warn(
        { event: "oracle_logs_mismatch", market: market?.name, blockNumber: big(block.number) },
        `${market?.name} oracle's answer differs from what its logs said: read at every head again`,
      );
    }
    this.tick(block, all, merged.readings, receivedAt);
  }

  /**
   * A range query may answer from another fork than the head's: each block held above `above` and under the head
   * (the blocks that had events) is checked against the chain, all in one batched request.
   */
  private async heldBlocksCanonical(above: bigint, head: bigint): Promise<boolean> {
    const held = this.window.newestFirst().filter((e) => e.number > above && e.number < head);
    if (held.length === 0) return true;
    const canonical = await Promise.all(
      held.map((e) =>
        this.ep.client.getBlock({ blockNumber: e.number }).then(
          (b) => b.hash,
          (error: unknown) => {
            if (error instanceof BlockNotFoundError) return undefined;
            throw error;
          },
        ),
      ),
    );
    return held.every((e, i) => canonical[i] === e.hash);
  }

  /** Forgets all state and starts again from the deployment block. */
  private forgetAll(): void {
    this.complete = false;
    this.feeds.reset();
    this.window.clear();
    this.o.onReorg();
    this.processed = this.o.fromBlock - 1n;
    this.lastTick = undefined;
    this.checkpoint = undefined;
  }

  /** Rolls the book back to `to` (a block held in the window) and resumes indexing from there. */
  private undoAbove(to: { number: bigint; hash: Hex }): void {
    const cut = this.window.cutAbove(to.number);
    if (cut.blocks > 0) this.o.onRollback(cut.changes, cut.cursor);
    this.processed = to.number;
    this.checkpoint = to;
  }

  /** The newest block held whose hash the chain still has at its height, or undefined when none is. */
  private async commonAncestor(head: {
    number: bigint;
    hash: Hex;
  }): Promise<{ number: bigint; hash: Hex } | undefined> {
    for (const entry of this.window.newestFirst()) {
      if (entry.number > head.number) continue;
      const canonical =
        entry.number === head.number
          ? head.hash
          : await this.ep.client.getBlock({ blockNumber: entry.number }).then(
              (b) => b.hash,
              (error: unknown) => {
                if (error instanceof BlockNotFoundError) return undefined;
                throw error;
              },
            );
      if (canonical === entry.hash) return { number: entry.number, hash: entry.hash };
    }
    return undefined;
  }

  private async stillCanonical(number: bigint, hash: Hex, head: { number: bigint; hash: Hex }): Promise<boolean> {
    if (head.number === number) return head.hash === hash;
    if (head.number < number) return false;
    try {
      return (await this.ep.client.getBlock({ blockNumber: number })).hash === hash;
    } catch (error) {
      if (error instanceof BlockNotFoundError) return false;
      throw error;
    }
  }

  /**
   * Polls until the signal aborts. A failed I/O step is logged and retried with a backoff growing from the poll
   * interval to 30 s; a deterministic failure (see isRetryable) ends the run with that error.
   */
  async run(signal: AbortSignal): Promise<void> {
    let failures = 0;
    this.stall.start();
    let wake: AbortController | undefined;
    /** The subscription was (re)established since the last step: poll now. */
    let subscribed = false;
    /** It has been established at least once: only then can it be judged silent. */
    let live = false;
    const subscription = this.o.subscribeHeads?.((head) => {
      if (head) this.announced = { head, at: performance.now() };
      else subscribed = live = true;
      wake?.abort();
    });
    const idleMs = subscription ? Math.max(this.o.pollIntervalMs, SUBSCRIBED_POLL_MS) : this.o.pollIntervalMs;
    // new heads the fallback poll found that the subscription never announced: a silent subscription is renewed
    let unannounced = 0;
    try {
      while (!signal.aborted) {
        // the fallback timer (not an announcement, nor the subscription's start) brought this step; none did the first
        const byTimer = wake !== undefined && !wake.signal.aborted;
        // armed before the step: an announcement that comes while it runs cuts the sleep after it short
        wake = new AbortController();
        try {
          // subscribed, and the last announcement is processed and recent: nothing to ask the node
          const a = this.announced;
          const quiet =
            subscription !== undefined &&
            !subscribed &&
            failures === 0 &&
            a !== undefined &&
            a.head.hash === this.checkpoint?.hash &&
            performance.now() - a.at < idleMs;
          subscribed = false;
          const before = this.announced;
          if (!quiet && (await this.poll(signal))) {
            this.stall.arrived(this.lastTick);
            // the fallback poll found a head the live subscription never announced: count it against it
            if (
              subscription &&
              live &&
              byTimer &&
              this.announced === before &&
              this.checkpoint?.hash !== before?.head.hash
            ) {
              if (++unannounced >= SILENT_SUBSCRIPTION_HEADS) {
                subscription.renew(`${unannounced} new heads found by polling were never announced`);
                unannounced = 0;
              }
            } else unannounced = 0;
          }
          failures = 0;
        } catch (error) {
          if (!isRetryable(error)) throw error;
          failures++;
          this.o.log.warn(
            { event: "rpc_error", step: "follow", attempt: failures, error: describeError(error) },
            "follow step failed; retrying",
          );
        }
        this.stall.check(this.lastTick?.blockNumber);
        await sleep(
          failures ? backoffMs(failures, this.o.pollIntervalMs) : idleMs,
          AbortSignal.any([signal, wake.signal]),
        );
      }
    } finally {
      subscription?.stop();
    }
  }

  /**
   * Applies the logs of (processed, head]. Following (`live`), every block's changes are kept in the window, so that
   * a failed index can be undone; a backfill keeps only the blocks a reorganisation could still remove.
   */
  private async index(
    head: bigint,
    live: boolean,
    count: (n: number) => void,
    signal?: AbortSignal,
    holdFrom: bigint = live ? 0n : this.floor(head),
  ): Promise<void> {
    const from = this.processed + 1n;
    // a short gap while following: every block's logs are checked against its header's bloom, as a head's are
    const blooms = live && head - from < BLOOM_CHECKED_GAP ? this.gapBlooms(from, head) : undefined;
    blooms?.catch(() => {}); // awaited below; a failure before then must not go unhandled
    await fetchLogRanges(this.ep.logsClient, {
      address: this.o.address,
      fromBlock: from,
      toBlock: head,
      maxRange: this.o.maxLogRange,
      concurrency: this.o.logConcurrency,
      onRange: (logs, _from, to) => {
        if (signal?.aborted) throw new BackfillStopped();
        const events = this.decodeTrusted(logs);
        this.apply(events, live, holdFrom);
        count(events.length);
        this.processed = to;
      },
      verify: blooms && (async (logs, rangeFrom, rangeTo) => this.checkRange(await blooms, logs, rangeFrom, rangeTo)),
    });
  }

  /** The headers of (from, to], by number, from the endpoint the step is pinned to: their blooms check the gap. */
  private async gapBlooms(from: bigint, to: bigint): Promise<Map<bigint, Head>> {
    const numbers: bigint[] = [];
    for (let n = from; n <= to; n++) numbers.push(n);
    const blocks = await Promise.all(numbers.map((n) => this.ep.client.getBlock({ blockNumber: n })));
    return new Map(blocks.map((b) => [b.number, b]));
  }

  /** A range's logs against the blooms of its blocks (see extend): a refuted answer demotes its endpoint. */
  private async checkRange(headers: Map<bigint, Head>, logs: ChainLog[], from: bigint, to: bigint): Promise<void> {
    const byBlock = new Map<bigint, ChainLog[]>();
    for (const l of logs) {
      const n = BigInt(l.blockNumber as Hex);
      if (headers.get(n)?.hash !== l.blockHash) {
        this.refuted("logs_of_another_block", `a log of block ${n} with hash ${l.blockHash} in [${from}, ${to}]`);
      }
      byBlock.set(n, [...(byBlock.get(n) ?? []), l]);
    }
    for (let n = from; n <= to; n++) {
      const header = headers.get(n);
      if (header) await this.checkBlockLogs(header, [this.o.address], byBlock.get(n) ?? []);
    }
  }

  /**
   * One block's logs of `addresses`, as answered, against its header's bloom: a log the bloom rules out refutes the
   * answer; an address the bloom may hold with no log answered is settled by the block's receipts (asked of another
   * endpoint where there is one): logs there refute the answer, none there make it the bloom's false positive.
   */
  private async checkBlockLogs(
    block: Head,
    addresses: readonly Address[],
    logs: readonly { readonly topics: readonly (Hex | null)[] }[],
  ): Promise<void> {
    if (!block.logsBloom) return;
    const verdict = checkLogsAgainstBloom(block.logsBloom, addresses, logs);
    if (verdict.foreign > 0) {
      this.refuted(
        "logs_not_in_bloom",
        `${verdict.foreign} of the logs answered for block ${block.number} are not its`,
      );
    }
    if (verdict.suspect.length === 0) return;
    const witness = this.eps.ordered().find((e) => e !== this.ep) ?? this.ep;
    const receipts = (await witness.client.request({
      method: "eth_getBlockReceipts",
      params: [block.hash],
    } as never)) as { blockHash?: string; logs?: { address?: string }[] }[] | null;
    if (!Array.isArray(receipts) || receipts.some((r) => r.blockHash !== block.hash)) {
      throw new InconsistentAnswerError(`eth_getBlockReceipts for block ${block.number} answered another block`);
    }
    const suspect = new Set(verdict.suspect.map((a) => a.toLowerCase()));
    const missed = receipts.flatMap((r) => r.logs ?? []).filter((l) => suspect.has(String(l.address).toLowerCase()));
    if (missed.length > 0) {
      this.refuted("logs_missing", `block ${block.number} has ${missed.length} logs its eth_getLogs answer left out`);
    }
  }

  /** Decodes the exchange's logs; logs that do not add up to the book refute the answer they came in. */
  private decodeTrusted(logs: readonly ChainLog[]): ExchangeEvent[] {
    try {
      return this.o.decode(logs);
    } catch (error) {
      return this.refuted("logs_do_not_decode", describeError(error));
    }
  }

  /**
   * Applies decoded events in order. The changes of blocks from `holdFrom` on are kept in the window, to be undone
   * by a rollback (following: every block; a backfill: those a reorganisation could still remove).
   */
  private apply(events: readonly ExchangeEvent[], live: boolean, holdFrom: bigint): void {
    for (const event of events) {
      const cursor = this.o.book.cursor;
      let change: BookChange | undefined;
      try {
        change = this.o.onEvent(event, live);
      } catch (error) {
        // events that do not add up (a market never listed, a position never opened): some answer left events out
        if (!(error instanceof BookError)) throw error;
        // following: the book itself missed something earlier, so it is rebuilt; a backfill starts over
        if (this.complete) this.recheckAt = this.o.fromBlock;
        else this.setAsideSnapshot();
        this.refuted("events_do_not_add_up", error.message);
      }
      if (event.ref.blockNumber >= holdFrom) {
        this.window.record(event.ref.blockNumber, event.ref.blockHash, cursor, change);
      }
    }
  }

  /**
   * Turns the oracle answers read at a head into mark prices (a market whose oracle was refused is left out, and
   * said once) and hands the tick to the keeper.
   */
  private tick(
    block: Head,
    markets: readonly Market[],
    readings: readonly PromiseSettledResult<OracleReading>[],
    receivedAt: number,
  ): void {
    const head = block.number;
    const prices = this.prices.at(head, block.timestamp, markets, readings);
    const oracleUpdatedAt = new Map<number, bigint>();
    markets.forEach((m, i) => {
      const r = readings[i];
      if (r?.status === "fulfilled") oracleUpdatedAt.set(m.id, r.value.updatedAt);
    });
    this.window.record(head, block.hash, this.o.book.cursor);
    this.window.prune(this.floor(head));
    this.lastTick = {
      blockNumber: head,
      timestamp: block.timestamp,
      baseFeePerGas: block.baseFeePerGas ?? 0n,
      prices,
      receivedAt,
      oracleUpdatedAt,
    };
    this.o.onTick(this.lastTick);
  }
}
