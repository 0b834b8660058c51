/**
 * The snapshot format: the book at one block, as JSON Lines, so that a restart replays from that block instead of
 * the exchange's deployment block. Pure: encoding and strict parsing, no I/O (see snapshotFile.ts).
 *
 *   line 1      {"format":"perp-keeper-snapshot","version":1,"chainId":..,"exchange":"0x..","blockNumber":"..",
 *                "blockHash":"0x..","cursor":{..}|null,"markets":M,"positions":P}
 *   M lines     {"market":{id, name, oracle, ratios and scale as decimal strings, funding}}
 *   P lines     [trader, marketId, size, openNotional, margin, lastFundingIndex]   (integers as decimal strings)
 *   last line   {"end":true,"markets":M,"positions":P,"sha256":"<hex of every line before this one, with newlines>"}
 *
 * Every field is checked on the way in: a snapshot that does not parse, is cut short, or fails its checksum is
 * refused whole (SnapshotError), never half-trusted.
 */
import { createHash } from "node:crypto";
import type { Address, Hex } from "viem";
import { type BookState, type Market, positionKey, type TrackedPosition } from "../protocol/perpEngine/book.ts";
import type { LogRef } from "./events.ts";

export const SNAPSHOT_FORMAT = "perp-keeper-snapshot";
export const SNAPSHOT_VERSION = 1;

/** The book at one block of one exchange on one chain. */
export interface Snapshot extends BookState {
  readonly chainId: number;
  readonly exchange: Address;
  readonly blockNumber: bigint;
  readonly blockHash: Hex;
}

export type SnapshotProblem = "corrupt" | "version" | "other_chain" | "other_exchange";

/** A snapshot that cannot be used; `problem` says why, the message says where. */
export class SnapshotError extends Error {
  override name = "SnapshotError";
  constructor(
    readonly problem: SnapshotProblem,
    message: string,
  ) {
    super(message);
  }
}

/** Position lines per chunk: the writer yields to the event loop between chunks. */
const CHUNK = 2_000;

/**
 * The snapshot as chunks of text (each a run of whole lines), ending with the checksummed trailer. Lazy: the caller
 * writes a chunk before the next is built.
 */
export function* snapshotChunks(s: Snapshot): Generator<string> {
  const hash = createHash("sha256");
  const emit = (text: string) => {
    hash.update(text);
    return text;
  };
  const header = {
    format: SNAPSHOT_FORMAT,
    version: SNAPSHOT_VERSION,
    chainId: s.chainId,
    exchange: s.exchange.toLowerCase(),
    blockNumber: s.blockNumber.toString(),
    blockHash: s.blockHash,
    cursor: s.cursor ? { ...s.cursor, blockNumber: s.cursor.blockNumber.toString() } : null,
    markets: s.markets.length,
    positions: s.positions.length,
  };
  let text = `${JSON.stringify(header)}\n`;
  for (const m of s.markets) {
    const market = {
      id: m.id,
      name: m.name,
      oracle: m.oracle,
      priceScale: m.priceScale.toString(),
      initialMarginRatio: m.initialMarginRatio.toString(),
      maintenanceMarginRatio: m.maintenanceMarginRatio.toString(),
      liquidationFeeRatio: m.liquidationFeeRatio.toString(),
      tradingFeeRatio: m.tradingFeeRatio.toString(),
      maxOracleAge: m.maxOracleAge.toString(),
      funding: {
        cumulativeFundingIndex: m.funding.cumulativeFundingIndex.toString(),
        fundingRatePerSecond: m.funding.fundingRatePerSecond.toString(),
        lastFundingTime: m.funding.lastFundingTime.toString(),
      },
    };
    text += `${JSON.stringify({ market })}\n`;
  }
  yield emit(text);
  for (let i = 0; i < s.positions.length; i += CHUNK) {
    let chunk = "";
    for (const p of s.positions.slice(i, i + CHUNK)) {
      chunk += `["${p.trader}",${p.marketId},"${p.size}","${p.openNotional}","${p.margin}","${p.lastFundingIndex}"]\n`;
    }
    yield emit(chunk);
  }
  const trailer = { end: true, markets: s.markets.length, positions: s.positions.length, sha256: hash.digest("hex") };
  yield `${JSON.stringify(trailer)}\n`;
}

const INTEGER = /^-?\d{1,78}$/;
const UNSIGNED = /^\d{1,78}$/;
const ADDRESS = /^0x[0-9a-fA-F]{40}$/;
const HASH = /^0x[0-9a-fA-F]{64}$/;

function corrupt(line: number, what: string): SnapshotError {
  return new SnapshotError("corrupt", `line ${line}: ${what}`);
}

function int(value: unknown, line: number, field: string, unsigned = false): bigint {
  if (typeof value !== "string" || !(unsigned ? UNSIGNED : INTEGER).test(value)) {
    throw corrupt(line, `${field} is not ${unsigned ? "a non-negative" : "an"} integer string`);
  }
  return BigInt(value);
}

function text(value: unknown, pattern: RegExp, line: number, field: string): string {
  if (typeof value !== "string" || !pattern.test(value)) throw corrupt(line, `${field} is malformed`);
  return value;
}

function json(raw: string, line: number): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    throw corrupt(line, "not JSON");
  }
}

function record(value: unknown, line: number, what: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw corrupt(line, `${what} is not an object`);
  return value as Record<string, unknown>;
}

function count(value: unknown, line: number, field: string): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0)
    throw corrupt(line, `${field} is not a count`);
  return value;
}

