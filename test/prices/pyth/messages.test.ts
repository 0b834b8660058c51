/**
 * The strict reading of Hermes PriceUpdates: the local server's answers (one MockPyth entry per feed) and real
 * Hermes' shape (one blob for all feeds) become messages carrying the bytes that hold their feed; anything that is
 * not exactly a price is refused with its reason, and never becomes one.
 */
import type { Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LocalHermes, startHermes } from "../../../src/devnet/hermes/server.ts";
import {
  normalizeFeedId,
  type PythMessage,
  PythMessageError,
  type PythRefusal,
  parsePriceUpdate,
  parsePriceUpdateJson,
} from "../../../src/prices/pyth/messages.ts";

const ETH = "ff61491a931112ddf1bd8147cd1b641375f79f5825126d665480874634fd0ace";
const BTC = "e62df6c8b4a85fe1a67db44dc12de5db330f7ac66b72dc658afedf0f4a415b43";
const origin = { receivedAt: 1234.5, endpoint: 2 };

let hermes: LocalHermes;
beforeAll(async () => {
  hermes = await startHermes({
    feeds: [
      { id: ETH, symbol: "ETH/USD", price: 300_000_000_000n, expo: -8, conf: 1_000_000n, publishTime: 1_700_000_000 },
      { id: BTC, symbol: "BTC/USD", price: 9_000_000_000_000n, expo: -8, conf: 5_000_000n, publishTime: 1_700_000_001 },
    ],
  });
});
afterAll(() => hermes.close());

/** The server's own answer, as JSON. */
async function latest(query = "", ids = [ETH, BTC]): Promise<Record<string, unknown>> {
  const url = `${hermes.url}/v2/updates/price/latest?${ids.map((id) => `ids[]=${id}`).join("&")}${query}`;
  return (await (await fetch(url)).json()) as Record<string, unknown>;
}

function refusal(f: () => unknown): PythRefusal {
  try {
    f();
  } catch (error) {
    if (error instanceof PythMessageError) return error.reason;
    throw error;
  }
  throw new Error("not refused");
}

interface Entry {
  id?: unknown;
  price?: Record<string, unknown>;
}
interface Answer {
  binary: { encoding: unknown; data: unknown[] };
  parsed: Entry[];
}

/** A copy of an answer with one change. */
function edited(answer: Record<string, unknown>, change: (a: Answer) => void): Answer {
  const copy = structuredClone(answer) as unknown as Answer;
  change(copy);
  return copy;
}
/** An entry of an answer. */
const at = (a: Answer, i = 0): Entry => a.parsed[i] as Entry;
/** Its price. */
const priceOf = (a: Answer): Record<string, unknown> => at(a).price as Record<string, unknown>;

