import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { type Attempt, transition } from "../../src/executor/attempt.ts";
import { attemptRecord, Journal, JournalError, statusRecord, txRecord } from "../../src/executor/journal.ts";

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

async function write(p: string, attempts: Attempt[]): Promise<void> {
  const { journal } = await Journal.open(p);
  for (const a of attempts) {
    await journal.append([attemptRecord(a), txRecord(a, a.txs[0] as Attempt["txs"][number])]);
    transition(a, "pending");
    await journal.append([statusRecord(a)]);
  }
  await journal.close();
}

describe("journal", () => {
  it("replays unresolved attempts exactly, bigints included, and leaves out terminal ones", async () => {
    const p = path();
    const [a, b] = [attempt(0), attempt(1)];
    await write(p, [a, b]);
    const { journal } = await Journal.open(p);
    transition(a, "confirmed");
    await journal.append([statusRecord(a)]);
    await journal.close();
    const { journal: again, attempts } = await Journal.open(p);
    await again.close();
    expect(attempts).toEqual([b]);
    // compacted on open: the confirmed attempt is gone from the file too
    expect(readFileSync(p, "utf8")).not.toContain('"id":"a0"');
  });

  it("group-commits records handed in together: all of them are on disk when the writes resolve", async () => {
    const p = path();
    const { journal } = await Journal.open(p);
    const attempts = Array.from({ length: 50 }, (_, i) => attempt(i));
    await Promise.all(attempts.map((a) => journal.append([attemptRecord(a)])));
    await journal.close();
    expect(readFileSync(p, "utf8").trim().split("\n")).toHaveLength(50);
  });

  it("drops a torn last line (a crash mid-write) and keeps everything before it", async () => {
    const p = path();
    await write(p, [attempt(0)]);
    appendFileSync(p, '{"t":"status","id":"a0","stat');
    const { journal, attempts } = await Journal.open(p);
    await journal.close();
    expect(attempts.map((x) => [x.id, x.status])).toEqual([["a0", "pending"]]);
  });

  it("refuses a damaged line in the middle, naming the file and line, rather than lose state", async () => {
    const p = path();
    await write(p, [attempt(0)]);
    const lines = readFileSync(p, "utf8").split("\n");
    lines.splice(1, 0, "not json");
    writeFileSync(p, lines.join("\n"));
    await expect(Journal.open(p)).rejects.toThrow(JournalError);
    await expect(Journal.open(p)).rejects.toThrow(/:2: unreadable journal line/);
  });

  it("refuses a record for an attempt it never saw", async () => {
    const p = path();
    await write(p, []);
    writeFileSync(p, `${JSON.stringify({ t: "status", id: "ghost", status: "pending" })}\n`);
    await expect(Journal.open(p)).rejects.toThrow(/unknown attempt ghost/);
  });

  it("compacts in turn with appends: what is appended while it rewrites lands in the new file", async () => {
    const p = path();
    const { journal } = await Journal.open(p);
    const live = [attempt(0)];
    await journal.append([attemptRecord(live[0] as Attempt)]);
    const late = attempt(1);
    const compacting = journal.compact(() => live);
    const appended = journal.append([attemptRecord(late), txRecord(late, late.txs[0] as Attempt["txs"][number])]);
    await Promise.all([compacting, appended]);
    await journal.close();
    const { journal: again, attempts } = await Journal.open(p);
    await again.close();
    expect(attempts.map((a) => a.id).sort()).toEqual(["a0", "a1"]);
    expect(attempts.find((a) => a.id === "a1")?.txs).toHaveLength(1);
  });

  it("an attempt written again after a compaction keeps the transactions it already had", async () => {
    const p = path();
    const a = attempt(0);
    await write(p, [a]);
    appendFileSync(p, `${JSON.stringify(attemptRecord(a))}\n`);
    const { journal, attempts } = await Journal.open(p);
    await journal.close();
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

  it("is held under a lock: a second open is refused while the first holds it, and a lock left by a dead process is taken over", async () => {
    const p = path();
    const { journal } = await Journal.open(p);
    await expect(Journal.open(p)).rejects.toThrow(/another keeper \(pid \d+/);
    await journal.close();
    const { journal: again } = await Journal.open(p);
    await again.close();
    // a keeper SIGKILLed leaves its lock behind, naming a process that is gone
    writeFileSync(`${p}.lock`, JSON.stringify({ pid: 2 ** 22 + 12345, host: hostname(), startedAt: "earlier" }));
    const { journal: taken } = await Journal.open(p);
    await taken.close();
    expect(() => readFileSync(`${p}.lock`)).toThrow(); // released on close
    // a restarted container is pid 1 again, on a new hostname: a lock naming our own pid that this process never
    // took was left by the earlier one
    writeFileSync(`${p}.lock`, JSON.stringify({ pid: process.pid, host: "old-container", startedAt: "earlier" }));
    const { journal: restarted } = await Journal.open(p);
    await restarted.close();
  });
});
