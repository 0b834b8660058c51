import {
  appendFileSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { hostname, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { type Attempt, transition } from "../../src/executor/attempt.ts";
import {
  attemptRecord,
  Journal,
  JournalError,
  type JournalFile,
  type JournalFs,
  type JournalOptions,
  nodeFs,
  statusRecord,
  txRecord,
} from "../../src/executor/journal.ts";
import { encodeLine } from "../../src/executor/journalCodec.ts";
import { LEASE_TTL_MS, type LeaseClock, lockIdentity } from "../../src/executor/journalLock.ts";
import { captureLogs } from "../helpers/logs.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function path(): string {
  const dir = mkdtempSync(join(tmpdir(), "journal-test-"));
  dirs.push(dir);
  return join(dir, "journal", "31337-0xabc.jsonl");
}

function attempt(nonce: number): Attempt {
  return {
    id: `a${nonce}`,
    signer: "0x00000000000000000000000000000000000000aa",
    nonce,
    kind: "single",
    targets: [
      {
        key: `0:0x${nonce}`,
        trader: "0x00000000000000000000000000000000000000bb",
        marketId: 0,
        expectedReward: 123456789012345678901234n,
      },
    ],
    to: "0x00000000000000000000000000000000000000cc",
    data: "0x1234",
    gas: 150_000n,
    txs: [
      {
        hash: `0x${String(nonce).padStart(64, "0")}`,
        raw: "0x02f8",
        purpose: "liquidate",
        maxFeePerGas: 3n,
        maxPriorityFeePerGas: 1n,
        sentAtBlock: 7n,
      },
    ],
    status: "signed",
    createdAtBlock: 7n,
  };
}

function open(p: string, fs?: JournalFs, lease?: JournalOptions["lease"]) {
  const logs = captureLogs();
  return Journal.open(p, { log: logs.log, fs, lease }).then((opened) => ({ ...opened, logs }));
}

/** A clock that moves only when told, running the lease's renewals that fall due on the way (and awaiting them). */
function fakeClock(start = Date.now()) {
  let t = start;
  const timers: { ms: number; next: number; renew: () => Promise<void>; stopped: boolean }[] = [];
  const clock: LeaseClock = {
    now: () => t,
    every(ms, renew) {
      const timer = { ms, next: t + ms, renew, stopped: false };
      timers.push(timer);
      return () => {
        timer.stopped = true;
      };
    },
  };
  return {
    clock,
    now: () => t,
    running: () => timers.filter((x) => !x.stopped).length,
    async advance(ms: number) {
      const end = t + ms;
      for (;;) {
        const due = timers.filter((x) => !x.stopped && x.next <= end).sort((a, b) => a.next - b.next)[0];
        if (!due) break;
        t = due.next;
        due.next += due.ms;
        await due.renew();
      }
      t = end;
    },
  };
}

/** Each attempt as three lines: its intent, its transaction, its status (pending). */
async function write(p: string, attempts: Attempt[]): Promise<void> {
  const { journal } = await open(p);
  for (const a of attempts) {
    await journal.append([attemptRecord(a), txRecord(a, a.txs[0] as Attempt["txs"][number])]);
    transition(a, "pending");
    await journal.append([statusRecord(a)]);
  }
  await journal.close();
}

function lines(p: string): string[] {
  return readFileSync(p, "utf8").split("\n").slice(0, -1);
}

type Op = "open" | "write" | "datasync" | "sync" | "rename" | "truncate";
interface Fault {
  readonly op: Op;
  /** errno code thrown; with `bytes`, after writing that share of what was asked */
  readonly code?: "ENOSPC" | "EIO";
  /** the share of the bytes asked that is really written (a short write) */
  readonly share?: number;
}
const MESSAGES = { ENOSPC: [-28, "no space left on device"], EIO: [-5, "i/o error"] } as const;
function errno(code: keyof typeof MESSAGES, syscall: string): NodeJS.ErrnoException {
  const [n, text] = MESSAGES[code];
  return Object.assign(new Error(`${code}: ${text}, ${syscall}`), { code, errno: n, syscall });
}

/** The real file system, with faults injected through the journal's seam (each fault fires once). */
function faultyFs(options: { slowWritesMs?: number } = {}) {
  const faults: Fault[] = [];
  const counts = { writes: 0, datasyncs: 0 };
  const take = async (op: Op): Promise<Fault | undefined> => {
    const i = faults.findIndex((f) => f.op === op);
    const fault = i < 0 ? undefined : faults.splice(i, 1)[0];
    if (fault?.code && fault.share === undefined) throw errno(fault.code, op);
    return fault;
  };
  const fs: JournalFs = {
    ...nodeFs,
    async open(p, flags) {
      await take("open");
      const h = await nodeFs.open(p, flags);
      const appending = flags === "a";
      const file: JournalFile = {
        async write(buffer, offset, length) {
          if (appending) counts.writes++;
          if (options.slowWritesMs) await new Promise((r) => setTimeout(r, options.slowWritesMs));
          const fault = await take("write");
          if (fault?.share === undefined) return h.write(buffer, offset, length);
          const part = await h.write(buffer, offset, Math.max(1, Math.floor(length * fault.share)));
          if (fault.code) throw errno(fault.code, "write");
          return part;
        },
        async datasync() {
          if (appending) counts.datasyncs++;
          await take("datasync");
          return h.datasync();
        },
        async sync() {
          await take("sync");
          return h.sync();
        },
        async truncate(length) {
          await take("truncate");
          return h.truncate(length);
        },
        close: () => h.close(),
      };
      return file;
    },
    async rename(from, to) {
      await take("rename");
      return nodeFs.rename(from, to);
    },
  };
  return { fs, faults, counts };
}

describe("journal", () => {
  it("replays unresolved attempts exactly, bigints included, and leaves out terminal ones", async () => {
    const p = path();
    const [a, b] = [attempt(0), attempt(1)];
    await write(p, [a, b]);
    const { journal } = await open(p);
    transition(a, "confirmed");
    await journal.append([statusRecord(a)]);
    await journal.close();
    const { journal: again, attempts, damage, logs } = await open(p);
    await again.close();
    expect(attempts).toEqual([b]);
    expect(damage).toEqual([]);
    expect(logs.lines).toEqual([]);
    // compacted on open: the confirmed attempt is gone from the file too
    expect(readFileSync(p, "utf8")).not.toContain('"id":"a0"');
  });

  it("keeps a target's account and partial size (a Perp v2 market of a trader), and reads targets that have neither", async () => {
    const p = path();
    const base = attempt(0);
    const market = base.targets[0] as Attempt["targets"][number];
    const partial: Attempt = {
      ...base,
      targets: [{ ...market, key: "0xbb/1", account: "0xbb", marketId: 1, size: -1234567890123456789012n }],
    };
    const plain = attempt(1);
    await write(p, [partial, plain]);
    const { journal, attempts } = await open(p);
    await journal.close();
    expect(attempts).toEqual([partial, plain]);
    expect(attempts[0]?.targets[0]?.size).toBe(-1234567890123456789012n);
    expect(attempts[1]?.targets[0]).not.toHaveProperty("size");
    expect(attempts[1]?.targets[0]).not.toHaveProperty("account");
  });

  it("keeps the value a liquidation sends (a pull oracle's fee), and reads attempts without one as sending nothing", async () => {
    const p = path();
    const paying: Attempt = { ...attempt(0), value: 123_456_789_012_345_678_901n };
    const plain = attempt(1);
    await write(p, [paying, plain]);
    const { journal, attempts } = await open(p);
    await journal.close();
    expect(attempts).toEqual([paying, plain]);
    expect(attempts[0]?.value).toBe(123_456_789_012_345_678_901n);
    expect(attempts[1]).not.toHaveProperty("value");
  });

  it("numbers every line and checksums it; seq starts again at 1 when the file is rewritten", async () => {
    const p = path();
    await write(p, [attempt(0), attempt(1)]);
    const { journal } = await open(p);
    await journal.append([attemptRecord(attempt(2))]);
    const seqs = () => lines(p).map((l) => Number(/"seq":(\d+),"crc":\d+\}$/.exec(l)?.[1]));
    expect(seqs()).toEqual([1, 2, 3, 4, 5, 6, 7]); // 2 x 3 rewritten at open, then one appended
    await journal.compact(() => [attempt(5)]);
    await journal.append([statusRecord(attempt(5))]);
    await journal.close();
    expect(seqs()).toEqual([1, 2, 3, 4]);
    // the checksum covers the content: one character changed is caught
    const [first, ...rest] = lines(p);
    writeFileSync(p, [(first as string).replace('"nonce":5', '"nonce":6'), ...rest, ""].join("\n"));
    const { journal: again, damage } = await open(p);
    await again.close();
    expect(damage.map((d) => [d.line, d.reason])).toEqual([
      [1, "checksum"],
      [2, "unknown_attempt"],
    ]);
  });

  it("group-commits: records handed in while a write is in flight share the next write and fsync", async () => {
    const p = path();
    const { fs, counts } = faultyFs({ slowWritesMs: 20 });
    const { journal } = await open(p, fs);
    const attempts = Array.from({ length: 50 }, (_, i) => attempt(i));
    // handed in together: one write, one fsync
    await Promise.all(attempts.slice(0, 10).map((a) => journal.append([attemptRecord(a)])));
    expect(counts).toEqual({ writes: 1, datasyncs: 1 });
    // one alone, and 39 while its write is in flight: those 39 go out together after it
    const first = journal.append([attemptRecord(attempts[10] as Attempt)]);
    await new Promise((r) => setImmediate(r));
    await Promise.all([first, ...attempts.slice(11).map((a) => journal.append([attemptRecord(a)]))]);
    expect(counts).toEqual({ writes: 3, datasyncs: 3 });
    await journal.close();
    expect(lines(p)).toHaveLength(50);
  });

  it("drops a torn last line (a crash mid-write), keeps everything before it, and says so", async () => {
    const p = path();
    await write(p, [attempt(0)]);
    appendFileSync(p, '{"t":"status","id":"a0","stat');
    const { journal, attempts, damage, logs } = await open(p);
    await journal.close();
    expect(attempts.map((x) => [x.id, x.status])).toEqual([["a0", "pending"]]);
    expect(damage).toEqual([]);
    expect(logs.events("journal_torn_tail")).toMatchObject([{ levelName: "warn", file: p, line: 4, bytes: 29 }]);
  });

  it("opens a journal damaged mid-file with everything else, and reports what the lane may have lost", async () => {
    const p = path();
    await write(p, [attempt(0), attempt(1), attempt(2)]);
    const text = lines(p);
    text[3] = (text[3] as string).replace('"nonce":1', '"nonce":9'); // a1's intent: its checksum no longer holds
    writeFileSync(p, `${text.join("\n")}\n`);
    const { journal, attempts, damage, logs } = await open(p);
    await journal.close();
    expect(attempts.map((a) => a.id)).toEqual(["a0", "a2"]);
    expect(damage).toMatchObject([
      { line: 4, lines: 1, reason: "checksum", lastGoodSeq: 3, lastNonce: 0 },
      { line: 5, lines: 2, reason: "unknown_attempt", attemptIds: ["a1"] },
    ]);
    const [logged] = logs.events("journal_damaged");
    expect(logged).toMatchObject({ levelName: "error", file: p, line: 4, reason: "checksum", lastGoodSeq: 3 });
    expect(logged?.msg).toMatch(/nonces above 0 may be in flight.*take its nonce from the chain.*targeted again/);
    // the damaged file is kept for a look by hand; the journal itself is whole again
    expect(readFileSync(logged?.keptAs as string, "utf8")).toBe(`${text.join("\n")}\n`);
    const { journal: again, damage: none } = await open(p);
    await again.close();
    expect(none).toEqual([]);
  });

  it("reports lines cut out of the middle (a sequence gap) instead of silently forgetting their attempts", async () => {
    const p = path();
    await write(p, [attempt(0), attempt(1), attempt(2)]);
    const text = lines(p);
    text.splice(3, 3); // a1's three lines gone: every other line is good
    writeFileSync(p, `${text.join("\n")}\n`);
    const { journal, attempts, damage, logs } = await open(p);
    await journal.close();
    expect(attempts.map((a) => a.id)).toEqual(["a0", "a2"]);
    expect(damage).toMatchObject([{ line: 4, lines: 0, reason: "sequence_gap", lastGoodSeq: 3, lastNonce: 0 }]);
    expect(logs.events("journal_damaged")[0]?.detail).toBe("seq 4-6 missing before seq 7");
  });

  it("reads a journal of the previous format (no seq, no crc) and rewrites it in the new one", async () => {
    const p = path();
    const a = attempt(0);
    transition(a, "pending");
    const old = [attemptRecord(a), txRecord(a, a.txs[0] as Attempt["txs"][number]), statusRecord(a)];
    await write(p, []);
    writeFileSync(p, old.map((r) => `${JSON.stringify(r)}\n`).join(""));
    const { journal, attempts, damage } = await open(p);
    await journal.close();
    expect(attempts).toEqual([a]);
    expect(damage).toEqual([]);
    expect(lines(p).every((l) => /"crc":\d+\}$/.test(l))).toBe(true);
  });

  it("reports records of an attempt it never saw, and opens with the rest", async () => {
    const p = path();
    await write(p, [attempt(0)]);
    appendFileSync(p, encodeLine({ t: "status", id: "ghost", status: "pending" }, 4));
    const { journal, attempts, damage } = await open(p);
    await journal.close();
    expect(attempts.map((a) => a.id)).toEqual(["a0"]);
    expect(damage).toMatchObject([{ line: 4, reason: "unknown_attempt", attemptIds: ["ghost"] }]);
  });

  it("compacts in turn with appends: what is appended while it rewrites lands in the new file", async () => {
    const p = path();
    const { journal } = await open(p);
    const live = [attempt(0)];
    await journal.append([attemptRecord(live[0] as Attempt)]);
    const late = attempt(1);
    const compacting = journal.compact(() => live);
    const appended = journal.append([attemptRecord(late), txRecord(late, late.txs[0] as Attempt["txs"][number])]);
    await Promise.all([compacting, appended]);
    await journal.close();
    const { journal: again, attempts } = await open(p);
    await again.close();
    expect(attempts.map((a) => a.id).sort()).toEqual(["a0", "a1"]);
    expect(attempts.find((a) => a.id === "a1")?.txs).toHaveLength(1);
  });

  it("an attempt written again after a compaction keeps the transactions it already had", async () => {
    const p = path();
    const a = attempt(0);
    await write(p, [a]);
    appendFileSync(p, encodeLine(attemptRecord(a), 4));
    const { journal, attempts, damage } = await open(p);
    await journal.close();
    expect(damage).toEqual([]);
    expect(attempts[0]?.txs).toHaveLength(1);
    expect(attempts[0]?.status).toBe("pending");
  });

  it("lets an attempt whose cancel never reached the node be given up at start (cancelling to failed)", () => {
    const a = attempt(0);
    transition(a, "pending");
    transition(a, "cancelling");
    expect(() => transition(a, "failed")).not.toThrow();
    expect(() => transition(a, "pending")).toThrow();
  });
});