function parseCursor(value: unknown, line: number): LogRef | undefined {
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

function parseMarket(value: unknown, line: number): Market {
  const m = record(record(value, line, "market line").market, line, "market");
  if (typeof m.id !== "number" || !Number.isSafeInteger(m.id) || m.id < 0)
    throw corrupt(line, "market id is malformed");
  if (typeof m.name !== "string") throw corrupt(line, "market name is malformed");
  const f = record(m.funding, line, "market funding");
  return {
    id: m.id,
    name: m.name,
    oracle: text(m.oracle, ADDRESS, line, "oracle") as Address,
    priceScale: int(m.priceScale, line, "priceScale", true),
    initialMarginRatio: int(m.initialMarginRatio, line, "initialMarginRatio", true),
    maintenanceMarginRatio: int(m.maintenanceMarginRatio, line, "maintenanceMarginRatio", true),
    liquidationFeeRatio: int(m.liquidationFeeRatio, line, "liquidationFeeRatio", true),
    tradingFeeRatio: int(m.tradingFeeRatio, line, "tradingFeeRatio", true),
    maxOracleAge: int(m.maxOracleAge, line, "maxOracleAge", true),
    funding: {
      cumulativeFundingIndex: int(f.cumulativeFundingIndex, line, "cumulativeFundingIndex"),
      fundingRatePerSecond: int(f.fundingRatePerSecond, line, "fundingRatePerSecond"),
      lastFundingTime: int(f.lastFundingTime, line, "lastFundingTime", true),
    },
  };
}

function parsePosition(value: unknown, line: number, markets: ReadonlyMap<number, Market>): TrackedPosition {
  if (!Array.isArray(value) || value.length !== 6) throw corrupt(line, "position line is not a 6-field array");
  const [trader, marketId, size, openNotional, margin, lastFundingIndex] = value as unknown[];
  if (typeof marketId !== "number" || !markets.has(marketId)) throw corrupt(line, "position of a market not listed");
  const t = text(trader, ADDRESS, line, "trader") as Address;
  const position = {
    key: positionKey(marketId, t),
    trader: t,
    marketId,
    size: int(size, line, "size"),
    openNotional: int(openNotional, line, "openNotional", true),
    margin: int(margin, line, "margin"),
    lastFundingIndex: int(lastFundingIndex, line, "lastFundingIndex"),
  };
  if (position.size === 0n) throw corrupt(line, "a position of size 0 (closed positions are not kept)");
  return position;
}

/**
 * Parses a whole snapshot, checking it belongs to `expected` (chain id and exchange address). Throws SnapshotError.
 */
export function parseSnapshot(content: string, expected: { chainId: number; exchange: Address }): Snapshot {
  const lines = content.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  if (lines.length < 2) throw corrupt(lines.length, "too short to be a snapshot");
  const header = record(json(lines[0] as string, 1), 1, "header");
  if (header.format !== SNAPSHOT_FORMAT) throw corrupt(1, `not a ${SNAPSHOT_FORMAT} file`);
  if (header.version !== SNAPSHOT_VERSION) {
    throw new SnapshotError(
      "version",
      `format version ${String(header.version)}, this keeper reads ${SNAPSHOT_VERSION}`,
    );
  }
  if (header.chainId !== expected.chainId) {
    throw new SnapshotError("other_chain", `taken on chain ${String(header.chainId)}, not ${expected.chainId}`);
  }
  if (typeof header.exchange !== "string" || header.exchange.toLowerCase() !== expected.exchange.toLowerCase()) {
    throw new SnapshotError("other_exchange", `taken of exchange ${String(header.exchange)}, not ${expected.exchange}`);
  }
  const marketCount = count(header.markets, 1, "markets");
  const positionCount = count(header.positions, 1, "positions");
  if (lines.length !== 1 + marketCount + positionCount + 1) {
    throw corrupt(lines.length, `${lines.length} lines where the header announces ${marketCount + positionCount + 2}`);
  }
  const hash = createHash("sha256");
  for (let i = 0; i < lines.length - 1; i++) hash.update(`${lines[i]}\n`);
  const trailer = record(json(lines[lines.length - 1] as string, lines.length), lines.length, "trailer");
  if (trailer.end !== true || trailer.markets !== marketCount || trailer.positions !== positionCount) {
    throw corrupt(lines.length, "the trailer does not match the header");
  }
  if (trailer.sha256 !== hash.digest("hex")) throw corrupt(lines.length, "checksum mismatch");
  const markets = new Map<number, Market>();
  for (let i = 1; i <= marketCount; i++) {
    const market = parseMarket(json(lines[i] as string, i + 1), i + 1);
    if (markets.has(market.id)) throw corrupt(i + 1, `market ${market.id} twice`);
    markets.set(market.id, market);
  }
  const positions = new Map<string, TrackedPosition>();
  for (let i = 1 + marketCount; i < lines.length - 1; i++) {
    const position = parsePosition(json(lines[i] as string, i + 1), i + 1, markets);
    if (positions.has(position.key)) throw corrupt(i + 1, `position ${position.key} twice`);
    positions.set(position.key, position);
  }
  return {
    chainId: expected.chainId,
    exchange: expected.exchange,
    blockNumber: int(header.blockNumber, 1, "blockNumber", true),
    blockHash: text(header.blockHash, HASH, 1, "blockHash") as Hex,
    cursor: parseCursor(header.cursor, 1),
    markets: [...markets.values()],
    positions: [...positions.values()],
  };
}
