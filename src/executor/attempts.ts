/**
 * The attempts of every lane and the positions they hold. An attempt's status changes in one place, `setStatus`,
 * which also writes the change to the journal of the attempt's signer (the lifecycle table is in README.md). Who
 * holds each position is the claims ledger's (claims.ts): an attempt claims its targets when it is tracked and frees
 * only what it holds.
 *
 * An attempt whose intent never reached the journal (its signing failed, or the write carrying it did) has nothing
 * to record: a status line for it would name an intent the file does not have.
 */
import type { Hex } from "viem";
import { describeError } from "../chain/errors.ts";
import type { Logger } from "../ops/logger.ts";
import { type Attempt, type AttemptStatus, isTerminal, type SignedTx, type TargetPlan, transition } from "./attempt.ts";
import { Claims, type Holder } from "./claims.ts";
import { attemptRecord, type JournalRecord, recordsOf, statusRecord, txRecord } from "./journal.ts";
import type { NonceLane } from "./lane.ts";

/** How a status change reaches the journal. */
export interface StatusWrite {
  /** Records written in the same append, before the status (a transaction signed for the change). */
  readonly also?: readonly JournalRecord[];
  /** Collected into this group instead of written now: the caller appends the group (one fsync). */
  readonly into?: JournalRecord[];
  /** Written in the background: a failure is logged (executor_error), never thrown; the attempt is in memory. */
  readonly background?: boolean;
  /** A mined status: where. */
  readonly mined?: { readonly block: bigint; readonly hash: Hex };
  /** The whole attempt is written (a compaction may have dropped it from the file). */
  readonly whole?: boolean;
}

/** The fields of a new attempt; it starts `signed` at a nonce of its lane. */
export interface NewAttempt {
  readonly nonce: number;
  readonly kind: Attempt["kind"];
  readonly targets: readonly TargetPlan[];
  readonly to: Attempt["to"];
  readonly data: Hex;
  readonly gas: bigint;
  readonly value?: bigint;
  readonly createdAtBlock: bigint;
  readonly after?: Hex;
}

export class Attempts {
  /** Who holds each position (claims.ts): one owner at a time, freed only by its holder. */
  readonly claims = new Claims();
  private readonly byId = new Map<string, Attempt>();
  /** Attempts whose intent is in their signer's journal. */
  private readonly journaled = new WeakSet<Attempt>();
  private seq = 0;
  private readonly runId = Date.now().toString(36);

  constructor(
    private readonly lanesByAddress: ReadonlyMap<string, NonceLane>,
    private readonly log: Logger,
  ) {}

  laneOf(a: Attempt): NonceLane | undefined {
    return this.lanesByAddress.get(a.signer.toLowerCase());
  }

  /** Attempts not yet terminal (pending, cancelling, being signed). */
  get unresolved(): Attempt[] {
    return [...this.byId.values()].filter((a) => !isTerminal(a.status));
  }

  /** A new attempt at a nonce of the lane: registered, tracked, its targets claimed. Not journaled yet. */
  open(lane: NonceLane, fields: NewAttempt): Attempt {
    const a: Attempt = {
      id: `${this.runId}-${++this.seq}`,
      signer: lane.address,
      txs: [],
      status: "signed",
      ...fields,
    };
    this.byId.set(a.id, a);
    this.track(lane, a);
    return a;
  }

  /** An attempt read back from the journal: registered (and tracked again, its targets claimed, unless `track` is false). */
  adopt(lane: NonceLane, a: Attempt, track = true): void {
    this.byId.set(a.id, a);
    this.journaled.add(a);
    if (track) this.track(lane, a);
  }

  /**
   * Journals the intents and first transactions of new attempts in one append (one fsync), before their broadcast.
   * Rejects when the write failed: then none of them is journaled, and none may be broadcast.
   */
  async journalIntents(lane: NonceLane, signed: readonly { attempt: Attempt; tx: SignedTx }[]): Promise<void> {
    await lane.journal.append(signed.flatMap(({ attempt, tx }) => [attemptRecord(attempt), txRecord(attempt, tx)]));
    for (const { attempt } of signed) this.journaled.add(attempt);
  }

  /** Journals a transaction signed at an attempt's nonce whose status does not change (a re-send). */
  async journalTx(lane: NonceLane, a: Attempt, tx: SignedTx): Promise<void> {
    await lane.journal.append([txRecord(a, tx)]);
  }

  /**
   * The one place an attempt's status changes: the lifecycle's rule is checked (transition), the mined block set,
   * and the change written to the signer's journal (with `also`, into a group, or in the background). A terminal
   * status untracks it from its lane.
   */
  setStatus(a: Attempt, to: AttemptStatus, w: StatusWrite = {}): Promise<void> {
    transition(a, to);
    if (w.mined) {
      a.minedBlock = w.mined.block;
      a.minedHash = w.mined.hash;
    }
    const lane = this.laneOf(a);
    if (!lane) return Promise.resolve();
    if (isTerminal(to)) this.untrack(lane, a);
    let records: JournalRecord[];
    if (w.whole) {
      records = recordsOf(a);
      this.journaled.add(a);
    } else {
      records = [...(w.also ?? [])];
      if (this.journaled.has(a)) records.push(statusRecord(a));
    }
    if (records.length === 0) return Promise.resolve();
    if (w.into) {
      w.into.push(...records);
      return Promise.resolve();
    }
    if (w.background) {
      this.record(lane, records);
      return Promise.resolve();
    }
    return lane.journal.append(records);
  }

  /** A journal write whose failure is logged, never left unhandled (the records are also in memory). */
  record(lane: NonceLane, records: readonly JournalRecord[]): void {
    lane.journal.append(records).catch((error: unknown) => {
      this.log.error(
        { event: "executor_error", signer: lane.address, step: "journal", error: describeError(error) },
        `writing the journal of ${lane.address} failed`,
      );
    });
  }

  track(lane: NonceLane, a: Attempt): void {
    lane.live.set(a.nonce, a);
    this.reserve(a.targets, a);
  }

  untrack(lane: NonceLane, a: Attempt): void {
    if (lane.live.get(a.nonce) === a) lane.live.delete(a.nonce);
  }

  /** Claims the positions for `by`; those a live attempt of ours already holds are never taken (returned). */
  reserve(targets: readonly TargetPlan[], by: Holder): string[] {
    return this.claims.claim(
      targets.map((t) => t.key),
      by,
    );
  }

  /** Frees the attempt's positions that it (still) holds. */
  releaseFrom(a: Attempt): void {
    this.claims.release(
      a.targets.map((t) => t.key),
      a,
    );
  }

  /** Frees positions the planning pipeline holds (an attempt's are freed by releaseFrom only). */
  release(keys: readonly string[]): void {
    this.claims.release(keys, "planning");
  }

  /** Forgets terminal attempts (after a compaction). */
  prune(): void {
    for (const [id, a] of this.byId) if (isTerminal(a.status)) this.byId.delete(id);
  }
}
