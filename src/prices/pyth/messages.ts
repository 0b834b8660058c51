/**
 * Pyth prices as the keeper holds them, and the strict reading of a Hermes v2 PriceUpdate (`{ binary: { encoding,
 * data }, parsed: [{ id, price: { price, conf, expo, publish_time }, ema_price, metadata }] }`, as served by
 * /v2/updates/price/latest and each event of /v2/updates/price/stream) into them. Anything that is not exactly a
 * price is refused, with a PythMessageError naming why, and the whole update with it: an answer with one bad entry
 * comes from an endpoint not to be trusted with the others.
 *
 * Each price carries the update bytes to push on chain for it: the `binary.data` entry that holds its feed id. Real
 * Hermes sends one accumulator blob for all the feeds of an answer (every feed maps to it); the devnet's local
 * server one MockPyth entry per feed, in the order of `parsed`. Both hold each feed's 32-byte id in clear, so an
 * entry is taken for a feed only if it contains that id: a feed that no entry carries is refused (`no_binary`).
 * Pure and synchronous: the stream calls it between an event's arrival and its listeners.
 */
import type { Hex } from "viem";

export interface PythMessage {
  /** 0x + 64 lowercase hex. */
  readonly feed: Hex;
  /** Fixed point: price x 10^expo. */
  readonly price: bigint;
  readonly conf: bigint;
  readonly expo: number;
  /** Unix seconds. */
  readonly publishTime: bigint;
  /** The update bytes (a binary.data entry, 0x-prefixed lowercase hex) that carry this feed; feeds may share one. */
  readonly update: Hex;
  /** performance.now() (or the stream's clock) when the answer arrived, in ms. */
  readonly receivedAt: number;
  /** Index of the endpoint it came from, in the stream's endpoint list. */
  readonly endpoint: number;
}

export type PythRefusal =
  | "not_json"
  | "shape"
  | "encoding"
  | "feed_id"
  | "duplicate_feed"
  | "price"
  | "conf"
  | "expo"
  | "publish_time"
  | "no_binary";

