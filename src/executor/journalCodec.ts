/**
 * The journal's records and their lines. A line is the record's JSON with two members added: `seq`, its position
 * in the file (1, 2, 3, ...: every rewrite of the file starts again at 1), and last `crc`, the CRC-32 of the line's
 * canonical content: its text up to the crc member, closed (`{...,"seq":7}`), which is the JSON of the record with
 * its seq. Lines of the previous format (no seq, no crc) are still read, as long as no checksummed line came before.
 *
 * Reading never throws on a bad line: it says what it could not read (`JournalDamage`) and keeps the rest.
 */
import { crc32 } from "node:zlib";
import type { Address, Hex } from "viem";
import { SetupError } from "../errors.ts";
import type { Attempt, AttemptStatus, SignedTx, TargetPlan } from "./attempt.ts";

export class JournalError extends SetupError {
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
      /** Wei sent with the liquidation; absent: 0 (every record before pull oracles). */
      readonly value?: string;
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
    targets: a.targets.map(({ size, ...x }) => ({
      ...x,
      expectedReward: x.expectedReward.toString(),
      ...(size === undefined ? {} : { size: size.toString() }),
    })),
    to: a.to,
    data: a.data,
    gas: a.gas.toString(),
    ...(a.value === undefined || a.value === 0n ? {} : { value: a.value.toString() }),
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

/** The line of a record at `seq`, newline included. */
export function encodeLine(r: JournalRecord, seq: number): string {
  const { seq: _s, crc: _c, ...rest } = r as JournalRecord & { seq?: unknown; crc?: unknown };
  const body = JSON.stringify({ ...rest, seq });
  return `${body.slice(0, -1)},"crc":${crc32(body)}}\n`;
}

/**
 * What a bad stretch of the file means. `checksum`: a line whose CRC does not match its content; `unparsable`: not
 * JSON or not a record; `no_checksum`: a line without seq and crc after checksummed ones; `sequence_gap`: good
 * lines, but seqs missing between them (lines lost); `sequence_order`: a seq repeated or going back;
 * `unknown_attempt`: records of attempts whose intent record is not in the file (lost earlier in it).
 */
export type DamageReason =
  | "checksum"
  | "unparsable"
  | "no_checksum"
  | "sequence_gap"
  | "sequence_order"
  | "unknown_attempt";

export interface JournalDamage {
  /** First line (1-based) of the stretch. */
  readonly line: number;
  /** Lines skipped (0 for a sequence anomaly, whose lines are good and kept). */
  readonly lines: number;
  readonly reason: DamageReason;
  /** The seq of the last good line before it (null: none, or a file of the previous format). */
  readonly lastGoodSeq: number | null;
  /** The highest nonce of the attempts read before it (null: none): attempts after it may have higher ones. */
  readonly lastNonce: number | null;
  /** `unknown_attempt`: the attempts whose records were found without their intent (at most 20). */
  readonly attemptIds?: readonly string[];
  readonly detail: string;
}

export interface ReadJournal {
  readonly records: JournalRecord[];
  /** The line (1-based) of each record. */
  readonly lines: number[];
  readonly damage: JournalDamage[];
  /** A last line cut short by a crash mid-write, dropped (it covered a broadcast that never happened). */
  readonly torn?: { readonly line: number; readonly bytes: number };
}

const CRC = /,"crc":(\d{1,10})\}$/;

type Decoded =
  | { readonly ok: true; readonly record: JournalRecord; readonly seq: number | undefined }
  | { readonly ok: false; readonly reason: "checksum" | "unparsable"; readonly detail: string };

function decodeLine(line: string): Decoded {
  const m = CRC.exec(line);
  const text = m ? `${line.slice(0, m.index)}}` : line;
  if (m && crc32(text) !== Number(m[1])) return { ok: false, reason: "checksum", detail: "checksum mismatch" };
  let r: (JournalRecord & { seq?: unknown }) | null;
  try {
    r = JSON.parse(text) as JournalRecord & { seq?: unknown };
  } catch (error) {
    return { ok: false, reason: "unparsable", detail: (error as Error).message };
  }
  if (typeof r !== "object" || r === null || typeof r.t !== "string" || typeof r.id !== "string") {
    return { ok: false, reason: "unparsable", detail: "not a journal record" };
  }
  if (m && !(Number.isSafeInteger(r.seq) && (r.seq as number) > 0)) {
    return { ok: false, reason: "unparsable", detail: "no valid seq" };
  }
  return { ok: true, record: r, seq: m ? (r.seq as number) : undefined };
}

/**
 * Reads the file's text: every good line, what is damaged (each bad stretch once), and a torn last line (dropped,
 * unless it is whole and good and only its newline is missing).
 */
