/**
 * A write-ahead journal of one signer's attempts: JSON Lines, append-only, fsynced before any broadcast it covers.
 * Records: an attempt (intent and nonce), each signed transaction (hash, raw bytes, fees), each status change.
 * On open the file is replayed into attempts; a torn last line (a crash mid-write) is dropped, any other bad line
 * is a JournalError, never silently skipped. The live attempts are then rewritten (tmp file, fsync, rename), so
 * the file holds only what is still unresolved plus what happened since.
 *
 * Writes are group-committed: records handed in while a write is in flight go out together in the next write,
 * with one fsync, so a burst of broadcasts pays for one or two fsyncs, not one each.
 */
import { mkdirSync, readFileSync } from "node:fs";
import { type FileHandle, open, rename, rm } from "node:fs/promises";
import { hostname } from "node:os";
import { dirname } from "node:path";
import type { Address, Hex } from "viem";
import { type Attempt, type AttemptStatus, isTerminal, type SignedTx, type TargetPlan } from "./attempt.ts";

export class JournalError extends Error {
  override name = "JournalError";
}

type Wire<T> = {
  [K in keyof T]: T[K] extends bigint ? string : T[K] extends bigint | undefined ? string | undefined : T[K];
};

export type JournalRecord =
  | {
      readonly t: "attempt";
      readonly id: string;
      readonly signer: Address;
      readonly nonce: number;
      readonly kind: Attempt["kind"];
      readonly targets: readonly Wire<TargetPlan>[];
      readonly to: Address;
      readonly data: Hex;
      readonly gas: string;
      readonly createdAtBlock: string;
      /** Backrun: the pending oracle update it was sent behind (after a restart it is cancelled unless mined). */
      readonly after?: Hex;
    }
  | ({ readonly t: "tx"; readonly id: string } & Wire<SignedTx>)
  | {
      readonly t: "status";
      readonly id: string;
      readonly status: AttemptStatus;
      readonly minedBlock?: string;
      readonly minedHash?: Hex;
    };

export function attemptRecord(a: Attempt): JournalRecord {
  return {
    t: "attempt",
    id: a.id,
    signer: a.signer,
    nonce: a.nonce,
    kind: a.kind,
    targets: a.targets.map((x) => ({ ...x, expectedReward: x.expectedReward.toString() })),
    to: a.to,
    data: a.data,
    gas: a.gas.toString(),
    createdAtBlock: a.createdAtBlock.toString(),
    ...(a.after === undefined ? {} : { after: a.after }),
  };
}

export function txRecord(a: Attempt, tx: SignedTx): JournalRecord {
  return {
    t: "tx",
    id: a.id,
    hash: tx.hash,
    raw: tx.raw,
    purpose: tx.purpose,
    maxFeePerGas: tx.maxFeePerGas.toString(),
    maxPriorityFeePerGas: tx.maxPriorityFeePerGas.toString(),
    sentAtBlock: tx.sentAtBlock.toString(),
  };
}

export function statusRecord(a: Attempt): JournalRecord {
  return {
    t: "status",
    id: a.id,
    status: a.status,
    minedBlock: a.minedBlock?.toString(),
    minedHash: a.minedHash,
  };
}

/** Every record that rebuilds the attempt as it stands. */
export function recordsOf(a: Attempt): JournalRecord[] {
  return [attemptRecord(a), ...a.txs.map((tx) => txRecord(a, tx)), statusRecord(a)];
}

