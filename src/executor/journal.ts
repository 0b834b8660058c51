/**
 * A write-ahead journal of one signer's attempts: JSON Lines, append-only, fsynced before any broadcast it covers.
 * Records: an attempt (intent and nonce), each signed transaction (hash, raw bytes, fees), each status change. Each
 * line carries its seq and a CRC-32 (journalCodec.ts).
 *
 * On open the file is replayed into attempts. A torn last line (a crash mid-write) is dropped (`journal_torn_tail`).
 * Damage anywhere else (a checksum mismatch, an unreadable line, seqs missing, records of an attempt whose intent
 * is gone) is reported (`journal_damaged`, an error: attempts journaled there are forgotten), the damaged file is
 * kept beside it, and the journal opens with everything it could read: a keeper that refused to start would
 * liquidate nothing, and its operator could do no better than start it on a journal without the lost lines. The
 * live attempts are then rewritten (tmp file, fsync, rename), so the file holds only what is still unresolved.
 *
 * Writes are group-committed: records handed in while a write is in flight go out together in the next write, with
 * one fsync, so a burst of broadcasts pays for one or two fsyncs, not one each. A write that fails rejects every
 * append it carried (their broadcasts must not happen) and whatever part of it reached the file is cut off before
 * the next write, so later appends work again once the fault clears.
 */
import { mkdirSync, readFileSync } from "node:fs";
import { copyFile, open, rename, rm } from "node:fs/promises";
import { dirname } from "node:path";
import type { Logger } from "../ops/logger.ts";
import { type Attempt, isTerminal } from "./attempt.ts";
import {
  encodeLine,
  type JournalDamage,
  JournalError,
  type JournalRecord,
  readJournal,
  recordsOf,
  replay,
} from "./journalCodec.ts";
import { type JournalLock, type LeaseClock, type LockFs, lock, nodeLockFs } from "./journalLock.ts";

export {
  attemptRecord,
  type DamageReason,
  type JournalDamage,
  JournalError,
  type JournalRecord,
  parseJournal,
  readJournal,
  recordsOf,
  replay,
  statusRecord,
  txRecord,
} from "./journalCodec.ts";

/** The file operations the journal needs: node:fs/promises by default, a fault injector in tests. */
export interface JournalFile {
  write(buffer: Uint8Array, offset: number, length: number): Promise<{ bytesWritten: number }>;
  datasync(): Promise<void>;
  sync(): Promise<void>;
  truncate(length: number): Promise<void>;
  close(): Promise<void>;
}
/** The journal's file operations and its lock's (journalLock.ts). */
export interface JournalFs extends LockFs {
  open(path: string, flags: "a" | "w" | "r"): Promise<JournalFile>;
}
export const nodeFs: JournalFs = { ...nodeLockFs, open: (path, flags) => open(path, flags), rename };

/** The "file" of a read-only journal: never written (append rejects first), closed as a no-op. */
const readOnlyFile: JournalFile = {
  write: () => Promise.reject(new JournalError("a read-only journal writes nothing")),
  datasync: async () => {},
  sync: async () => {},
  truncate: () => Promise.reject(new JournalError("a read-only journal writes nothing")),
  close: async () => {},
};

export interface JournalOptions {
  /** Where damage, torn lines and write faults are reported. */
  readonly log: Logger;
  readonly fs?: JournalFs;
  /**
   * The lock's lease: its clock and timer, how often it is renewed, after how long it expires, how often a fresh
   * lease of another host is read while waiting for it to expire (tests).
   */
  readonly lease?: {
    readonly clock?: LeaseClock;
    readonly renewMs?: number;
    readonly ttlMs?: number;
    readonly pollMs?: number;
  };
  /** Aborts a wait for another keeper's lease to expire (the keeper was asked to stop): open rejects. */
  readonly signal?: AbortSignal;
}

export interface OpenedJournal {
  readonly journal: Journal;
  readonly attempts: Attempt[];
  /** What the file had lost (also logged as journal_damaged): the lane must not trust its own nonce count. */
  readonly damage: readonly JournalDamage[];
}