export function readJournal(text: string): ReadJournal {
  const lines = text.split("\n");
  const complete = text.endsWith("\n") || text === "";
  const records: JournalRecord[] = [];
  const at: number[] = [];
  const damage: JournalDamage[] = [];
  let torn: ReadJournal["torn"];
  let checksummed = false;
  let lastSeq: number | null = null;
  let lastNonce: number | null = null;
  let bad: { line: number; lines: number; reason: DamageReason; detail: string } | undefined;
  const closeBad = (nextSeq?: number) => {
    if (!bad) return;
    const missing = nextSeq === undefined ? "" : `; next good line has seq ${nextSeq}`;
    damage.push({ ...bad, lastGoodSeq: lastSeq, lastNonce, detail: `${bad.detail}${missing}` });
    bad = undefined;
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line === "") continue;
    const last = i === lines.length - 1 && !complete;
    let d = decodeLine(line);
    if (d.ok && d.seq === undefined && checksummed) {
      d = { ok: false, reason: "unparsable", detail: "a line without checksum among checksummed ones" };
      if (!last) bad ??= { line: i + 1, lines: 0, reason: "no_checksum", detail: d.detail };
    }
    if (!d.ok) {
      if (last) {
        torn = { line: i + 1, bytes: Buffer.byteLength(line) };
        break;
      }
      bad ??= { line: i + 1, lines: 0, reason: d.reason, detail: d.detail };
      bad.lines++;
      continue;
    }
    if (d.seq !== undefined) {
      checksummed = true;
      const expected: number = (lastSeq ?? 0) + 1;
      if (bad) closeBad(d.seq);
      else if (d.seq !== expected) {
        const gap = d.seq > expected;
        damage.push({
          line: i + 1,
          lines: 0,
          reason: gap ? "sequence_gap" : "sequence_order",
          lastGoodSeq: lastSeq,
          lastNonce,
          detail: gap
            ? `seq ${expected}${d.seq - 1 > expected ? `-${d.seq - 1}` : ""} missing before seq ${d.seq}`
            : `seq ${d.seq} after seq ${lastSeq}`,
        });
      }
      lastSeq = d.seq;
    } else closeBad();
    const { seq: _s, ...record } = d.record as JournalRecord & { seq?: number };
    records.push(record as JournalRecord);
    at.push(i + 1);
    if (record.t === "attempt") lastNonce = Math.max(lastNonce ?? record.nonce, record.nonce);
  }
  closeBad();
  return { records, lines: at, damage, ...(torn ? { torn } : {}) };
}

/**
 * Parses the file's text; a torn last line is dropped, any other damage is a JournalError (for tools and tests that
 * want all or nothing; the journal itself opens with what it can read).
 */
export function parseJournal(text: string, source: string): JournalRecord[] {
  const { records, damage } = readJournal(text);
  const first = damage[0];
  if (first) throw new JournalError(`${source}:${first.line}: damaged journal (${first.reason}: ${first.detail})`);
  return records;
}

/**
 * Folds records into attempts, in file order. A record of an attempt never seen is a JournalError, unless
 * `unknown` takes it (the journal's open: it reports them as damage and goes on).
 */
export function replay(
  records: readonly JournalRecord[],
  source = "journal",
  unknown?: (r: JournalRecord, index: number) => void,
): Map<string, Attempt> {
  const attempts = new Map<string, Attempt>();
  records.forEach((r, i) => {
    if (r.t !== "attempt" && !attempts.has(r.id)) {
      if (!unknown) throw new JournalError(`${source}: record ${i + 1}: record for unknown attempt ${r.id}`);
      unknown(r, i);
      return;
    }
    switch (r.t) {
      case "attempt":
        if (attempts.has(r.id)) return; // written again after a compaction: the first holds its transactions
        attempts.set(r.id, {
          id: r.id,
          signer: r.signer,
          nonce: r.nonce,
          kind: r.kind,
          targets: r.targets.map(({ size, ...x }) => ({
            ...x,
            expectedReward: BigInt(x.expectedReward),
            ...(size === undefined ? {} : { size: BigInt(size) }),
          })),
          to: r.to,
          data: r.data,
          gas: BigInt(r.gas),
          ...(typeof r.value === "string" ? { value: BigInt(r.value) } : {}),
          txs: [],
          status: "signed",
          createdAtBlock: BigInt(r.createdAtBlock),
          ...(typeof r.after === "string" ? { after: r.after } : {}),
        });
        return;
      case "tx": {
        const a = attempts.get(r.id) as Attempt;
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
        const a = attempts.get(r.id) as Attempt;
        a.status = r.status;
        a.minedBlock = r.minedBlock === undefined ? undefined : BigInt(r.minedBlock);
        a.minedHash = r.minedHash;
        return;
      }
      default:
        throw new JournalError(`${source}: record ${i + 1}: unknown record type`);
    }
  });
  return attempts;
}