describe("parsePriceUpdate", () => {
  it("reads the local server's answer: one message per feed, each with the entry carrying it", async () => {
    const messages = parsePriceUpdate(await latest(), origin);
    const [eth, btc] = hermes.updateData([ETH, BTC]);
    expect(messages).toEqual<PythMessage[]>([
      {
        feed: `0x${ETH}`,
        price: 300_000_000_000n,
        conf: 1_000_000n,
        expo: -8,
        publishTime: 1_700_000_000n,
        update: eth as Hex,
        receivedAt: 1234.5,
        endpoint: 2,
      },
      {
        feed: `0x${BTC}`,
        price: 9_000_000_000_000n,
        conf: 5_000_000n,
        expo: -8,
        publishTime: 1_700_000_001n,
        update: btc as Hex,
        receivedAt: 1234.5,
        endpoint: 2,
      },
    ]);
  });

  it("base64 answers give the same bytes; entries in another order than parsed still map to their feed", async () => {
    const b64 = parsePriceUpdate(await latest("&encoding=base64"), origin);
    expect(b64.map((m) => m.update)).toEqual(hermes.updateData([ETH, BTC]));
    const swapped = edited(await latest(), (a) => a.binary.data.reverse());
    expect(parsePriceUpdate(swapped, origin).map((m) => m.update)).toEqual(hermes.updateData([ETH, BTC]));
  });

  it("one blob for every feed (real Hermes): each feed maps to it", async () => {
    const [eth, btc] = hermes.updateData([ETH, BTC]) as [Hex, Hex];
    const blob = `504e4155${eth.slice(2)}${btc.slice(2)}`;
    const messages = parsePriceUpdate(
      edited(await latest(), (a) => {
        a.binary.data = [blob];
      }),
      origin,
    );
    expect(messages.map((m) => m.update)).toEqual([`0x${blob}`, `0x${blob}`]);
    expect(messages[0]?.update).toBe(messages[1]?.update);
  });

  it("the JSON text of a stream event; garbled text is not_json", async () => {
    const answer = await latest();
    expect(parsePriceUpdateJson(JSON.stringify(answer), origin)).toEqual(parsePriceUpdate(answer, origin));
    expect(refusal(() => parsePriceUpdateJson('{"binary": {"data": [', origin))).toBe("not_json");
    expect(refusal(() => parsePriceUpdateJson("", origin))).toBe("not_json");
  });

  it("refuses every malformed answer with its reason", async () => {
    const a = await latest();
    const cases: [string, unknown, PythRefusal][] = [
      ["not an object", [1, 2], "shape"],
      ["no binary", { parsed: a.parsed }, "shape"],
      ["empty data", edited(a, (x) => (x.binary.data = [])), "shape"],
      ["no parsed", edited(a, (x) => delete (x as { parsed?: unknown }).parsed), "shape"],
      ["empty parsed", edited(a, (x) => (x.parsed = [])), "shape"],
      ["unknown encoding", edited(a, (x) => (x.binary.encoding = "utf8")), "encoding"],
      ["odd hex", edited(a, (x) => (x.binary.data[0] = "abc")), "encoding"],
      ["not hex", edited(a, (x) => (x.binary.data[0] = "zz")), "encoding"],
      ["not base64", edited(a, (x) => Object.assign(x.binary, { encoding: "base64", data: ["***="] })), "encoding"],
      ["entry not a string", edited(a, (x) => (x.binary.data[0] = 42)), "encoding"],
      ["short id", edited(a, (x) => (at(x).id = "abcd")), "feed_id"],
      ["no id", edited(a, (x) => delete at(x).id), "feed_id"],
      ["feed twice", edited(a, (x) => (x.parsed[1] = at(x))), "duplicate_feed"],
      ["decimal price", edited(a, (x) => (priceOf(x).price = "1.5")), "price"],
      ["numeric price", edited(a, (x) => (priceOf(x).price = 3)), "price"],
      ["price above int64", edited(a, (x) => (priceOf(x).price = (2n ** 63n).toString())), "price"],
      ["no price", edited(a, (x) => delete at(x).price), "price"],
      ["negative conf", edited(a, (x) => (priceOf(x).conf = "-1")), "conf"],
      ["expo not integer", edited(a, (x) => (priceOf(x).expo = -8.5)), "expo"],
      ["expo a string", edited(a, (x) => (priceOf(x).expo = "-8")), "expo"],
      ["no publish time", edited(a, (x) => delete priceOf(x).publish_time), "publish_time"],
      ["publish time a string", edited(a, (x) => (priceOf(x).publish_time = "1700000000")), "publish_time"],
      ["publish time zero", edited(a, (x) => (priceOf(x).publish_time = 0)), "publish_time"],
      ["a feed without binary", edited(a, (x) => x.binary.data.pop()), "no_binary"],
      ["entries of other feeds", edited(a, (x) => (x.binary.data = [x.binary.data[1], x.binary.data[1]])), "no_binary"],
    ];
    for (const [what, answer, reason] of cases) {
      expect(
        refusal(() => parsePriceUpdate(answer, origin)),
        what,
      ).toBe(reason);
    }
  });

  it("a feed id only at an odd hex offset is not carried", async () => {
    const a = await latest("", [ETH]);
    const shifted = edited(a, (x) => {
      x.binary.data = [`0${ETH}0`];
    });
    expect(refusal(() => parsePriceUpdate(shifted, origin))).toBe("no_binary");
  });
});

describe("normalizeFeedId", () => {
  it("0x + lowercase; anything but 32 bytes of hex refused", () => {
    expect(normalizeFeedId(ETH.toUpperCase())).toBe(`0x${ETH}`);
    expect(normalizeFeedId(`0x${ETH}`)).toBe(`0x${ETH}`);
    expect(() => normalizeFeedId(`0x${ETH}00`)).toThrow(PythMessageError);
    expect(() => normalizeFeedId("0x")).toThrow(/feed_id/);
  });
});