describe("journal on a failing disk", () => {
  it("a failed compaction leaves the journal appending to the file as it was, and says so", async () => {
    for (const op of ["open", "write", "sync", "rename"] as const) {
      const p = path();
      const { fs, faults } = faultyFs();
      const { journal, logs } = await open(p, fs);
      await journal.append([attemptRecord(attempt(0))]);
      faults.push({ op, code: "EIO" });
      expect(await journal.compact(() => [attempt(0)])).toBe(false);
      expect(logs.events("journal_compaction_failed")).toMatchObject([{ levelName: "warn", file: p }]);
      expect(logs.events("journal_compaction_failed")[0]?.error).toMatch(/^EIO: i\/o error/);
      await journal.append([attemptRecord(attempt(1))]); // the handle still works
      expect(await journal.compact(() => [attempt(1)])).toBe(true); // and a later compaction does
      await journal.append([attemptRecord(attempt(2))]);
      await journal.close();
      expect(readdirSync(dirname(p))).toEqual(["31337-0xabc.jsonl"]); // no tmp file left behind
      const { journal: again, attempts, damage } = await open(p);
      await again.close();
      expect(damage).toEqual([]);
      expect(attempts.map((a) => a.id)).toEqual(["a1", "a2"]);
    }
  });

  it("writes all of a record through short writes", async () => {
    const p = path();
    const { fs, faults, counts } = faultyFs();
    const { journal } = await open(p, fs);
    faults.push({ op: "write", share: 0.3 }, { op: "write", share: 0.5 });
    const [a, b] = [attempt(0), attempt(1)];
    await journal.append([attemptRecord(a), txRecord(a, a.txs[0] as Attempt["txs"][number])]);
    await journal.append([attemptRecord(b)]);
    expect(counts.writes).toBe(4); // 30%, then the rest; 50%, then the rest
    await journal.close();
    const { journal: again, attempts, damage } = await open(p);
    await again.close();
    expect(damage).toEqual([]);
    expect(attempts.map((x) => [x.id, x.txs.length])).toEqual([
      ["a0", 1],
      ["a1", 0],
    ]);
  });

  it.each([
    ["ENOSPC on write", { op: "write", code: "ENOSPC" }, /journal write failed \(ENOSPC: no space left on device/],
    ["ENOSPC after part of the write", { op: "write", code: "ENOSPC", share: 0.5 }, /write failed \(ENOSPC/],
    ["EIO on fsync", { op: "datasync", code: "EIO" }, /journal write failed \(EIO: i\/o error, datasync\)/],
  ] as const)(
    "%s: the append rejects, names the file and the errno, and later appends work again",
    async (_, fault, message) => {
      const p = path();
      const { fs, faults } = faultyFs();
      const { journal, logs } = await open(p, fs);
      const [a, b, c] = [attempt(0), attempt(1), attempt(2)];
      await journal.append([attemptRecord(a)]);
      faults.push(fault);
      const failed = journal.append([attemptRecord(b), txRecord(b, b.txs[0] as Attempt["txs"][number])]);
      await expect(failed).rejects.toThrow(JournalError);
      await expect(failed).rejects.toThrow(message);
      await expect(failed).rejects.toThrow(`for ${p}: nothing is broadcast until it is written`);
      expect(logs.events("journal_write_failed")).toMatchObject([{ levelName: "error", file: p }]);
      // the fault cleared: the next append works, and nothing of the failed one is left in the file
      await journal.append([attemptRecord(c)]);
      expect(logs.events("journal_write_ok")).toMatchObject([{ file: p, failedWrites: 1 }]);
      await journal.close();
      const { journal: again, attempts, damage, logs: reopened } = await open(p);
      await again.close();
      expect(attempts.map((x) => x.id)).toEqual(["a0", "a2"]);
      expect(damage).toEqual([]);
      expect(reopened.lines).toEqual([]);
    },
  );

  it("a part of a failed write that cannot be cut off stops every later append until it can be", async () => {
    const p = path();
    const { fs, faults } = faultyFs();
    const { journal } = await open(p, fs);
    faults.push({ op: "write", code: "ENOSPC", share: 0.5 }, { op: "truncate", code: "EIO" });
    await expect(journal.append([attemptRecord(attempt(0))])).rejects.toThrow(/write failed \(ENOSPC/);
    await expect(journal.append([attemptRecord(attempt(1))])).rejects.toThrow(
      `journal repair failed (EIO: i/o error, truncate) for ${p}`,
    );
    await journal.append([attemptRecord(attempt(2))]);
    await journal.close();
    const { journal: again, attempts, damage } = await open(p);
    await again.close();
    expect(damage).toEqual([]);
    expect(attempts.map((x) => x.id)).toEqual(["a2"]);
  });
});

describe("journal lock", () => {
  const me = lockIdentity();
  /** Writes a lock as `holder` would have, last renewed `ago` ms before `now`. */
  const lock = (p: string, holder: object | string, now = Date.now(), ago = 0) => {
    writeFileSync(`${p}.lock`, typeof holder === "string" ? holder : JSON.stringify(holder));
    utimesSync(`${p}.lock`, new Date(now - ago), new Date(now - ago));
  };
  const dead = 2 ** 22 + 12345;
  const lease = (clock: LeaseClock) => ({ clock, renewMs: 5_000, ttlMs: 30_000 });

  it("refuses a second open while the first holds it, and releases it on close", async () => {
    const p = path();
    const { journal } = await open(p);
    await expect(open(p)).rejects.toThrow(
      /another keeper \(pid \d+, started [^)]+\) holds this signer on this chain, and it is running/,
    );
    await journal.close();
    expect(() => readFileSync(`${p}.lock`)).toThrow();
    const { journal: again } = await open(p);
    await again.close();
  });

  it("takes over a lock of this host, boot and pid namespace whose process is gone at once, and logs it", async () => {
    const p = path();
    await write(p, []);
    lock(p, { ...me, pid: dead, startedAt: "earlier", token: "x" }); // SIGKILLed, renewed just before
    const { journal: taken, logs } = await open(p);
    await taken.close();
    expect(logs.events("journal_lock_taken_over")).toMatchObject([
      { levelName: "warn", file: `${p}.lock`, reason: "holder_gone", host: me.host, pid: dead, startedAt: "earlier" },
    ]);
    expect(logs.events("journal_lock_taken_over")[0]?.renewedAgoMs).toBeLessThan(LEASE_TTL_MS);
    // an earlier process of this namespace with our pid (a container restarted in the same namespace)
    lock(p, { ...me, startedAt: "earlier" });
    const { journal: restarted, logs: again } = await open(p);
    await restarted.close();
    expect(again.events("journal_lock_taken_over")).toMatchObject([{ reason: "holder_gone", pid: process.pid }]);
    expect(() => readFileSync(`${p}.lock`)).toThrow();
  });

  /** Opens `p` over the fake clock, once it logged that it waits for a lease to expire. */
  const waiting = async (p: string, fake: ReturnType<typeof fakeClock>, signal?: AbortSignal) => {
    const logs = captureLogs();
    const opening = Journal.open(p, { log: logs.log, lease: lease(fake.clock), signal });
    opening.catch(() => {}); // asserted later
    await vi.waitFor(() => expect(logs.events("journal_lock_waiting")).toHaveLength(1));
    await vi.waitFor(() => expect(fake.running()).toBe(1)); // its poll
    return { opening, logs };
  };
  const renew = (p: string, ms: number) => utimesSync(`${p}.lock`, new Date(ms), new Date(ms));

  it.each([
    ["another host", { host: "other-container" }],
    ["another pid namespace (another container on this host: also pid 1)", { pidNamespace: "pid:[4026530000]" }],
    ["another boot", { boot: "00000000-0000-0000-0000-000000000000" }],
    ["an earlier version, with no boot or namespace", { boot: undefined, pidNamespace: undefined }],
  ])("waits for a fresh lease from %s, whatever its pid: refused if renewed meanwhile", async (_, other) => {
    const p = path();
    await write(p, []);
    const fake = fakeClock();
    const host = "host" in other ? other.host : hostname();
    for (const pid of [process.pid, dead, 1]) {
      lock(p, { ...me, ...other, pid, startedAt: "earlier", token: "x" }, fake.now(), 12_000);
      const { opening, logs } = await waiting(p, fake);
      expect(logs.events("journal_lock_waiting")).toMatchObject([
        { levelName: "warn", file: `${p}.lock`, host, pid, startedAt: "earlier", renewedAgoMs: 12_000, waitMs: 19_000 },
      ]);
      expect(logs.events("journal_lock_waiting")[0]?.msg).toMatch(/waiting up to 19 s for its lease to expire/);
      await fake.advance(3_000);
      expect(fake.running()).toBe(1); // still waiting
      renew(p, fake.now()); // its holder runs
      await fake.advance(1_000);
      await expect(opening).rejects.toThrow(JournalError);
      await expect(opening).rejects.toThrow(`pid ${pid} on host ${host}`);
      await expect(opening).rejects.toThrow("its lease was renewed 1 s ago and expires in 29 s unless renewed");
      await expect(opening).rejects.toThrow("it was renewed while this keeper waited 4 s for its lease to expire");
      await expect(opening).rejects.toThrow(`remove ${p}.lock and start again`);
      expect(fake.running()).toBe(0);
      expect(logs.events("journal_lock_taken_over")).toEqual([]);
    }
    expect(readdirSync(dirname(p)).sort()).toEqual(["31337-0xabc.jsonl", "31337-0xabc.jsonl.lock"]);
  });

  it.each([
    ["another host", { host: "other-container" }],
    ["an earlier version, with no boot or namespace", { boot: undefined, pidNamespace: undefined }],
  ])("takes over a lease from %s once it expired unrenewed (a restart within the TTL heals)", async (_, other) => {
    const p = path();
    await write(p, []);
    const fake = fakeClock();
    lock(p, { ...me, ...other, pid: 1, startedAt: "earlier", token: "x" }, fake.now(), 12_000);
    const { opening, logs } = await waiting(p, fake);
    await fake.advance(18_000);
    expect(fake.running()).toBe(1); // the lease expired at 18 s; one poll more
    expect(logs.events("journal_lock_taken_over")).toEqual([]);
    await fake.advance(1_000);
    const { journal } = await opening;
    expect(logs.events("journal_lock_taken_over")).toMatchObject([
      {
        levelName: "warn",
        file: `${p}.lock`,
        reason: "lease_expired",
        host: "host" in other ? other.host : hostname(),
        pid: 1,
        startedAt: "earlier",
        renewedAgoMs: 31_000,
      },
    ]);
    expect(logs.events("journal_lock_taken_over")[0]?.msg).toMatch(/its lease expired \(not renewed for 30 s\)/);
    // ours now, and fresh: not as old as the wait
    expect(JSON.parse(readFileSync(`${p}.lock`, "utf8")).pid).toBe(process.pid);
    expect(fake.now() - statSync(`${p}.lock`).mtimeMs).toBeCloseTo(0, -1);
    expect(fake.running()).toBe(1); // its heartbeat
    await journal.close();
    // an expired lease is taken over at once, without waiting
    lock(p, { ...me, ...other, pid: 1, startedAt: "earlier", token: "x" }, fake.now(), 31_000);
    const { journal: again, logs: reopened } = await open(p, undefined, lease(fake.clock));
    await again.close();
    expect(reopened.events("journal_lock_waiting")).toEqual([]);
    expect(reopened.events("journal_lock_taken_over")).toMatchObject([
      { reason: "lease_expired", renewedAgoMs: 31_000 },
    ]);
  });

  it("waits for a lock it cannot read: refused if renewed meanwhile, taken over once expired", async () => {
    const p = path();
    await write(p, []);
    const fake = fakeClock();
    lock(p, '{"pid":', fake.now(), 29_000);
    const renewed = await waiting(p, fake);
    expect(renewed.logs.events("journal_lock_waiting")).toMatchObject([{ host: null, pid: null, waitMs: 2_000 }]);
    renew(p, fake.now());
    await fake.advance(1_000);
    await expect(renewed.opening).rejects.toThrow(
      /a lock this keeper cannot read; its lease was renewed 1 s ago.*remove .*\.lock and start again/,
    );
    lock(p, '{"pid":', fake.now(), 29_000);
    const { opening, logs } = await waiting(p, fake);
    await fake.advance(2_000);
    const { journal } = await opening;
    await journal.close();
    expect(logs.events("journal_lock_taken_over")).toMatchObject([
      { reason: "lease_expired", host: null, pid: null, renewedAgoMs: 31_000 },
    ]);
  });

  it("stops waiting for a lease when asked to stop, leaving the lock as it was", async () => {
    const p = path();
    await write(p, []);
    const fake = fakeClock();
    const theirs = { ...me, host: "other-container", pid: 1, startedAt: "earlier", token: "x" };
    lock(p, theirs, fake.now(), 12_000);
    const stop = new AbortController();
    const { opening } = await waiting(p, fake, stop.signal);
    await fake.advance(5_000);
    stop.abort("SIGTERM");
    await expect(opening).rejects.toThrow(`stopped while waiting for the lease of the lock of journal ${p} to expire`);
    expect(fake.running()).toBe(0);
    expect(JSON.parse(readFileSync(`${p}.lock`, "utf8"))).toEqual(theirs);
    expect(readdirSync(dirname(p)).sort()).toEqual(["31337-0xabc.jsonl", "31337-0xabc.jsonl.lock"]);
  });

  it("the holder's heartbeat keeps its lease fresh, and close stops it", async () => {
    const p = path();
    const fake = fakeClock();
    const { journal } = await open(p, undefined, lease(fake.clock));
    const renewedAgo = () => fake.now() - statSync(`${p}.lock`).mtimeMs;
    expect(fake.running()).toBe(1);
    await fake.advance(4_999);
    expect(renewedAgo()).toBeCloseTo(4_999, -1); // not renewed yet
    await fake.advance(1);
    expect(renewedAgo()).toBeCloseTo(0, -1);
    await fake.advance(120_000); // four TTLs: still fresh
    expect(renewedAgo()).toBeCloseTo(0, -1);
    await journal.close();
    expect(fake.running()).toBe(0);
    expect(() => readFileSync(`${p}.lock`)).toThrow();
    await fake.advance(60_000); // nothing renews a lock that is gone
    expect(() => readFileSync(`${p}.lock`)).toThrow();
  });

  it("logs a failing renewal once per run of failures, and when it renews again", async () => {
    const p = path();
    const fake = fakeClock();
    let failing = 0;
    const fs: JournalFs = {
      ...nodeFs,
      async touch(file, ms) {
        if (failing > 0 && file.endsWith(".lock")) {
          failing--;
          throw errno("EIO", "utime");
        }
        return nodeFs.touch(file, ms);
      },
    };
    const { journal, logs } = await open(p, fs, lease(fake.clock));
    failing = 3;
    await fake.advance(15_000);
    expect(logs.events("journal_lock_renew_failed")).toMatchObject([
      { levelName: "error", file: `${p}.lock`, error: "EIO: i/o error, utime" },
    ]);
    expect(logs.events("journal_lock_renew_ok")).toEqual([]);
    await fake.advance(5_000);
    expect(logs.events("journal_lock_renew_failed")).toHaveLength(1);
    expect(logs.events("journal_lock_renew_ok")).toMatchObject([{ levelName: "info", failedRenewals: 3 }]);
    expect(fake.now() - statSync(`${p}.lock`).mtimeMs).toBeCloseTo(0, -1);
    await journal.close();
  });

  it("a holder whose lock was taken over stops renewing it, journals nothing more, and leaves it in place", async () => {
    const p = path();
    const fake = fakeClock();
    const { journal, logs } = await open(p, undefined, lease(fake.clock));
    await journal.append([attemptRecord(attempt(0))]);
    const theirs = { ...me, host: "other-container", pid: 1, startedAt: "later", token: "theirs" };
    lock(p, theirs, fake.now(), 1_000); // it stalled past its lease; another keeper took over
    await fake.advance(5_000);
    expect(logs.events("journal_lock_lost")).toMatchObject([{ levelName: "error", file: `${p}.lock` }]);
    expect(fake.running()).toBe(0);
    expect(fake.now() - statSync(`${p}.lock`).mtimeMs).toBeCloseTo(6_000, -1); // theirs, not renewed by us
    await expect(journal.append([attemptRecord(attempt(1))])).rejects.toThrow(/no longer this keeper's/);
    expect(await journal.compact(() => [])).toBe(false);
    await journal.close();
    expect(JSON.parse(readFileSync(`${p}.lock`, "utf8"))).toEqual(theirs);
  });
});

describe("read-only journal (a dry run)", () => {
  /** Every file under the journal's directory, with its bytes and mtime. */
  const files = (p: string) =>
    Object.fromEntries(
      readdirSync(dirname(p)).map((f) => {
        const at = join(dirname(p), f);
        return [f, { text: readFileSync(at, "utf8"), mtimeMs: statSync(at).mtimeMs }];
      }),
    );

  it("opens beside the live keeper's lock at once, replays its attempts, and changes no byte of its directory", async () => {
    const p = path();
    await write(p, [attempt(0), attempt(1)]);
    const { journal: live } = await open(p);
    const before = files(p);
    expect(Object.keys(before).sort()).toEqual(["31337-0xabc.jsonl", "31337-0xabc.jsonl.lock"]);
    const logs = captureLogs();
    const { journal, attempts, damage } = await Journal.openReadOnly(p, { log: logs.log });
    expect(journal.readOnly).toBe(true);
    expect(attempts.map((a) => [a.id, a.status])).toEqual([
      ["a0", "pending"],
      ["a1", "pending"],
    ]);
    expect(damage).toEqual([]);
    await expect(journal.append([attemptRecord(attempt(2))])).rejects.toThrow(/open read-only \(a dry run\)/);
    expect(await journal.compact(() => [])).toBe(false);
    expect(journal.recordsWritten).toBe(0);
    await journal.close();
    expect(files(p)).toEqual(before);
    // the live keeper still holds its lock and journals as before
    await live.append([attemptRecord(attempt(2))]);
    await live.close();
  });

  it("does not wait for a fresh lock of another host, which a normal open would wait for", async () => {
    const p = path();
    await write(p, [attempt(0)]);
    const theirs = JSON.stringify({
      pid: 1,
      host: "other-host",
      boot: "b",
      pidNamespace: "n",
      startedAt: "s",
      token: "t",
    });
    writeFileSync(`${p}.lock`, theirs);
    const before = files(p);
    const { journal, attempts } = await Journal.openReadOnly(p, { log: captureLogs().log });
    await journal.close();
    expect(attempts.map((a) => a.id)).toEqual(["a0"]);
    expect(files(p)).toEqual(before);
  });

  it("starts with no journal (and no directory) and creates nothing", async () => {
    const p = path();
    const { journal, attempts, damage } = await Journal.openReadOnly(p, { log: captureLogs().log });
    await journal.close();
    expect(attempts).toEqual([]);
    expect(damage).toEqual([]);
    expect(() => statSync(dirname(p))).toThrow(/ENOENT/);
  });

  it("reports damage and a torn tail but keeps no copy and leaves the file as it is", async () => {
    const p = path();
    await write(p, [attempt(0), attempt(1)]);
    const text = lines(p);
    text[3] = (text[3] as string).replace('"nonce":1', '"nonce":9');
    writeFileSync(p, `${text.join("\n")}\n{"t":"status","id":"a0","stat`);
    const before = files(p);
    const logs = captureLogs();
    const { journal, attempts, damage } = await Journal.openReadOnly(p, { log: logs.log });
    await journal.close();
    expect(attempts.map((a) => a.id)).toEqual(["a0"]);
    expect(damage.map((d) => d.reason)).toEqual(["checksum", "unknown_attempt"]);
    expect(logs.events("journal_torn_tail")).toHaveLength(1);
    const [logged] = logs.events("journal_damaged");
    expect(logged).toMatchObject({ levelName: "error", file: p, keptAs: null });
    expect(logged?.msg).toMatch(/open read-only \(a dry run\): the file is left as it is/);
    expect(files(p)).toEqual(before);
  });
});
