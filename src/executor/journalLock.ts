/**
 * The journal's lock, `<journal>.lock`: one keeper per signer and chain (two on one key collide on nonces).
 *
 * The lock is a lease. It names its holder (pid, hostname, the kernel's boot id, the pid namespace, null where the
 * system has none, and a random token of this holding), and the holder renews it every LEASE_RENEW_MS by setting
 * the file's mtime to its clock. A lock not renewed for LEASE_TTL_MS has expired: its holder is gone (or stalled
 * for six renewals), whoever it was.
 *
 * A pid means something only in its own namespace of its own boot of its own host (two containers are both pid 1).
 * So a lock of this host, boot and namespace whose holder is gone (no such process, a zombie, or our own pid under
 * a token this process does not hold) is taken over at once; any other lock (another host, boot or container, the
 * same container restarted, an earlier version's, an unreadable one) only once its lease has expired. While it is
 * fresh the keeper waits for it (`journal_lock_waiting`), watching the lock's mtime until the lease would expire
 * (plus one poll): a keeper restarted within the TTL after a SIGKILL then heals by itself instead of exiting. If the
 * holder renews meanwhile it runs, and the keeper refuses to start, saying what holds it and when it expires; if not,
 * it is taken over. A live holder of this host, boot and namespace is refused at once. Every takeover is logged
 * (`journal_lock_taken_over`). Expiry compares the lock file's mtime with this keeper's clock: a skew between the
 * two hosts' clocks shorter than the TTL is absorbed by it.
 */
import type { Logger } from "../ops/logger.ts";
import { JournalError } from "./journalCodec.ts";
import {
  describe,
  enoent,
  held,
  judge,
  LEASE_POLL_MS,
  LEASE_RENEW_MS,
  LEASE_TTL_MS,
  type LeaseClock,
  type LockFs,
  type LockHolder,
  type LockOptions,
  lockIdentity,
  parse,
  random,
  realClock,
  seconds,
  type Verdict,
} from "./journalLease.ts";

export {
  LEASE_POLL_MS,
  LEASE_RENEW_MS,
  LEASE_TTL_MS,
  type LeaseClock,
  type LockFs,
  type LockHolder,
  type LockOptions,
  lockIdentity,
  nodeLockFs,
  realClock,
} from "./journalLease.ts";

export class JournalLock {
  private stopRenewing: () => void;
  private failures = 0;
  private renewing = false;
  /** Why this keeper no longer holds the lock (taken over or removed), once it knows. */
  lost: string | undefined;

  constructor(
    readonly lockPath: string,
    private readonly token: string,
    private readonly o: Required<Pick<LockOptions, "fs" | "log" | "clock">>,
    renewMs: number,
  ) {
    this.stopRenewing = o.clock.every(renewMs, () => this.renew());
  }

  /** Sets the lock's mtime to now if it is still ours; a failure is logged once per run of failures. */
  async renew(): Promise<void> {
    if (this.renewing || this.lost !== undefined) return;
    this.renewing = true;
    const { fs, log, clock } = this.o;
    try {
      const holder = parse(await fs.readFile(this.lockPath));
      if (holder?.token !== this.token) {
        this.lose(`it is now held by ${holder ? describe(holder) : "a lock this keeper cannot read"}`);
        return;
      }
      await fs.touch(this.lockPath, clock.now());
      if (this.failures > 0) {
        log.info(
          { event: "journal_lock_renew_ok", file: this.lockPath, failedRenewals: this.failures },
          `journal lock ${this.lockPath} renewed again after ${this.failures} failed renewal(s)`,
        );
        this.failures = 0;
      }
    } catch (error) {
      if (enoent(error)) {
        this.lose("it was removed");
        return;
      }
      if (this.failures++ === 0) {
        const message = (error as Error)?.message ?? String(error);
        log.error(
          { event: "journal_lock_renew_failed", file: this.lockPath, error: message },
          `cannot renew journal lock ${this.lockPath} (${message}): if it stays unrenewed for its lease, another ` +
            "keeper may take it over; renewals are tried again",
        );
      }
    } finally {
      this.renewing = false;
    }
  }

  private lose(why: string): void {
    this.lost = `journal lock ${this.lockPath} is no longer this keeper's: ${why}`;
    this.stopRenewing();
    this.o.log.error(
      { event: "journal_lock_lost", file: this.lockPath },
      `${this.lost}. Another keeper may be using this signer on this chain: nothing more is journaled or ` +
        "broadcast by this one; stop it",
    );
  }

