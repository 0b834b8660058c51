/**
 * PerpEngine's snapshot format (version 1): the book at one block, as JSON Lines, so that a restart replays from that block instead of
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
import type { Address, Hex } from "viem";
import { type ParsedSnapshot, type SnapshotCodec, SnapshotError } from "../../state/snapshotCodec.ts";
import {
  ADDRESS,
  corrupt,
  count,
  int,
  json,
  LineHash,
  metaFields,
  parseCursor,
  readHeader,
  readTrailer,
  record,
  SNAPSHOT_FORMAT,
  text,
  writeCursor,
} from "../../state/snapshotLines.ts";
import { type BookState, type Market, positionKey, type TrackedPosition } from "./book.ts";

export const SNAPSHOT_VERSION = 1;

/** The book at one block of one exchange on one chain. */
export interface Snapshot extends BookState {
  readonly chainId: number;
  readonly exchange: Address;
  readonly blockNumber: bigint;
  readonly blockHash: Hex;
}

/** Position lines per chunk: the writer yields to the event loop between chunks. */
const CHUNK = 2_000;

/**
 * The snapshot as chunks of text (each a run of whole lines), ending with the checksummed trailer. Lazy: the caller
 * writes a chunk before the next is built.
 */
export function* snapshotChunks(s: Snapshot): Generator<string> {
  const hash = new LineHash();
  const emit = (text: string) => hash.emit(text);
  const header = {
    format: SNAPSHOT_FORMAT,
    version: SNAPSHOT_VERSION,
    ...metaFields(s),
    cursor: writeCursor(s.cursor),
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
  yield hash.trailer({ markets: s.markets.length, positions: s.positions.length });
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
  const { lines, header, meta } = readHeader(content, SNAPSHOT_VERSION, expected);
  const marketCount = count(header.markets, 1, "markets");
  const positionCount = count(header.positions, 1, "positions");
  if (lines.length !== 1 + marketCount + positionCount + 1) {
    throw corrupt(lines.length, `${lines.length} lines where the header announces ${marketCount + positionCount + 2}`);
  }
  const trailer = readTrailer(lines);
  if (trailer.markets !== marketCount || trailer.positions !== positionCount) {
    throw corrupt(lines.length, "the trailer does not match the header");
  }
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
    ...meta,
    cursor: parseCursor(header.cursor, 1),
    markets: [...markets.values()],
    positions: [...positions.values()],
  };
}

/** PerpEngine's snapshots: format version 1, files named `<chainId>-<engine>.jsonl` as before the seam. */
export const perpEngineSnapshots: SnapshotCodec<BookState> = {
  fileTag: "",
  counts: (state) => ({ markets: state.markets.length, positions: state.positions.length }),
  chunks: (meta, state) => snapshotChunks({ ...meta, ...state }),
  parse(content, expected): ParsedSnapshot<BookState> {
    const { cursor, markets, positions, ...meta } = parseSnapshot(content, expected);
    return { ...meta, state: { cursor, markets, positions } };
  },
};

export { SnapshotError };
