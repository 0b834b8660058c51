/**
 * Snapshot format version 2: a RecordBook's state (src/state/recordBook.ts), for any adapter whose book is records.
 *
 *   line 1     {"format":"perp-keeper-snapshot","version":2,"adapter":"perp-v2","codec":N,"chainId":..,
 *               "exchange":"0x..","blockNumber":"..","blockHash":"0x..","cursor":{..}|null,"markets":M,"accounts":A}
 *   line 2     {"global":<record>}
 *   M lines    {"market":[id,<record>]}
 *   A lines    {"account":[key,<record>]}
 *   last line  {"end":true,"markets":M,"accounts":A,"sha256":"<hex of every line before this one, with newlines>"}
 *
 * Records are written as they are, exactly: a bigint as {"$n":"<decimal>"}, a Map as {"$m":[[key,value],...]}, plain
 * objects and arrays as JSON. `codec` is the adapter's record version: a snapshot of another version is ignored
 * (problem "version"), never misread. PerpEngine keeps its version 1 files (src/protocol/perpEngine/snapshot.ts).
 */
import type { RecordState } from "./recordBook.ts";
import { type ParsedSnapshot, type SnapshotCodec, SnapshotError, type SnapshotMeta } from "./snapshotCodec.ts";
import {
  corrupt,
  count,
  json,
  LineHash,
  metaFields,
  parseCursor,
  readHeader,
  readTrailer,
  record,
  SNAPSHOT_FORMAT,
  writeCursor,
} from "./snapshotLines.ts";

const VERSION = 2;
/** Account lines per chunk: the writer yields to the event loop between chunks. */
const CHUNK = 2_000;

/** A record as JSON, exactly (bigints and Maps tagged). */
export function toJson(value: unknown): unknown {
  if (typeof value === "bigint") return { $n: value.toString() };
  if (value instanceof Map) return { $m: [...value].map(([k, v]) => [toJson(k), toJson(v)]) };
  if (Array.isArray(value)) return value.map(toJson);
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = toJson(v);
    return out;
  }
  return value;
}

/** The record toJson wrote. */
export function fromJson(value: unknown, line: number): unknown {
  if (Array.isArray(value)) return value.map((v) => fromJson(v, line));
  if (value !== null && typeof value === "object") {
    const o = value as Record<string, unknown>;
    const keys = Object.keys(o);
    if (keys.length === 1 && keys[0] === "$n") {
      if (typeof o.$n !== "string" || !/^-?\d{1,80}$/.test(o.$n)) throw corrupt(line, "a malformed integer");
      return BigInt(o.$n);
    }
    if (keys.length === 1 && keys[0] === "$m") {
      if (!Array.isArray(o.$m)) throw corrupt(line, "a malformed map");
      return new Map(
        o.$m.map((entry) => {
          if (!Array.isArray(entry) || entry.length !== 2) throw corrupt(line, "a malformed map entry");
          return [fromJson(entry[0], line), fromJson(entry[1], line)] as const;
        }),
      );
    }
    const out: Record<string, unknown> = {};
    for (const k of keys) out[k] = fromJson(o[k], line);
    return out;
  }
  return value;
}

export function recordSnapshotCodec<A, M, G>(o: {
  /** The adapter's name, in the header and the file name. */
  readonly adapter: string;
  /** The records' version: bumped when a record's shape changes. */
  readonly codec: number;
  /** Checks a record read back is well-formed (throws a message naming what is not); default: none. */
  readonly check?: { account?(a: A): void; market?(m: M): void; global?(g: G): void };
}): SnapshotCodec<RecordState<A, M, G>> {
  const checked = <T>(kind: "account" | "market" | "global", value: unknown, line: number): T => {
    try {
      (o.check?.[kind] as ((v: unknown) => void) | undefined)?.(value);
    } catch (error) {
      throw corrupt(line, `${kind}: ${(error as Error).message}`);
    }
    return value as T;
  };
  return {
    fileTag: `${o.adapter}-`,
    counts: (s) => ({ markets: s.markets.length, accounts: s.accounts.length }),
    *chunks(meta: SnapshotMeta, s: RecordState<A, M, G>): Generator<string> {
      const hash = new LineHash();
      const header = {
        format: SNAPSHOT_FORMAT,
        version: VERSION,
        adapter: o.adapter,
        codec: o.codec,
        ...metaFields(meta),
        cursor: writeCursor(s.cursor),
        markets: s.markets.length,
        accounts: s.accounts.length,
      };
      let text = `${JSON.stringify(header)}\n${JSON.stringify({ global: toJson(s.global) })}\n`;
      for (const [id, m] of s.markets) text += `${JSON.stringify({ market: [id, toJson(m)] })}\n`;
      yield hash.emit(text);
      for (let i = 0; i < s.accounts.length; i += CHUNK) {
        let chunk = "";
        for (const [key, a] of s.accounts.slice(i, i + CHUNK))
          chunk += `${JSON.stringify({ account: [key, toJson(a)] })}\n`;
        yield hash.emit(chunk);
      }
      yield hash.trailer({ markets: s.markets.length, accounts: s.accounts.length });
    },
    parse(content, expected): ParsedSnapshot<RecordState<A, M, G>> {
      const { lines, header, meta } = readHeader(content, VERSION, expected);
      if (header.adapter !== o.adapter) {
        throw new SnapshotError("other_adapter", `taken by the ${String(header.adapter)} adapter, not ${o.adapter}`);
      }
      if (header.codec !== o.codec) {
        throw new SnapshotError("version", `${o.adapter} records of version ${String(header.codec)}, not ${o.codec}`);
      }
      const marketCount = count(header.markets, 1, "markets");
      const accountCount = count(header.accounts, 1, "accounts");
      if (lines.length !== 2 + marketCount + accountCount + 1) {
        throw corrupt(
          lines.length,
          `${lines.length} lines where the header announces ${marketCount + accountCount + 3}`,
        );
      }
      const trailer = readTrailer(lines);
      if (trailer.markets !== marketCount || trailer.accounts !== accountCount) {
        throw corrupt(lines.length, "the trailer does not match the header");
      }
      const global = checked<G>("global", fromJson(record(json(lines[1] as string, 2), 2, "global line").global, 2), 2);
      const entry = (i: number, kind: "market" | "account"): [unknown, unknown] => {
        const value = record(json(lines[i] as string, i + 1), i + 1, `${kind} line`)[kind];
        if (!Array.isArray(value) || value.length !== 2) throw corrupt(i + 1, `${kind} line is not [id, record]`);
        return [value[0], fromJson(value[1], i + 1)];
      };
      const markets = new Map<number, M>();
      for (let i = 2; i < 2 + marketCount; i++) {
        const [id, m] = entry(i, "market");
        if (typeof id !== "number" || !Number.isSafeInteger(id) || markets.has(id)) {
          throw corrupt(i + 1, "a market id malformed or repeated");
        }
        markets.set(id, checked<M>("market", m, i + 1));
      }
      const accounts = new Map<string, A>();
      for (let i = 2 + marketCount; i < lines.length - 1; i++) {
        const [key, a] = entry(i, "account");
        if (typeof key !== "string" || accounts.has(key)) throw corrupt(i + 1, "an account key malformed or repeated");
        accounts.set(key, checked<A>("account", a, i + 1));
      }
      return {
        ...meta,
        state: { markets: [...markets], accounts: [...accounts], global, cursor: parseCursor(header.cursor, 1) },
      };
    },
  };
}