  /** Stops renewing and removes the lock if it is still ours. */
  async release(): Promise<void> {
    this.stopRenewing();
    if (held.get(this.lockPath) === this.token) held.delete(this.lockPath);
    try {
      if (parse(await this.o.fs.readFile(this.lockPath))?.token === this.token) await this.o.fs.rm(this.lockPath);
    } catch {
      // gone already
    }
  }
}

interface Takeover {
  readonly holder: Partial<LockHolder> | undefined;
  readonly age: number;
  readonly reason: NonNullable<Verdict["takeOver"]>;
}

function logTakeover(log: Logger, lockPath: string, { holder, age, reason }: Takeover, ttl: number): void {
  log.warn(
    {
      event: "journal_lock_taken_over",
      file: lockPath,
      reason,
      host: holder?.host ?? null,
      pid: holder?.pid ?? null,
      boot: holder?.boot ?? null,
      pidNamespace: holder?.pidNamespace ?? null,
      startedAt: holder?.startedAt ?? null,
      renewedAgoMs: Math.round(age),
    },
    `journal lock ${lockPath} taken over from ${holder ? describe(holder) : "an unreadable lock"}, last renewed ` +
      `${seconds(Math.max(0, age))} ago: ${
        reason === "holder_gone"
          ? "its process is gone (same host, boot and pid namespace)"
          : `its lease expired (not renewed for ${seconds(ttl)})`
      }`,
  );
}

type WaitOutcome = "renewed" | "expired" | "gone";

/**
 * Reads the lock's mtime every `pollMs` until it moves ("renewed": its holder runs), the lock is gone ("gone":
 * released), or it has stayed at `mtime` for the TTL plus one poll ("expired"). Rejects if `signal` aborts.
 */
function awaitExpiry(
  o: { fs: LockFs; clock: LeaseClock; ttl: number; pollMs: number; signal: AbortSignal | undefined },
  path: string,
  lockPath: string,
  mtime: number,
): Promise<WaitOutcome> {
  const { fs, clock, ttl, pollMs, signal } = o;
  return new Promise((resolve, reject) => {
    const stopped = () =>
      new JournalError(`stopped while waiting for the lease of the lock of journal ${path} to expire`);
    if (signal?.aborted) return reject(stopped());
    let done = false;
    let stop = () => {};
    const finish = (outcome: WaitOutcome | JournalError) => {
      if (done) return;
      done = true;
      stop();
      signal?.removeEventListener("abort", onAbort);
      if (outcome instanceof JournalError) reject(outcome);
      else resolve(outcome);
    };
    const onAbort = () => finish(stopped());
    signal?.addEventListener("abort", onAbort, { once: true });
    stop = clock.every(
      pollMs,
      async () => {
        if (done) return;
        try {
          const now = await fs.mtimeMs(lockPath);
          if (now !== mtime) finish("renewed");
          else if (clock.now() - mtime >= ttl + pollMs) finish("expired");
        } catch (error) {
          finish(
            enoent(error)
              ? "gone"
              : new JournalError(`cannot read the lock of journal ${path}: ${(error as Error).message}`),
          );
        }
      },
      true,
    );
  });
}

function logWaiting(
  log: Logger,
  lockPath: string,
  holder: Partial<LockHolder> | undefined,
  age: number,
  waitMs: number,
): void {
  log.warn(
    {
      event: "journal_lock_waiting",
      file: lockPath,
      host: holder?.host ?? null,
      pid: holder?.pid ?? null,
      boot: holder?.boot ?? null,
      pidNamespace: holder?.pidNamespace ?? null,
      startedAt: holder?.startedAt ?? null,
      renewedAgoMs: Math.round(age),
      waitMs: Math.round(waitMs),
    },
    `journal lock ${lockPath} is held by ${holder ? describe(holder) : "a lock this keeper cannot read"}, whose ` +
      `pid says nothing from here, last renewed ${seconds(Math.max(0, age))} ago: waiting up to ${seconds(waitMs)} ` +
      "for its lease to expire (taken over then; refused if it is renewed meanwhile)",
  );
}

