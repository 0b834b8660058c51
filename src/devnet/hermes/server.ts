/**
 * A local Hermes-compatible price service for the devnet, the demo and the tests: a real HTTP server (node:http, a free
 * loopback port) speaking the parts of Hermes' v2 API that @pythnetwork/hermes-client's HermesClient uses:
 * - `GET /v2/price_feeds[?query=..&asset_type=..]`: the feed list, `[{ id, attributes }]`;
 * - `GET /v2/updates/price/latest?ids[]=..[&encoding=hex|base64][&parsed=true|false][&ignore_invalid_price_ids=..]`:
 *   `{ binary: { encoding, data }, parsed: [{ id, price, ema_price, metadata }] }`;
 * - `GET /v2/updates/price/stream?ids[]=..` (same options): server-sent events, one `data: <json>` in that shape per
 *   price move of a requested feed (only the moved feeds), and one with the current prices on connect.
 * Prices are moved with setPrice/setPrices. Ids go out as Hermes writes them: lowercase hex without 0x; hex update
 * data likewise without 0x. Unlike real Hermes (one accumulator blob for all ids), `binary.data` has one entry per
 * feed: the MockPyth update data for its current price (see updateData.ts), so `getUpdateFee` counts one fee each.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Hex } from "viem";
import { encodeMockPythUpdate } from "./updateData.ts";

export interface HermesFeedSpec {
  /** 32-byte feed id, with or without 0x. */
  readonly id: string;
  /** "ETH/USD", or a full Hermes symbol such as "Crypto.ETH/USD". */
  readonly symbol: string;
  /** Fixed-point price: value x 10^expo. */
  readonly price: bigint;
  readonly expo: number;
  readonly conf: bigint;
  /** Hermes asset type (default "Crypto"). */
  readonly assetType?: string;
  /** Unix seconds of the first price (default: now). */
  readonly publishTime?: bigint | number;
}

export interface HermesFeedState {
  /** Lowercase hex, no 0x (as Hermes writes ids). */
  readonly id: string;
  readonly price: bigint;
  readonly conf: bigint;
  readonly expo: number;
  readonly emaPrice: bigint;
  readonly emaConf: bigint;
  readonly publishTime: bigint;
  readonly prevPublishTime: bigint;
  /** A counter standing for Pythnet's slot: one per price move. */
  readonly slot: number;
}

export interface PriceMove {
  readonly id: string;
  readonly price: bigint;
  /** Unix seconds; default: now, but always after the feed's last publish time (MockPyth keeps only newer prices). */
  readonly publishTime?: bigint | number;
  /** Default: unchanged. */
  readonly conf?: bigint;
}