function describeFault(error: unknown): string {
  const e = error as NodeJS.ErrnoException;
  const message = e?.message ?? String(error);
  return e?.code && !message.startsWith(e.code) ? `${e.code}: ${message}` : message;
}

function writeError(step: string, error: unknown, path: string): JournalError {
  return new JournalError(
    `journal ${step} failed (${describeFault(error)}) for ${path}: nothing is broadcast until it is written`,
    { cause: error },
  );
}

/** Writes all of `chunk`: a write may take less than it was given. */
async function writeAll(file: JournalFile, chunk: Uint8Array): Promise<void> {
  for (let off = 0; off < chunk.length; ) {
    const { bytesWritten } = await file.write(chunk, off, chunk.length - off);
    if (!(bytesWritten > 0)) throw new Error(`short write: 0 of ${chunk.length - off} bytes written`);
    off += bytesWritten;
  }
}

async function syncDir(fs: JournalFs, path: string): Promise<void> {
  const dir = await fs.open(dirname(path), "r");
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}

interface Replaced {
  readonly handle: JournalFile;
  readonly size: number;
  readonly seq: number;
  readonly dirSynced: boolean;
}

/**
 * Writes the attempts' records (seq from 1) to `<path>.tmp`, fsyncs it, opens it for appending and renames it over
 * the journal. Until the rename the journal is untouched; a failure before it throws and leaves it as it was.
 */
async function replaceFile(fs: JournalFs, path: string, attempts: readonly Attempt[]): Promise<Replaced> {
  const tmp = `${path}.tmp`;
  const records = attempts.flatMap(recordsOf);
  const chunk = Buffer.from(records.map((r, i) => encodeLine(r, i + 1)).join(""));
  let file: JournalFile | undefined;
  let handle: JournalFile | undefined;
  try {
    file = await fs.open(tmp, "w");
    await writeAll(file, chunk);
    await file.sync();
    handle = await fs.open(tmp, "a");
    await fs.rename(tmp, path);
  } catch (error) {
    await handle?.close().catch(() => {});
    await rm(tmp, { force: true }).catch(() => {});
    throw error;
  } finally {
    await file?.close().catch(() => {});
  }
  const dirSynced = await syncDir(fs, path).then(
    () => true,
    () => false, // the rename is done but maybe not durable: synced again before the next write
  );
  return { handle, size: chunk.length, seq: records.length, dirSynced };
}

export class Journal {
  private queued: JournalRecord[] = [];
  private flushing: Promise<unknown> | undefined;
  private written = 0;
  /** Bytes of the file known good; a failed write may have left more, cut off before the next one. */
  private size: number;
  private dirty = false;
  private dirSynced: boolean;
  private seq: number;
  private failing = 0;

  private constructor(
    readonly path: string,
    private handle: JournalFile,
    private readonly fs: JournalFs,
    private readonly log: Logger,
    /** Undefined for a read-only journal (openReadOnly): it holds no lock and writes nothing. */
    private readonly held: JournalLock | undefined,
    replaced: Replaced,
  ) {
    this.size = replaced.size;
    this.seq = replaced.seq;
    this.dirSynced = replaced.dirSynced;
  }

  /**
   * Opens (creating) the journal, replays it and compacts it to the attempts still unresolved. The journal is held
   * under a lock (journalLock.ts): a second keeper on the same signer and chain would collide on nonces, so it is
   * refused (JournalError) unless the lock's holder is known to be gone or its lease expired. The lease is renewed
   * until close; a journal whose lock was taken over meanwhile refuses every append and compaction.
   */
  static async open(path: string, options: JournalOptions): Promise<OpenedJournal> {
    mkdirSync(dirname(path), { recursive: true });
    const fs = options.fs ?? nodeFs;
    const held = await lock(path, { fs, log: options.log, ...options.lease, signal: options.signal });
    try {
      return await Journal.openLocked(path, fs, options.log, held);
    } catch (error) {
      await held.release();
      throw error;
    }
  }