export async function lock(path: string, options: LockOptions): Promise<JournalLock> {
  const { fs, log } = options;
  const clock = options.clock ?? realClock;
  const ttl = options.ttlMs ?? LEASE_TTL_MS;
  const pollMs = options.pollMs ?? LEASE_POLL_MS;
  const lockPath = `${path}.lock`;
  const me = lockIdentity();
  const mine: LockHolder = { ...me, startedAt: new Date(clock.now()).toISOString(), token: random() };
  // written whole to a file of our own, then linked into place: a lock is never seen half written
  const tmp = `${lockPath}.${process.pid}.${random()}`;
  try {
    await fs.writeFile(tmp, `${JSON.stringify(mine)}\n`);
    await fs.touch(tmp, clock.now());
  } catch (error) {
    await fs.rm(tmp).catch(() => {});
    throw new JournalError(`cannot lock journal ${path}: ${(error as Error).message}`);
  }
  let takenOver: Takeover | undefined;
  let waited = false;
  /** The lock's text and how long ago it was renewed; undefined if it is gone (released meanwhile). */
  const read = async (): Promise<{ text: string; mtime: number; age: number } | undefined> => {
    try {
      const text = await fs.readFile(lockPath);
      const mtime = await fs.mtimeMs(lockPath);
      return { text, mtime, age: clock.now() - mtime };
    } catch (error) {
      if (enoent(error)) return undefined;
      throw new JournalError(`cannot read the lock of journal ${path}: ${(error as Error).message}`);
    }
  };
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await fs.link(tmp, lockPath);
        held.set(lockPath, mine.token);
        if (takenOver) logTakeover(log, lockPath, takenOver, ttl);
        return new JournalLock(lockPath, mine.token, { fs, log, clock }, options.renewMs ?? LEASE_RENEW_MS);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") {
          throw new JournalError(`cannot lock journal ${path}: ${(error as Error).message}`);
        }
      }
      let found = await read();
      if (!found) continue; // released meanwhile
      let holder = parse(found.text);
      let verdict = judge(holder, me, lockPath, found.age, ttl);
      let renewedMeanwhile = "";
      if (verdict.mayExpire && !waited) {
        // A keeper restarted within the TTL after a SIGKILL (a container restarted, a host rebooted) finds its own
        // earlier lock, fresh: it waits for the lease to expire rather than exiting for good.
        waited = true;
        const waitMs = Math.max(0, ttl + pollMs - found.age);
        logWaiting(log, lockPath, holder, found.age, waitMs);
        const started = clock.now();
        const outcome = await awaitExpiry(
          { fs, clock, ttl, pollMs, signal: options.signal },
          path,
          lockPath,
          found.mtime,
        );
        if (outcome === "renewed") {
          renewedMeanwhile =
            `; it was renewed while this keeper waited ${seconds(clock.now() - started)} for its lease to ` +
            "expire, so its holder runs";
        }
        // our own lock, written before the wait, would otherwise start out as old as the wait was long
        await fs.touch(tmp, clock.now()).catch((error: unknown) => {
          throw new JournalError(`cannot lock journal ${path}: ${(error as Error).message}`);
        });
        found = await read();
        if (!found) continue;
        holder = parse(found.text);
        verdict = judge(holder, me, lockPath, found.age, ttl);
      }
      const { text, age } = found;
      if (verdict.refuse !== undefined) {
        throw new JournalError(
          `journal ${path} is locked: ${verdict.refuse}${renewedMeanwhile}. Two keepers on one key collide on ` +
            "nonces, so it is not taken over while its lease is fresh. Stop that keeper; if you are sure none runs " +
            `on this key and chain any more and cannot wait, remove ${lockPath} and start again`,
        );
      }
      // Moved aside, not removed: if another keeper took it over since we read it, what we moved is its fresh lock,
      // which goes back; only the lock we judged is removed.
      const aside = `${lockPath}.stale-${random()}`;
      try {
        await fs.rename(lockPath, aside);
      } catch (error) {
        if (enoent(error)) continue;
        throw new JournalError(`cannot take over the lock of journal ${path}: ${(error as Error).message}`);
      }
      if ((await fs.readFile(aside).catch(() => undefined)) !== text) {
        await fs.link(aside, lockPath).catch(() => {});
        await fs.rm(aside).catch(() => {});
        continue;
      }
      await fs.rm(aside).catch(() => {});
      takenOver = { holder, age, reason: verdict.takeOver ?? "holder_gone" };
    }
    throw new JournalError(`cannot lock journal ${path}: the lock keeps coming back`);
  } finally {
    await fs.rm(tmp).catch(() => {});
  }
}