export interface LocalHermes {
  /** Base URL, e.g. http://127.0.0.1:PORT (what HermesClient takes). */
  readonly url: string;
  /** Moves one feed's price and pushes an event to the streams that asked for it. */
  setPrice(id: string, price: bigint, publishTime?: bigint | number): HermesFeedState;
  /** Moves several prices at once: one event per stream (as one Pythnet slot would). */
  setPrices(moves: readonly PriceMove[]): HermesFeedState[];
  /** The current state of a feed. */
  feed(id: string): HermesFeedState;
  /** MockPyth update data (0x hex) for the current prices of these feeds, in order. */
  updateData(ids: readonly string[]): Hex[];
  /** Open stream connections (for tests). */
  readonly streams: number;
  /**
   * Fault modes, for tests: a frozen server. Until resume(), requests get no answer and streams no event (moves
   * still happen); resume() answers the held requests and sends the held events, in order.
   */
  pause(): void;
  resume(): void;
  /** Ends every open stream (the server stays up and accepts new ones), as a proxy or a restart would. */
  endStreams(): void;
  /** Ends every stream and stops the server. */
  close(): Promise<void>;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Lowercase hex without 0x; throws on anything but 32 bytes of hex. */
export function normalizeFeedId(id: string): string {
  const hex = id.toLowerCase().replace(/^0x/, "");
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new HttpError(400, `Invalid price id: ${id}`);
  return hex;
}

function attributesOf(spec: HermesFeedSpec): Record<string, string> {
  const assetType = spec.assetType ?? "Crypto";
  const pair = spec.symbol.includes(".") ? spec.symbol.slice(spec.symbol.indexOf(".") + 1) : spec.symbol;
  const [base = pair, quote = ""] = pair.split("/");
  return {
    asset_type: assetType,
    base,
    description: quote ? `${base} / ${quote}` : base,
    display_symbol: pair,
    generic_symbol: `${base}${quote}`,
    quote_currency: quote,
    symbol: spec.symbol.includes(".") ? spec.symbol : `${assetType}.${pair}`,
  };
}

const nowSeconds = () => BigInt(Math.floor(Date.now() / 1000));

interface Stream {
  readonly ids: Set<string>;
  readonly encoding: "hex" | "base64";
  readonly parsed: boolean;
  readonly res: ServerResponse;
}

/** Starts the service on 127.0.0.1 (a free port unless given). Always pair with close(). */
export async function startHermes(options: { feeds: readonly HermesFeedSpec[]; port?: number }): Promise<LocalHermes> {
  const states = new Map<string, HermesFeedState>();
  const metadata: { id: string; attributes: Record<string, string> }[] = [];
  let slot = 0;
  for (const spec of options.feeds) {
    const id = normalizeFeedId(spec.id);
    if (states.has(id)) throw new Error(`feed ${id} given twice`);
    const publishTime = spec.publishTime === undefined ? nowSeconds() : BigInt(spec.publishTime);
    const { price, conf, expo } = spec;
    const prevPublishTime = publishTime > 0n ? publishTime - 1n : 0n;
    states.set(id, { id, price, conf, expo, emaPrice: price, emaConf: conf, publishTime, prevPublishTime, slot });
    metadata.push({ id, attributes: attributesOf(spec) });
  }
  const streams = new Set<Stream>();
  let held: (() => void)[] | undefined; // while paused: what to do on resume

  const stateOf = (id: string): HermesFeedState => {
    const state = states.get(normalizeFeedId(id));
    if (!state) throw new HttpError(404, `Price ids not found: ${id}`);
    return state;
  };
  const bytesOf = (s: HermesFeedState): Hex => encodeMockPythUpdate({ ...s, id: `0x${s.id}` as Hex });
  const rpcPrice = (price: bigint, conf: bigint, s: HermesFeedState) => ({
    price: price.toString(),
    conf: conf.toString(),
    expo: s.expo,
    publish_time: Number(s.publishTime),
  });
  const body = (feeds: readonly HermesFeedState[], encoding: "hex" | "base64", parsed: boolean) => ({
    binary: {
      encoding,
      data: feeds.map((s) => {
        const hex = bytesOf(s).slice(2);
        return encoding === "hex" ? hex : Buffer.from(hex, "hex").toString("base64");
      }),
    },
    ...(parsed
      ? {
          parsed: feeds.map((s) => ({
            id: s.id,
            price: rpcPrice(s.price, s.conf, s),
            ema_price: rpcPrice(s.emaPrice, s.emaConf, s),
            metadata: {
              slot: s.slot,
              proof_available_time: Number(s.publishTime),
              prev_publish_time: Number(s.prevPublishTime),
            },
          })),
        }
      : {}),
  });

  /** The feeds, encoding and parsed flag a price request asks for. */
  const priceRequest = (query: URLSearchParams) => {
    const encoding = query.get("encoding") ?? "hex";
    if (encoding !== "hex" && encoding !== "base64") throw new HttpError(400, `Invalid encoding: ${encoding}`);
    const ignoreInvalid = query.get("ignore_invalid_price_ids") === "true";
    const ids = query.getAll("ids[]");
    if (ids.length === 0) throw new HttpError(400, "Missing ids[]");
    const feeds: HermesFeedState[] = [];
    const missing: string[] = [];
    for (const raw of ids) {
      const id = raw.toLowerCase().replace(/^0x/, "");
      const state = /^[0-9a-f]{64}$/.test(id) ? states.get(id) : undefined;
      if (state) {
        if (!feeds.includes(state)) feeds.push(state);
      } else if (!/^[0-9a-f]{64}$/.test(id) && !ignoreInvalid) throw new HttpError(400, `Invalid price id: ${raw}`);
      else missing.push(raw);
    }
    if (missing.length > 0 && !ignoreInvalid) throw new HttpError(404, `Price ids not found: ${missing.join(", ")}`);
    return { feeds, encoding: encoding as "hex" | "base64", parsed: query.get("parsed") !== "false" };
  };

  const sendJson = (res: ServerResponse, status: number, value: unknown) => {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify(value));
  };

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    if (req.method !== "GET") throw new HttpError(405, "Method not allowed");
    if (url.pathname === "/v2/price_feeds") {
      const query = url.searchParams.get("query")?.toLowerCase();
      const assetType = url.searchParams.get("asset_type")?.toLowerCase();
      const list = metadata.filter(
        (m) =>
          (!query || (m.attributes.symbol ?? "").toLowerCase().includes(query)) &&
          (!assetType || (m.attributes.asset_type ?? "").toLowerCase() === assetType),
      );
      return sendJson(res, 200, list);
    }
    if (url.pathname === "/v2/updates/price/latest") {
      const { feeds, encoding, parsed } = priceRequest(url.searchParams);
      return sendJson(res, 200, body(feeds, encoding, parsed));
    }
    if (url.pathname === "/v2/updates/price/stream") {
      const { feeds, encoding, parsed } = priceRequest(url.searchParams);
      const stream: Stream = { ids: new Set(feeds.map((f) => f.id)), encoding, parsed, res };
      res.writeHead(200, {
        "content-type": "text/event-stream",
        "cache-control": "no-cache",
        connection: "keep-alive",
      });
      streams.add(stream);
      res.on("close", () => streams.delete(stream));
      if (feeds.length > 0) res.write(`data: ${JSON.stringify(body(feeds, encoding, parsed))}\n\n`);
      return;
    }
    throw new HttpError(404, `Not found: ${url.pathname}`);
  };

  const server = createServer((req, res) => {
    if (held) {
      held.push(() => serve(req, res));
      return;
    }
    serve(req, res);
  });
  const serve = (req: IncomingMessage, res: ServerResponse) => {
    if (res.destroyed) return;
    try {
      handle(req, res);
    } catch (error) {
      const status = error instanceof HttpError ? error.status : 500;
      if (!res.headersSent) res.writeHead(status, { "content-type": "text/plain" });
      res.end(error instanceof Error ? error.message : String(error));
    }
  };
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  const setPrices = (moves: readonly PriceMove[]): HermesFeedState[] => {
    slot += 1;
    const moved = moves.map((move) => {
      const last = stateOf(move.id);
      const wanted = move.publishTime === undefined ? nowSeconds() : BigInt(move.publishTime);
      const publishTime = move.publishTime === undefined && wanted <= last.publishTime ? last.publishTime + 1n : wanted;
      const conf = move.conf ?? last.conf;
      const next: HermesFeedState = {
        ...last,
        price: move.price,
        conf,
        emaPrice: move.price,
        emaConf: conf,
        publishTime,
        prevPublishTime: last.publishTime,
        slot,
      };
      states.set(last.id, next);
      return next;
    });
    for (const stream of streams) {
      const feeds = moved.filter((s) => stream.ids.has(s.id));
      if (feeds.length === 0) continue;
      const event = `data: ${JSON.stringify(body(feeds, stream.encoding, stream.parsed))}\n\n`;
      if (held) held.push(() => stream.res.writableEnded || stream.res.write(event));
      else stream.res.write(event);
    }
    return moved;
  };

  return {
    url: `http://127.0.0.1:${port}`,
    setPrice: (id, price, publishTime) =>
      setPrices([{ id, price, ...(publishTime === undefined ? {} : { publishTime }) }])[0] as HermesFeedState,
    setPrices,
    feed: stateOf,
    updateData: (ids) => ids.map((id) => bytesOf(stateOf(id))),
    get streams() {
      return streams.size;
    },
    pause: () => {
      held ??= [];
    },
    resume: () => {
      const todo = held ?? [];
      held = undefined;
      for (const run of todo) run();
    },
    endStreams: () => {
      for (const stream of streams) stream.res.end();
      streams.clear();
    },
    close: async () => {
      held = undefined;
      for (const stream of streams) stream.res.end();
      streams.clear();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