/** An answer that is not a price update: refused whole, never turned into prices. */
export class PythMessageError extends Error {
  override name = "PythMessageError";
  constructor(
    readonly reason: PythRefusal,
    message: string,
  ) {
    super(`${reason}: ${message}`);
  }
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;
const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;
const FEED_ID = /^(?:0x)?([0-9a-fA-F]{64})$/;
const HEX = /^(?:0x)?([0-9a-fA-F]+)$/;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const INTEGER = /^-?(?:0|[1-9][0-9]*)$/;
const UNSIGNED = /^(?:0|[1-9][0-9]*)$/;

/** A feed id as the keeper writes it: 0x + 64 lowercase hex (Hermes writes ids without 0x). */
export function normalizeFeedId(id: string): Hex {
  const m = FEED_ID.exec(id);
  if (!m) throw new PythMessageError("feed_id", `not a 32-byte feed id: ${JSON.stringify(id.slice(0, 80))}`);
  return `0x${(m[1] as string).toLowerCase()}`;
}

export interface MessageOrigin {
  readonly receivedAt: number;
  readonly endpoint: number;
}

/** A stream event's `data` (JSON text) read as parsePriceUpdate does. */
export function parsePriceUpdateJson(text: string, origin: MessageOrigin): PythMessage[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new PythMessageError("not_json", error instanceof Error ? error.message : String(error));
  }
  return parsePriceUpdate(value, origin);
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * The prices of a Hermes PriceUpdate, in the order of `parsed`. Throws PythMessageError on: a missing or malformed
 * `binary` (encoding other than hex/base64, an entry that is not of it, or empty), a missing or empty `parsed`, an
 * id that is not 32 bytes of hex, a feed twice, a price that is not an int64 decimal string, a conf that is not a
 * uint64 one, an expo that is not an int32, a publish time that is not a positive integer, and a feed no binary
 * entry carries.
 */
export function parsePriceUpdate(update: unknown, origin: MessageOrigin): PythMessage[] {
  if (!isObject(update)) throw new PythMessageError("shape", "the update is not an object");
  const binary = update.binary;
  if (!isObject(binary)) throw new PythMessageError("shape", "no binary");
  const data = binary.data;
  if (!Array.isArray(data) || data.length === 0)
    throw new PythMessageError("shape", "binary.data is not a non-empty list");
  const blobs = data.map((entry, i) => blob(entry, binary.encoding, i));
  const parsed = update.parsed;
  if (!Array.isArray(parsed) || parsed.length === 0) {
    throw new PythMessageError("shape", "parsed is not a non-empty list (ask with parsed=true)");
  }
  const seen = new Set<Hex>();
  return parsed.map((entry, i) => {
    if (!isObject(entry)) throw new PythMessageError("shape", `parsed[${i}] is not an object`);
    if (typeof entry.id !== "string") throw new PythMessageError("feed_id", `parsed[${i}] has no id`);
    const feed = normalizeFeedId(entry.id);
    if (seen.has(feed)) throw new PythMessageError("duplicate_feed", `${feed} twice in one update`);
    seen.add(feed);
    const p = entry.price;
    if (!isObject(p)) throw new PythMessageError("price", `${feed} has no price`);
    const price = integer(p.price, INT64_MIN, INT64_MAX);
    if (price === undefined) throw new PythMessageError("price", `${feed} price is not an int64: ${show(p.price)}`);
    const conf = typeof p.conf === "string" && UNSIGNED.test(p.conf) ? integer(p.conf, 0n, UINT64_MAX) : undefined;
    if (conf === undefined) throw new PythMessageError("conf", `${feed} conf is not a uint64: ${show(p.conf)}`);
    const expo = p.expo;
    if (typeof expo !== "number" || !Number.isInteger(expo) || expo < INT32_MIN || expo > INT32_MAX) {
      throw new PythMessageError("expo", `${feed} expo is not an int32: ${show(expo)}`);
    }
    const t = p.publish_time;
    if (typeof t !== "number" || !Number.isSafeInteger(t) || t <= 0) {
      throw new PythMessageError("publish_time", `${feed} publish_time is not a positive integer: ${show(t)}`);
    }
    const update = carrier(blobs, feed, i, parsed.length);
    if (update === undefined) throw new PythMessageError("no_binary", `no binary.data entry carries ${feed}`);
    return { feed, price, conf, expo, publishTime: BigInt(t), update, ...origin };
  });
}

/** One binary.data entry as 0x lowercase hex. */
function blob(entry: unknown, encoding: unknown, i: number): Hex {
  if (typeof entry !== "string" || entry.length === 0) {
    throw new PythMessageError("encoding", `binary.data[${i}] is not a non-empty string`);
  }
  if (encoding === "hex") {
    const m = HEX.exec(entry);
    if (!m || (m[1] as string).length % 2 !== 0) throw new PythMessageError("encoding", `binary.data[${i}] is not hex`);
    return `0x${(m[1] as string).toLowerCase()}`;
  }
  if (encoding === "base64") {
    if (entry.length % 4 !== 0 || !BASE64.test(entry)) {
      throw new PythMessageError("encoding", `binary.data[${i}] is not base64`);
    }
    return `0x${Buffer.from(entry, "base64").toString("hex")}`;
  }
  throw new PythMessageError("encoding", `binary.encoding is ${show(encoding)}, not hex or base64`);
}

/** The entry carrying a feed: the one at its own index when there is one entry per feed, else the first holding it. */
function carrier(blobs: readonly Hex[], feed: Hex, i: number, feeds: number): Hex | undefined {
  const id = feed.slice(2);
  const own = blobs.length === feeds ? blobs[i] : undefined;
  if (own !== undefined && holds(own, id)) return own;
  return blobs.find((b) => holds(b, id));
}

/** Whether hex bytes contain the 32 bytes `id` (64 hex, no 0x) at a byte boundary. */
function holds(bytes: Hex, id: string): boolean {
  for (let at = bytes.indexOf(id, 2); at !== -1; at = bytes.indexOf(id, at + 1)) {
    if (at % 2 === 0) return true;
  }
  return false;
}

function integer(value: unknown, min: bigint, max: bigint): bigint | undefined {
  if (typeof value !== "string" || value.length > 40 || !INTEGER.test(value)) return undefined;
  const n = BigInt(value);
  return n < min || n > max ? undefined : n;
}

function show(value: unknown): string {
  const text = value === undefined ? "missing" : JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 60)}…` : text;
}