/** Folds records into attempts, in file order. */
export function replay(records: readonly JournalRecord[], source = "journal"): Map<string, Attempt> {
  const attempts = new Map<string, Attempt>();
  const get = (id: string, line: number) => {
    const a = attempts.get(id);
    if (!a) throw new JournalError(`${source}:${line}: record for unknown attempt ${id}`);
    return a;
  };
  records.forEach((r, i) => {
    const line = i + 1;
    switch (r.t) {
      case "attempt":
        if (attempts.has(r.id)) return; // written again after a compaction: the first holds its transactions
        attempts.set(r.id, {
          id: r.id,
          signer: r.signer,
          nonce: r.nonce,
          kind: r.kind,
          targets: r.targets.map((x) => ({ ...x, expectedReward: BigInt(x.expectedReward) })),
          to: r.to,
          data: r.data,
          gas: BigInt(r.gas),
          txs: [],
          status: "signed",
          createdAtBlock: BigInt(r.createdAtBlock),
          ...(typeof r.after === "string" ? { after: r.after } : {}),
        });
        return;
      case "tx": {
        const a = get(r.id, line);
        const tx: SignedTx = {
          hash: r.hash,
          raw: r.raw,
          purpose: r.purpose,
          maxFeePerGas: BigInt(r.maxFeePerGas),
          maxPriorityFeePerGas: BigInt(r.maxPriorityFeePerGas),
          sentAtBlock: BigInt(r.sentAtBlock),
        };
        const same = a.txs.findIndex((t) => t.hash === tx.hash);
        if (same >= 0) a.txs[same] = tx;
        else a.txs.push(tx);
        return;
      }
      case "status": {
        const a = get(r.id, line);
        a.status = r.status;
        a.minedBlock = r.minedBlock === undefined ? undefined : BigInt(r.minedBlock);
        a.minedHash = r.minedHash;
        return;
      }
      default:
        throw new JournalError(`${source}:${line}: unknown record type`);
    }
  });
  return attempts;
}

/** Parses the file's text; a torn last line is dropped, anything else malformed is an error. */
export function parseJournal(text: string, source: string): JournalRecord[] {
  const lines = text.split("\n");
  const complete = text.endsWith("\n") || text === "";
  const records: JournalRecord[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line === "") continue;
    try {
      const r = JSON.parse(line) as JournalRecord;
      if (typeof r !== "object" || r === null || typeof r.t !== "string" || typeof r.id !== "string") {
        throw new Error("not a journal record");
      }
      records.push(r);
    } catch (error) {
      if (i === lines.length - 1 && !complete) break; // torn by a crash mid-write: it was never acted on
      throw new JournalError(`${source}:${i + 1}: unreadable journal line (${(error as Error).message})`);
    }
  }
  return records;
}

export class Journal {
  private queued: string[] = [];
  private flushing: Promise<void> | undefined;
  private written = 0;

  private constructor(
    readonly path: string,
    private handle: FileHandle,
  ) {}

  /**
   * Opens (creating) the journal, replays it and compacts it to the attempts still unresolved. The journal is held
   * under a lock (`<path>.lock`, naming the holder's process): a second keeper on the same signer and chain would
   * collide on nonces, so it is refused (JournalError) while the holder lives; a lock left by a process that is gone
   * (SIGKILL) is taken over.
   */
  static async open(path: string): Promise<{ journal: Journal; attempts: Attempt[] }> {
    mkdirSync(dirname(path), { recursive: true });
    await lock(path);
    try {
      return await Journal.openLocked(path);
    } catch (error) {
      await unlock(path);
      throw error;
    }
  }

  private static async openLocked(path: string): Promise<{ journal: Journal; attempts: Attempt[] }> {
    let text = "";
    try {
      text = readFileSync(path, "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") {
        throw new JournalError(`cannot read journal ${path}: ${(error as Error).message}`);
      }
    }
    const attempts = [...replay(parseJournal(text, path), path).values()].filter((a) => !isTerminal(a.status));
    await rewrite(path, attempts);
    const handle = await open(path, "a");
    return { journal: new Journal(path, handle), attempts };
  }

  /** Resolves once the records are on disk (fsynced). */
  append(records: readonly JournalRecord[]): Promise<void> {
    for (const r of records) this.queued.push(`${JSON.stringify(r)}\n`);
    this.written += records.length;
    return this.flush();
  }

