/**
 * The journal lock's lease, as data: who holds it (pid, host, boot, pid namespace, token), the file and clock seams
 * tests inject faults through, and the pure verdict on a lock found in place (judge). The lock itself (taking,
 * renewing, waiting out, releasing) is journalLock.ts.
 */
import { readFileSync, readlinkSync } from "node:fs";
import { link, readFile, rename, rm, stat, utimes, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import type { Logger } from "../ops/logger.ts";

/** The holder renews its lease this often. */
export const LEASE_RENEW_MS = 5_000;
/** A lease not renewed for this long has expired and may be taken over from any host, boot or namespace. */
export const LEASE_TTL_MS = 30_000;
/** While waiting for a fresh lease of another host, boot or namespace to expire, its mtime is read this often. */
export const LEASE_POLL_MS = 1_000;

export interface LockHolder {
  readonly pid: number;
  readonly host: string;
  readonly boot: string | null;
  readonly pidNamespace: string | null;
  readonly startedAt: string;
  /** Random, one per holding: tells this holding from an earlier one of the same pid. */
  readonly token: string;
}

/** The file operations the lock needs (part of the journal's seam, JournalFs). */
export interface LockFs {
  writeFile(path: string, data: string): Promise<void>;
  readFile(path: string): Promise<string>;
  link(existing: string, path: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  rm(path: string): Promise<void>;
  /** The file's mtime, ms since the epoch: when its lease was last renewed. */
  mtimeMs(path: string): Promise<number>;
  /** Sets the file's mtime (and atime) to `ms`. */
  touch(path: string, ms: number): Promise<void>;
}

export const nodeLockFs: LockFs = {
  writeFile: (path, data) => writeFile(path, data, { mode: 0o600, flush: true }),
  readFile: (path) => readFile(path, "utf8"),
  link,
  rename,
  rm: (path) => rm(path, { force: true }),
  mtimeMs: async (path) => (await stat(path)).mtimeMs,
  touch: (path, ms) => utimes(path, new Date(ms), new Date(ms)),
};

/** Time and timers of the lease: the real ones by default, a fake one in tests. */
export interface LeaseClock {
  now(): number;
  /**
   * Runs `renew` every `ms` until the returned function is called; the timer keeps no process alive unless
   * `keepAlive` (a wait the keeper's start is blocked on).
   */
  every(ms: number, renew: () => Promise<void>, keepAlive?: boolean): () => void;
}

export const realClock: LeaseClock = {
  now: () => Date.now(),
  every(ms, renew, keepAlive = false) {
    const timer = setInterval(() => void renew(), ms);
    if (!keepAlive) timer.unref();
    return () => clearInterval(timer);
  },
};

export interface LockOptions {
  readonly fs: LockFs;
  readonly log: Logger;
  readonly clock?: LeaseClock;
  readonly renewMs?: number;
  readonly ttlMs?: number;
  /** How often a fresh lease of another host, boot or namespace is read while waiting for it to expire. */
  readonly pollMs?: number;
  /** Aborts a wait for a lease to expire (the keeper was asked to stop): the lock then rejects (JournalError). */
  readonly signal?: AbortSignal;
}

function orNull(read: () => string): string | null {
  try {
    return read().trim() || null;
  } catch {
    return null;
  }
}

export type Identity = Pick<LockHolder, "pid" | "host" | "boot" | "pidNamespace">;

/** Who this process is, for its locks. */
export function lockIdentity(): Identity {
  return {
    pid: process.pid,
    host: hostname(),
    boot: orNull(() => readFileSync("/proc/sys/kernel/random/boot_id", "utf8")),
    pidNamespace: orNull(() => readlinkSync("/proc/self/ns/pid")),
  };
}

/**
 * Whether a process of this namespace still runs (EPERM: it does, under another user). A zombie (killed, not yet
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

/** The tokens of the locks this process holds, by lock file: a lock naming our pid under another token is older. */
export const held = new Map<string, string>();

export function describe(h: Partial<LockHolder>): string {
  return (
    `pid ${h.pid ?? "?"} on host ${h.host ?? "?"} (boot ${h.boot ?? "?"}, pid namespace ${h.pidNamespace ?? "?"}, ` +
    `started ${h.startedAt ?? "?"})`
  );
}

export const seconds = (ms: number) => `${Math.ceil(Math.round(ms) / 1000)} s`;

export interface Verdict {
  /** Taken over: why its holder is known gone. */
  readonly takeOver?: "holder_gone" | "lease_expired";
  /** Refused: why its holder may still run. */
  readonly refuse?: string;
  /** Refused, but its holder's pid says nothing from here: its lease is waited for (once) before refusing. */
  readonly mayExpire?: boolean;
}

/** Whether the lock (its holder as read, or undefined when unreadable; renewed `age` ms ago) may be taken over. */
export function judge(
  h: Partial<LockHolder> | undefined,
  me: Identity,
  lockPath: string,
  age: number,
  ttl: number,
): Verdict {
  const readable = h !== undefined && typeof h.pid === "number" && typeof h.host === "string";
  const here = readable && h.host === me.host && h.boot === me.boot && h.pidNamespace === me.pidNamespace;
  // a lock of this process (another journal of the same file opened twice) never expires while it runs
  const ours = here && h.pid === me.pid && typeof h.token === "string" && held.get(lockPath) === h.token;
  if (here && !ours && (h.pid === me.pid || !alive(h.pid as number))) return { takeOver: "holder_gone" };
  if (age > ttl && !ours) return { takeOver: "lease_expired" };
  const lease =
    `its lease was renewed ${seconds(Math.max(0, age))} ago and expires in ${seconds(Math.max(0, ttl - age))} ` +
    `unless renewed (a lock not renewed for ${seconds(ttl)} is taken over)`;
  if (!readable) return { refuse: `a lock this keeper cannot read; ${lease}`, mayExpire: true };
  if (here) {
    return {
      refuse:
        `another keeper (pid ${h.pid}, started ${h.startedAt ?? "?"}) holds this signer on this chain, and it is ` +
        `running on this host (${me.host}, same boot and pid namespace); ${lease}`,
    };
  }
  const what =
    h.boot === undefined || h.pidNamespace === undefined
      ? "written by an earlier version that did not record its boot and namespace"
      : `another host, boot or pid namespace than this keeper's (host ${me.host}, boot ${me.boot ?? "?"}, pid ` +
        `namespace ${me.pidNamespace ?? "?"}): from here its pid says nothing about whether it runs`;
  return { refuse: `a lock by ${describe(h)}, ${what}; ${lease}`, mayExpire: true };
}

export function parse(text: string): Partial<LockHolder> | undefined {
  try {
    const h = JSON.parse(text) as unknown;
    return typeof h === "object" && h !== null ? (h as Partial<LockHolder>) : undefined;
  } catch {
    return undefined;
  }
}

export const enoent = (error: unknown) => (error as NodeJS.ErrnoException)?.code === "ENOENT";
export const random = () => Math.random().toString(36).slice(2);

/** A held lock: renewed until released. */