  /**
   * Opens the journal read-only (a dry run beside the live keeper of the same signer): its attempts are replayed as
   * `open` would, but no lock is taken or waited for, nothing is created, rewritten, compacted or kept (a damaged file
   * is only reported), and a missing file is an empty journal. Every append rejects (JournalError): what a
   * read-only journal cannot write must never be broadcast. Close releases nothing.
   */
  static async openReadOnly(path: string, options: Pick<JournalOptions, "log">): Promise<OpenedJournal> {
    const { attempts, damage } = await Journal.replayFile(path, options.log, false);
    const replaced: Replaced = { handle: readOnlyFile, size: 0, seq: 0, dirSynced: true };
    return { journal: new Journal(path, readOnlyFile, nodeFs, options.log, undefined, replaced), attempts, damage };
  }

  private static async openLocked(path: string, fs: JournalFs, log: Logger, held: JournalLock): Promise<OpenedJournal> {
    const { attempts, damage } = await Journal.replayFile(path, log, true);
    const replaced = await replaceFile(fs, path, attempts).catch((error: unknown) => {
      throw new JournalError(`cannot rewrite journal ${path}: ${describeFault(error)}`, { cause: error });
    });
    return { journal: new Journal(path, replaced.handle, fs, log, held, replaced), attempts, damage };
  }

  /** Reads and replays the file (missing: empty), reporting torn tails and damage; `keep` copies a damaged file. */
  private static async replayFile(
    path: string,
    log: Logger,
    keep: boolean,
  ): Promise<{ attempts: Attempt[]; damage: JournalDamage[] }> {
    let text = "";
    try {
      text = readFileSync(path, "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") {
        throw new JournalError(`cannot read journal ${path}: ${(error as Error).message}`);
      }
    }
    const read = readJournal(text);
    const orphans: { id: string; line: number }[] = [];
    const all = replay(read.records, path, (r, i) => orphans.push({ id: r.id, line: read.lines[i] as number }));
    const damage = [...read.damage];
    const first = orphans[0];
    if (first) {
      const ids = [...new Set(orphans.map((o) => o.id))];
      damage.push({
        line: first.line,
        lines: orphans.length,
        reason: "unknown_attempt",
        lastGoodSeq: null,
        lastNonce: null,
        attemptIds: ids.slice(0, 20),
        detail: `${orphans.length} record(s) of ${ids.length} attempt(s) whose intent record is missing, skipped`,
      });
    }
    if (read.torn) {
      log.warn(
        { event: "journal_torn_tail", file: path, line: read.torn.line, bytes: read.torn.bytes },
        `journal ${path}: its last line (${read.torn.line}, ${read.torn.bytes} bytes) was cut short by a crash ` +
          "mid-write and is dropped; it covered a broadcast that never happened",
      );
    }
    if (damage.length > 0) await reportDamage(path, damage, log, keep);
    const attempts = [...all.values()].filter((a) => !isTerminal(a.status));
    return { attempts, damage };
  }

  /** Opened by openReadOnly: holds no lock, writes nothing. */
  get readOnly(): boolean {
    return this.held === undefined;
  }

  /** Resolves once the records are on disk (fsynced); rejects (JournalError) if they may not be. */
  append(records: readonly JournalRecord[]): Promise<void> {
    if (this.held === undefined) {
      return Promise.reject(
        new JournalError(`journal ${this.path} is open read-only (a dry run): nothing is journaled or broadcast`),
      );
    }
    this.queued.push(...records);
    this.written += records.length;
    return this.turn(() => this.flush());
  }

  /** Runs `run` after everything handed in before it; records queued meanwhile share the next write and fsync. */
  private turn<T>(run: () => Promise<T>): Promise<T> {
    const next = (this.flushing ?? Promise.resolve()).then(run, run);
    this.flushing = next;
    return next;
  }

