/**
 * What every snapshot codec shares: the header's identity checks, strict field parsers that name the line at fault,
 * the cursor, and the checksummed trailer. Pure.
 */
import { createHash, type Hash } from "node:crypto";
import type { Address, Hex } from "viem";
import type { LogRef } from "./events.ts";
import { SnapshotError, type SnapshotMeta } from "./snapshotCodec.ts";

export const SNAPSHOT_FORMAT = "perp-keeper-snapshot";

const INTEGER = /^-?\d{1,78}$/;
const UNSIGNED = /^\d{1,78}$/;
export const ADDRESS = /^0x[0-9a-fA-F]{40}$/;
export const HASH = /^0x[0-9a-fA-F]{64}$/;

export function corrupt(line: number, what: string): SnapshotError {
  return new SnapshotError("corrupt", `line ${line}: ${what}`);
}

export function int(value: unknown, line: number, field: string, unsigned = false): bigint {
  if (typeof value !== "string" || !(unsigned ? UNSIGNED : INTEGER).test(value)) {
    throw corrupt(line, `${field} is not ${unsigned ? "a non-negative" : "an"} integer string`);
  }
  return BigInt(value);
}

export function text(value: unknown, pattern: RegExp, line: number, field: string): string {
  if (typeof value !== "string" || !pattern.test(value)) throw corrupt(line, `${field} is malformed`);
  return value;
}

export function json(raw: string, line: number): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    throw corrupt(line, "not JSON");
  }
}

export function record(value: unknown, line: number, what: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw corrupt(line, `${what} is not an object`);
  return value as Record<string, unknown>;
}

export function count(value: unknown, line: number, field: string): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0)
    throw corrupt(line, `${field} is not a count`);
  return value;
}

export function writeCursor(cursor: LogRef | undefined): unknown {
  return cursor ? { ...cursor, blockNumber: cursor.blockNumber.toString() } : null;
}

export function parseCursor(value: unknown, line: number): LogRef | undefined {
  if (value === null) return undefined;
  const c = record(value, line, "cursor");
  if (typeof c.logIndex !== "number" || !Number.isSafeInteger(c.logIndex) || c.logIndex < 0) {
    throw corrupt(line, "cursor.logIndex is not a log index");
  }
  return {
    blockNumber: int(c.blockNumber, line, "cursor.blockNumber", true),
    logIndex: c.logIndex,
    blockHash: text(c.blockHash, HASH, line, "cursor.blockHash") as Hex,
    transactionHash: text(c.transactionHash, HASH, line, "cursor.transactionHash") as Hex,
  };
}

/** The header fields every format version starts with. */
export function metaFields(meta: SnapshotMeta): Record<string, unknown> {
  return {
    chainId: meta.chainId,
    exchange: meta.exchange.toLowerCase(),
    blockNumber: meta.blockNumber.toString(),
    blockHash: meta.blockHash,
  };
}

/**
 * Splits a snapshot into lines and checks its header's format, version, chain and exchange; the header's other
 * fields are the codec's. Throws SnapshotError.
 */
export function readHeader(
  content: string,
  version: number,
  expected: { readonly chainId: number; readonly exchange: Address },
): { lines: string[]; header: Record<string, unknown>; meta: SnapshotMeta } {
  const lines = content.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  if (lines.length < 2) throw corrupt(lines.length, "too short to be a snapshot");
  const header = record(json(lines[0] as string, 1), 1, "header");
  if (header.format !== SNAPSHOT_FORMAT) throw corrupt(1, `not a ${SNAPSHOT_FORMAT} file`);
  if (header.version !== version) {
    throw new SnapshotError("version", `format version ${String(header.version)}, this keeper reads ${version}`);
  }
  if (header.chainId !== expected.chainId) {
    throw new SnapshotError("other_chain", `taken on chain ${String(header.chainId)}, not ${expected.chainId}`);
  }
  if (typeof header.exchange !== "string" || header.exchange.toLowerCase() !== expected.exchange.toLowerCase()) {
    throw new SnapshotError("other_exchange", `taken of exchange ${String(header.exchange)}, not ${expected.exchange}`);
  }
  const meta = {
    chainId: expected.chainId,
    exchange: expected.exchange,
    blockNumber: int(header.blockNumber, 1, "blockNumber", true),
    blockHash: text(header.blockHash, HASH, 1, "blockHash") as Hex,
  };
  return { lines, header, meta };
}

/** Checks the trailer's checksum over every line before it; returns the trailer's fields. */
export function readTrailer(lines: readonly string[]): Record<string, unknown> {
  const hash = createHash("sha256");
  for (let i = 0; i < lines.length - 1; i++) hash.update(`${lines[i]}\n`);
  const trailer = record(json(lines[lines.length - 1] as string, lines.length), lines.length, "trailer");
  if (trailer.end !== true) throw corrupt(lines.length, "the last line is not a trailer");
  if (trailer.sha256 !== hash.digest("hex")) throw corrupt(lines.length, "checksum mismatch");
  return trailer;
}

/** A running checksum of the lines written; the trailer closes it. */
export class LineHash {
  private readonly hash: Hash = createHash("sha256");

  emit(text: string): string {
    this.hash.update(text);
    return text;
  }

  trailer(fields: Record<string, unknown>): string {
    return `${JSON.stringify({ end: true, ...fields, sha256: this.hash.digest("hex") })}\n`;
  }
}