  private flush(): Promise<void> {
    // chain behind the write in flight; records queued meanwhile share the next write and fsync
    const run = async (): Promise<void> => {
      if (this.queued.length === 0) return;
      const chunk = this.queued.join("");
      this.queued = [];
      await this.handle.write(chunk);
      await this.handle.datasync();
    };
    const next = (this.flushing ?? Promise.resolve()).then(run, run);
    this.flushing = next;
    return next;
  }

  /** Records appended since open or the last compaction. */
  get recordsWritten(): number {
    return this.written;
  }

  /**
   * Rewrites the file with only the attempts `live()` returns when the rewrite runs, atomically. It takes its turn
   * in the write chain: appends made meanwhile wait for it and go to the new file.
   */
  compact(live: () => readonly Attempt[]): Promise<void> {
    const run = async (): Promise<void> => {
      await this.handle.close();
      await rewrite(this.path, live());
      this.handle = await open(this.path, "a");
      this.written = 0;
    };
    const next = (this.flushing ?? Promise.resolve()).then(run, run);
    this.flushing = next;
    return next;
  }

  async close(): Promise<void> {
    await this.flushing?.catch(() => {});
    await this.handle.close();
    await unlock(this.path);
  }
}

interface LockHolder {
  readonly pid: number;
  readonly host: string;
  readonly startedAt: string;
}

/**
 * Whether a process of this machine still runs (EPERM: it does, under another user). A zombie (killed, not yet
 * reaped: common in containers whose PID 1 reaps nothing) does not: on Linux its state in /proc says so.
 */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return true; // no /proc (not Linux): the signal's answer stands
  }
}

/** The journals this process holds locked: a lock naming this pid but not in here was left by an earlier process
 * that had the same pid (a restarted container is pid 1 again). */
const held = new Set<string>();

async function lock(path: string): Promise<void> {
  const lockPath = `${path}.lock`;
  const me: LockHolder = { pid: process.pid, host: hostname(), startedAt: new Date().toISOString() };
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const file = await open(lockPath, "wx", 0o600);
      try {
        await file.write(`${JSON.stringify(me)}\n`);
        await file.sync();
      } finally {
        await file.close();
      }
      held.add(lockPath);
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") {
        throw new JournalError(`cannot lock journal ${path}: ${(error as Error).message}`);
      }
    }
    let holder: Partial<LockHolder> = {};
    try {
      holder = JSON.parse(readFileSync(lockPath, "utf8")) as Partial<LockHolder>;
    } catch {
      // torn or foreign: treated as left behind
    }
    // the holder lives: another process with that pid, or this very process (a second keeper in it). The host is
    // not compared: a container gets a new hostname at every start, and a state directory shared between machines
    // is not supported.
    const self = holder.pid === process.pid;
    if (typeof holder.pid === "number" && ((self && held.has(lockPath)) || (!self && alive(holder.pid)))) {
      throw new JournalError(
        `another keeper (pid ${holder.pid}, started ${holder.startedAt ?? "?"}) holds this signer on this chain: ` +
          `${lockPath}. Two keepers on one key collide on nonces; stop it first`,
      );
    }
    await rm(lockPath, { force: true }); // its holder is gone (killed, or an earlier process with our pid)
  }
  throw new JournalError(`cannot lock journal ${path}: the lock keeps coming back`);
}

/** Removes the lock if this process holds it. */
async function unlock(path: string): Promise<void> {
  const lockPath = `${path}.lock`;
  try {
    const holder = JSON.parse(readFileSync(lockPath, "utf8")) as Partial<LockHolder>;
    if (holder.pid === process.pid && held.has(lockPath)) await rm(lockPath, { force: true });
    held.delete(lockPath);
  } catch {
    // gone already
  }
}

async function rewrite(path: string, attempts: readonly Attempt[]): Promise<void> {
  const tmp = `${path}.tmp`;
  const file = await open(tmp, "w");
  try {
    await file.write(
      attempts
        .flatMap(recordsOf)
        .map((r) => `${JSON.stringify(r)}\n`)
        .join(""),
    );
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(tmp, path);
  const dir = await open(dirname(path), "r");
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}
