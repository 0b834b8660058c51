/**
 * Decodes a contract's known events at the speed of the wire: each event's selector and field layout are computed
 * once, and static fields are read straight from their 32-byte words. viem's parseEventLogs recomputes every event's
 * selector (a keccak) for every log and checksums every address; here an address is checksummed once and cached.
 * Events with dynamic fields fall back to viem's decodeAbiParameters.
 */
import {
  type AbiEvent,
  type AbiParameter,
  decodeAbiParameters,
  getAddress,
  type Hex,
  type Log,
  toEventSelector,
} from "viem";

export interface DecodedLog {
  readonly eventName: string;
  readonly args: Record<string, unknown>;
}

type Reader = (word: string) => unknown;

const TWO_256 = 1n << 256n;
const TWO_255 = 1n << 255n;

/** A reader for one static ABI type, from its 64 hex characters; undefined for a dynamic type. */
function readerOf(type: string, checksum: (hex: string) => Hex): Reader | undefined {
  const integer = /^(u?)int(\d*)$/.exec(type);
  if (integer) {
    const signed = integer[1] === "";
    const bits = Number(integer[2] || "256");
    // as viem decodes them: integers of up to 48 bits are numbers, wider ones bigints
    if (bits <= 48) {
      return (w) => {
        const v = BigInt(`0x${w}`);
        return Number(signed && v >= TWO_255 ? v - TWO_256 : v);
      };
    }
    return (w) => {
      const v = BigInt(`0x${w}`);
      return signed && v >= TWO_255 ? v - TWO_256 : v;
    };
  }
  if (type === "address") return (w) => checksum(w.slice(24));
  if (type === "bool") return (w) => BigInt(`0x${w}`) !== 0n;
  if (/^bytes([1-9]|[12]\d|3[0-2])$/.test(type)) {
    const size = Number(type.slice(5));
    return (w) => `0x${w.slice(0, size * 2)}` as Hex;
  }
  return undefined;
}

interface Layout {
  readonly name: string;
  readonly indexed: readonly { readonly name: string; readonly read: Reader | undefined }[];
  readonly data: readonly AbiParameter[];
  /** Readers of the data words when every data field is static; undefined: decode with viem. */
  readonly dataReaders: readonly Reader[] | undefined;
}

/** A decoder for these events: a log of another event (or another contract's) gives undefined. */
export function eventDecoder(
  events: readonly AbiEvent[],
): (log: Pick<Log, "topics" | "data">) => DecodedLog | undefined {
  const checksums = new Map<string, Hex>();
  const checksum = (hex: string): Hex => {
    let address = checksums.get(hex);
    if (address === undefined) {
      address = getAddress(`0x${hex}`);
      checksums.set(hex, address);
    }
    return address;
  };
  const layouts = new Map<string, Layout>();
  for (const event of events) {
    const data = event.inputs.filter((p) => !p.indexed);
    const readers = data.map((p) => readerOf(p.type, checksum));
    layouts.set(toEventSelector(event).toLowerCase(), {
      name: event.name,
      indexed: event.inputs
        .filter((p) => p.indexed)
        .map((p) => ({ name: p.name ?? "", read: readerOf(p.type, checksum) })),
      data,
      dataReaders: readers.every((r) => r !== undefined) ? (readers as Reader[]) : undefined,
    });
  }
  return (log) => {
    const topic0 = log.topics[0];
    const layout = topic0 === undefined ? undefined : layouts.get(topic0.toLowerCase());
    if (!layout) return undefined;
    if (log.topics.length !== layout.indexed.length + 1) return undefined;
    const args: Record<string, unknown> = {};
    layout.indexed.forEach((p, i) => {
      const topic = log.topics[i + 1] as Hex;
      // a dynamic indexed field is stored as its hash: the topic is all there is
      args[p.name] = p.read ? p.read(topic.slice(2)) : topic;
    });
    if (layout.dataReaders) {
      const hex = log.data.slice(2);
      if (hex.length < layout.dataReaders.length * 64) return undefined;
      layout.dataReaders.forEach((read, i) => {
        args[layout.data[i]?.name ?? String(i)] = read(hex.slice(i * 64, i * 64 + 64));
      });
    } else {
      const values = decodeAbiParameters(layout.data, log.data);
      layout.data.forEach((p, i) => {
        args[p.name ?? String(i)] = values[i];
      });
    }
    return { eventName: layout.name, args };
  };
}