  private async flush(): Promise<void> {
    if (this.queued.length === 0) return;
    const records = this.queued;
    this.queued = [];
    if (this.held?.lost !== undefined) {
      throw new JournalError(`${this.held?.lost}: nothing is journaled or broadcast by this keeper any more`);
    }
    const chunk = Buffer.from(records.map((r, i) => encodeLine(r, this.seq + 1 + i)).join(""));
    let step = "repair";
    try {
      if (this.dirty) await this.handle.truncate(this.size); // what a failed write left: never acted on
      this.dirty = false;
      if (!this.dirSynced) await syncDir(this.fs, this.path);
      this.dirSynced = true;
      step = "write";
      this.dirty = true;
      await writeAll(this.handle, chunk);
      await this.handle.datasync();
      this.dirty = false;
    } catch (error) {
      const failure = writeError(step, error, this.path);
      if (this.failing++ === 0) {
        this.log.error(
          { event: "journal_write_failed", file: this.path, error: failure.message },
          `${failure.message}; later writes are tried again`,
        );
      }
      throw failure;
    }
    this.size += chunk.length;
    this.seq += records.length;
    if (this.failing > 0) {
      this.log.info(
        { event: "journal_write_ok", file: this.path, failedWrites: this.failing },
        `journal ${this.path} writes again after ${this.failing} failed write(s)`,
      );
      this.failing = 0;
    }
  }

  /** Records appended since open or the last compaction. */
  get recordsWritten(): number {
    return this.written;
  }

  /**
   * Rewrites the file with only the attempts `live()` returns when the rewrite runs, atomically. It takes its turn
   * in the write chain: appends made meanwhile wait for it and go to the new file. A compaction that fails leaves
   * the file as it was and the journal appending to it (`journal_compaction_failed`); it resolves false and is
   * tried again after as many records again.
   */
  compact(live: () => readonly Attempt[]): Promise<boolean> {
    return this.turn(async () => {
      this.written = 0;
      // read-only (a dry run), or the file is another keeper's now: never rewritten from here
      if (this.held === undefined || this.held.lost !== undefined) return false;
      let replaced: Replaced;
      try {
        replaced = await replaceFile(this.fs, this.path, live());
      } catch (error) {
        this.log.warn(
          { event: "journal_compaction_failed", file: this.path, error: describeFault(error) },
          `compacting journal ${this.path} failed (${describeFault(error)}); it keeps appending to the file as it is`,
        );
        return false;
      }
      const old = this.handle;
      this.handle = replaced.handle;
      this.size = replaced.size;
      this.seq = replaced.seq;
      this.dirSynced = replaced.dirSynced;
      this.dirty = false;
      await old.close().catch(() => {});
      return true;
    });
  }

  async close(): Promise<void> {
    await this.flushing?.catch(() => {});
    await this.handle.close();
    await this.held?.release();
  }
}

/** Logs each damaged stretch (journal_damaged) and keeps the file as it was, for a look by hand. */
async function reportDamage(path: string, damage: readonly JournalDamage[], log: Logger, keep = true): Promise<void> {
  const keptAs = `${path}.damaged-${new Date().toISOString().replace(/[:.]/g, "-")}`;
  const kept = keep
    ? await copyFile(path, keptAs).then(
        () => keptAs,
        () => null,
      )
    : null;
  for (const d of damage) {
    const after = d.lastGoodSeq === null ? "" : ` after seq ${d.lastGoodSeq}`;
    const nonces = d.lastNonce === null ? "any nonce" : `nonces above ${d.lastNonce}`;
    log.error(
      {
        event: "journal_damaged",
        file: path,
        line: d.line,
        lines: d.lines,
        reason: d.reason,
        detail: d.detail,
        lastGoodSeq: d.lastGoodSeq,
        lastNonce: d.lastNonce,
        attemptIds: d.attemptIds,
        keptAs: kept,
      },
      `journal ${path} is damaged at line ${d.line} (${d.reason}: ${d.detail}); ${d.lines} line(s)${after} ` +
        `skipped. Attempts journaled there are forgotten: transactions at ${nonces} may be in flight without the ` +
        "keeper knowing them, so the lane must take its nonce from the chain, and their positions may be targeted " +
        `again. ${
          kept
            ? `The damaged file is kept as ${kept}`
            : keep
              ? "The damaged file could not be kept"
              : "The journal is open read-only (a dry run): the file is left as it is"
        }`,
    );
  }
}
