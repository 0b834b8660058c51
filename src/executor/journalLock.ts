/**
 * The journal's lock, `<journal>.lock`: one keeper per signer and chain (two on one key collide on nonces).
 *
 * The lock names its holder: pid, hostname, the kernel's boot id (/proc/sys/kernel/random/boot_id) and the pid
 * namespace (/proc/self/ns/pid), null where the system has none. A pid means something only in its own namespace
 * of its own boot of its own host (two containers are both pid 1), so a lock is taken over only when all three are
 * ours and its holder is gone: no such process, a zombie, or our own pid in a lock this process never took (an
 * earlier process of this namespace had it). A lock from another host, boot or namespace (another container, a
 * container restarted, the machine rebooted), from an earlier version (no identity) or unreadable is never taken
 * over: the keeper refuses to start and says what holds it and how to remove it.
 */
import { readFileSync, readlinkSync } from "node:fs";
import { link, rm, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { JournalError } from "./journalCodec.ts";

export interface LockHolder {
  readonly pid: number;
  readonly host: string;
  readonly boot: string | null;
  readonly pidNamespace: string | null;
  readonly startedAt: string;
}

function orNull(read: () => string): string | null {
  try {
    return read().trim() || null;
  } catch {
    return null;
  }
}

/** Who this process is, for its locks. */
export function lockIdentity(): Omit<LockHolder, "startedAt"> {
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

/** The locks this process holds: a lock naming our pid but not in here was left by an earlier process. */
const held = new Set<string>();

function describe(h: Partial<LockHolder>): string {
  return (
    `pid ${h.pid ?? "?"} on host ${h.host ?? "?"} (boot ${h.boot ?? "?"}, pid namespace ${h.pidNamespace ?? "?"}, ` +
    `started ${h.startedAt ?? "?"})`
  );
}

/** Why the lock's holder is not known to be gone, or undefined when it is and the lock may be taken over. */
function why(h: Partial<LockHolder> | undefined, me: Omit<LockHolder, "startedAt">, lockPath: string) {
  if (!h || typeof h.pid !== "number" || typeof h.host !== "string") {
    return "a lock this keeper cannot read, so it cannot tell whether its holder still runs";
  }
  if (h.boot === undefined || h.pidNamespace === undefined) {
    return `a lock by ${describe(h)}, written by an earlier version that did not record its boot and namespace`;
  }
  if (h.host !== me.host || h.boot !== me.boot || h.pidNamespace !== me.pidNamespace) {
    return (
      `a lock by ${describe(h)}, another host, boot or pid namespace than this keeper's (host ${me.host}, boot ` +
      `${me.boot ?? "?"}, pid namespace ${me.pidNamespace ?? "?"}): from here its pid says nothing about whether it runs`
    );
  }
  if (h.pid === me.pid ? held.has(lockPath) : alive(h.pid)) {
    return (
      `another keeper (pid ${h.pid}, started ${h.startedAt ?? "?"}) holds this signer on this chain, and it is ` +
      `running on this host (${me.host}, same boot and pid namespace)`
    );
  }
  return undefined;
}

export async function lock(path: string): Promise<void> {
  const lockPath = `${path}.lock`;
  const me = lockIdentity();
  const mine: LockHolder = { ...me, startedAt: new Date().toISOString() };
  // written whole to a file of our own, then linked into place: a lock is never seen half written
  const tmp = `${lockPath}.${process.pid}.${Math.random().toString(36).slice(2)}`;
  await writeFile(tmp, `${JSON.stringify(mine)}\n`, { mode: 0o600, flush: true });
  try {
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await link(tmp, lockPath);
        held.add(lockPath);
        return;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") {
          throw new JournalError(`cannot lock journal ${path}: ${(error as Error).message}`);
        }
      }
      let holder: Partial<LockHolder> | undefined;
      try {
        holder = JSON.parse(readFileSync(lockPath, "utf8")) as Partial<LockHolder>;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "ENOENT") continue; // released meanwhile
      }
      const reason = why(holder, me, lockPath);
      if (reason !== undefined) {
        throw new JournalError(
          `journal ${path} is locked: ${reason}. Two keepers on one key collide on nonces, so it is not taken over. ` +
            `Stop that keeper; if you are sure none runs on this key and chain any more, remove ${lockPath} and start again`,
        );
      }
      await rm(lockPath, { force: true }); // its holder is gone: killed, or an earlier process with our pid
    }
    throw new JournalError(`cannot lock journal ${path}: the lock keeps coming back`);
  } finally {
    await rm(tmp, { force: true });
  }
}

/** Removes the lock if this process holds it. */
export async function unlock(path: string): Promise<void> {
  const lockPath = `${path}.lock`;
  try {
    const holder = JSON.parse(readFileSync(lockPath, "utf8")) as Partial<LockHolder>;
    if (holder.pid === process.pid && held.has(lockPath)) await rm(lockPath, { force: true });
    held.delete(lockPath);
  } catch {
    // gone already
  }
}
