/**
 * PythPriceStream against real local Hermes servers (src/devnet/hermes/server.ts) through the official HermesClient:
 * snapshot then streamed moves with the servers' exact bytes, older prices ignored, failover on a stream that ends,
 * an endpoint gone silent or lagging, every endpoint down (prices_stale once, latest() still served) and back
 * (prices_recovered), malformed answers refused, and endpoint credentials that reach the server but no log line.
 * Every wait is on a condition with a deadline.
 */
import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Hex } from "viem";
import { afterEach, describe, expect, it } from "vitest";
import { redactUrl } from "../../../src/config/load.ts";
import { type HermesFeedSpec, type LocalHermes, startHermes } from "../../../src/devnet/hermes/server.ts";
import { PythPriceStream, type PythPriceStreamOptions } from "../../../src/prices/pyth/hermesStream.ts";
import type { PythMessage } from "../../../src/prices/pyth/messages.ts";
import { type CapturedLog, captureLogs } from "../../helpers/logs.ts";
import { until } from "../../helpers/wait.ts";

const ETH = "0xff61491a931112ddf1bd8147cd1b641375f79f5825126d665480874634fd0ace" as Hex;
const BTC = "0xe62df6c8b4a85fe1a67db44dc12de5db330f7ac66b72dc658afedf0f4a415b43" as Hex;
const now = () => BigInt(Math.floor(Date.now() / 1000));

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

function specs(publishTime = now()): HermesFeedSpec[] {
  return [
    { id: ETH, symbol: "ETH/USD", price: 300_000_000_000n, expo: -8, conf: 1_000_000n, publishTime },
    { id: BTC, symbol: "BTC/USD", price: 9_000_000_000_000n, expo: -8, conf: 5_000_000n, publishTime },
  ];
}

async function hermes(publishTime?: bigint, port?: number): Promise<LocalHermes> {
  const h = await startHermes({ feeds: specs(publishTime), ...(port === undefined ? {} : { port }) });
  cleanup.push(() => h.close());
  return h;
}

interface Run {
  readonly stream: PythPriceStream;
  readonly logs: CapturedLog;
  /** Every onUpdate call's messages. */
  readonly updates: PythMessage[][];
  failovers(): Record<string, unknown>[];
  /** Following endpoint `index`, its stream open. */
  on(index: number): boolean;
}

function run(endpoints: string[], options: Partial<PythPriceStreamOptions> = {}, level = "info"): Run {
  const logs = captureLogs(level);
  const stream = new PythPriceStream({
    endpoints,
    feeds: [ETH, BTC],
    log: logs.log,
    staleAfterMs: 10_000, // the local server is silent between moves: only the tests of silence ask for less
    backoffBaseMs: 50,
    ...options,
  });
  cleanup.push(() => stream.close());
  const updates: PythMessage[][] = [];
  stream.onUpdate((moved) => updates.push([...moved]));
  return {
    stream,
    logs,
    updates,
    failovers: () => logs.events("price_stream_failover"),
    on: (index) => {
      const h = stream.health();
      return h.connected && h.endpoint === redactUrl(endpoints[index] as string);
    },
  };
}

/** A loopback port nothing listens on. */
async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

interface Proxy {
  readonly url: string;
  readonly requests: { url: string; authorization: string | undefined }[];
  /** Rewrites the body of /latest answers. */
  latest?: (body: string) => string;
  /** Sent as the whole answer to /stream, instead of the upstream's stream. */
  stream?: string;
  /** Answer 500 with this body. */
  fail?: (req: IncomingMessage) => string;
}

/**
 * A raw HTTP server in front of a local Hermes: passes requests on (streams too), or answers what a test makes it
 * (garbled JSON, a garbled stream, errors); optionally refuses requests without a path prefix, an api-key query
 * parameter or HTTP Basic credentials, as a keyed provider would.
 */
async function proxy(upstream: string, auth: { prefix?: string; apiKey?: string; basic?: string } = {}) {
  const p: Proxy & { server?: Server } = { url: "", requests: [] };
  const answer = (res: ServerResponse, status: number, body: string) => {
    res.writeHead(status, { "content-type": "text/plain" });
    res.end(body);
  };
  const server = createServer((req, res) => {
    p.requests.push({ url: req.url ?? "", authorization: req.headers.authorization });
    const url = new URL(req.url ?? "/", "http://proxy");
    if (auth.prefix) {
      if (!url.pathname.startsWith(`${auth.prefix}/`)) return answer(res, 404, `Not found: ${req.url}`);
      url.pathname = url.pathname.slice(auth.prefix.length);
    }
    const basic = auth.basic && `Basic ${Buffer.from(auth.basic).toString("base64")}`;
    if (
      (auth.apiKey && url.searchParams.get("api-key") !== auth.apiKey) ||
      (basic && req.headers.authorization !== basic)
    ) {
      return answer(res, 401, "unauthorized");
    }
    if (p.fail) return answer(res, 500, p.fail(req));
    if (url.pathname.endsWith("/stream") && p.stream !== undefined) {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write(p.stream);
      return;
    }
    const up = request(`${upstream}${url.pathname}${url.search}`, (upRes) => {
      const rewrite = url.pathname.endsWith("/latest") ? p.latest : undefined;
      if (!rewrite) {
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        upRes.pipe(res);
        return;
      }
      let body = "";
      upRes.on("data", (chunk: Buffer) => {
        body += chunk.toString();
      });
      upRes.on("end", () => {
        res.writeHead(upRes.statusCode ?? 502, { "content-type": "application/json" });
        res.end(rewrite(body));
      });
    });
    up.on("error", () => res.destroy());
    res.on("close", () => up.destroy());
    up.end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  p.server = server;
  Object.assign(p, { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
  cleanup.push(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  );
  return p;
}

describe("PythPriceStream", () => {
  it("takes the latest updates, then each streamed move, with the exact bytes the server serves", async () => {
    const a = await hermes();
    const r = run([a.url]);
    await r.stream.start();
    expect(r.stream.latest(ETH)).toMatchObject({
      feed: ETH,
      price: 300_000_000_000n,
      conf: 1_000_000n,
      expo: -8,
      publishTime: a.feed(ETH).publishTime,
      update: a.updateData([ETH])[0],
      endpoint: 0,
    });
    expect(r.updates).toHaveLength(1); // the snapshot: both feeds in one call
    expect(r.updates[0]?.map((m) => m.feed)).toEqual([ETH, BTC]);
    await until("the stream open", () => r.on(0), 5_000);
    expect(r.updates).toHaveLength(1); // the stream's first event repeats the snapshot: nothing moved

    a.setPrice(ETH, 290_000_000_000n);
    await until("the move", () => r.updates.length === 2, 5_000);
    const [moved] = r.updates[1] ?? [];
    expect(r.updates[1]).toHaveLength(1);
    expect(moved).toMatchObject({ feed: ETH, price: 290_000_000_000n, publishTime: a.feed(ETH).publishTime });
    expect(moved?.update).toBe(a.updateData([ETH])[0]);
    expect(r.stream.latest(ETH)).toBe(moved);

    a.setPrices([
      { id: ETH, price: 280_000_000_000n },
      { id: BTC, price: 8_800_000_000_000n },
    ]);
    await until("both moves", () => r.updates.length === 3, 5_000);
    expect(r.updates[2]?.map((m) => [m.feed, m.price, m.update])).toEqual([
      [ETH, 280_000_000_000n, a.updateData([ETH])[0]],
      [BTC, 8_800_000_000_000n, a.updateData([BTC])[0]],
    ]);
    expect(r.stream.health()).toMatchObject({ endpoint: redactUrl(a.url), connected: true, stale: false });
    expect(r.failovers()).toEqual([]);
  });

  it("ignores a message older than, or as old as, the one held", async () => {
    const a = await hermes();
    const r = run([a.url]);
    await r.stream.start();
    await until("the stream open", () => r.on(0), 5_000);
    const held = r.stream.latest(ETH)?.publishTime ?? 0n;
    a.setPrice(ETH, 111n, held - 5n); // older
    a.setPrice(ETH, 222n, held); // as old
    a.setPrice(ETH, 333n, held + 1n); // newer: the events come in order, so the two before it arrived first
    await until("the newer move", () => r.stream.latest(ETH)?.price === 333n, 5_000);
    expect(
      r.updates
        .slice(1)
        .flat()
        .map((m) => m.price),
    ).toEqual([333n]);
  });

  it("follows the feeds given by setFeeds", async () => {
    const a = await hermes();
    const r = run([a.url], { feeds: [ETH] });
    await r.stream.start();
    expect(r.stream.latest(BTC)).toBeUndefined();
    r.stream.setFeeds([ETH, BTC]);
    await until("BTC's price", () => r.stream.latest(BTC) !== undefined, 5_000);
    await until("the stream open again", () => r.on(0) && a.streams === 1, 5_000);
    a.setPrice(BTC, 8_000_000_000_000n);
    await until("BTC's move", () => r.stream.latest(BTC)?.price === 8_000_000_000_000n, 5_000);
    r.stream.setFeeds([BTC]);
    expect(r.stream.latest(ETH)).toBeUndefined();

    const idle = run([a.url], { feeds: [] }); // no market yet: nothing asked until there is one
    await idle.stream.start();
    expect(idle.stream.health().connected).toBe(false);
    idle.stream.setFeeds([ETH]);
    await until("ETH's price", () => idle.stream.latest(ETH)?.price === 300_000_000_000n, 5_000);
    await until("its stream open", () => idle.on(0), 5_000);
  });

  it("fails over to the next endpoint when the stream ends, within staleAfterMs and the back-off", async () => {
    const [a, b] = [await hermes(), await hermes()];
    const r = run([a.url, b.url]);
    await r.stream.start();
    await until("endpoint 0 followed", () => r.on(0), 5_000);
    a.endStreams();
    await until("endpoint 1 followed", () => r.on(1), 2_000);
    expect(r.failovers()[0]).toMatchObject({
      endpointIndex: 0,
      toIndex: 1,
      reason: "stream_closed",
      to: redactUrl(b.url),
    });
    b.setPrice(ETH, 250_000_000_000n, a.feed(ETH).publishTime + 10n);
    await until("the move from endpoint 1", () => r.stream.latest(ETH)?.price === 250_000_000_000n, 5_000);
    expect(r.stream.latest(ETH)).toMatchObject({ endpoint: 1, update: b.updateData([ETH])[0] });
    a.setPrice(ETH, 1n, a.feed(ETH).publishTime + 5n); // the endpoint left is no longer heard
    b.setPrice(BTC, 2n, b.feed(BTC).publishTime + 1n);
    await until("the next move from endpoint 1", () => r.stream.latest(BTC)?.price === 2n, 5_000);
    expect(r.stream.latest(ETH)?.price).toBe(250_000_000_000n);
  });

  it("one endpoint whose stream ends after serving: followed again, prices never called stale", async () => {
    const a = await hermes();
    const r = run([a.url]);
    await r.stream.start();
    await until("the stream open", () => r.on(0), 5_000);
    a.endStreams();
    await until("the stream ended and open again", () => r.failovers().length === 1 && r.on(0), 2_000);
    expect(r.failovers()[0]).toMatchObject({ endpointIndex: 0, toIndex: 0, reason: "stream_closed" });
    a.setPrice(ETH, 7n);
    await until("a move after it", () => r.stream.latest(ETH)?.price === 7n, 5_000);
    expect(r.logs.events("prices_stale")).toEqual([]);
  });

  it("fails over from an endpoint gone silent, and never waits on a frozen one", async () => {
    const [a, b] = [await hermes(), await hermes()];
    const r = run([a.url, b.url], { staleAfterMs: 1_000 });
    await r.stream.start();
    await until("endpoint 0 followed", () => r.on(0), 5_000);
    // a price moving every 100 ms, as Hermes' do every slot: endpoint 0 is never silent while it answers
    const ticker = setInterval(() => a.setPrice(BTC, a.feed(BTC).price + 1n), 100);
    cleanup.push(() => clearInterval(ticker));
    await until("two staleAfterMs of moves", () => r.updates.length > 20, 5_000);
    expect(r.failovers()).toEqual([]);
    a.pause();
    await until("endpoint 1 followed", () => r.on(1), 1_000 + 1_000);
    expect(r.failovers()[0]).toMatchObject({ endpointIndex: 0, reason: "silent" });
    clearInterval(ticker);
    a.resume();

    a.pause(); // frozen from the start: the first request times out
    const late = run([a.url, b.url], { staleAfterMs: 1_000, fetchTimeoutMs: 500 });
    await late.stream.start();
    expect(late.stream.latest(ETH)?.endpoint).toBe(1);
    expect(late.failovers()[0]).toMatchObject({ endpointIndex: 0, reason: "fetch_failed" });
  });

  it("leaves an endpoint whose prices lag the newest seen", async () => {
    const lagging = await hermes(now() - 120n);
    const fresh = await hermes(now());
    const r = run([lagging.url, fresh.url], { maxBehindSeconds: 10, probeIntervalMs: 200 });
    await r.stream.start();
    await until("the fresh endpoint followed", () => r.on(1), 5_000);
    expect(r.failovers()[0]).toMatchObject({ endpointIndex: 0, toIndex: 1, reason: "behind" });
    expect(r.stream.latest(ETH)?.publishTime).toBe(fresh.feed(ETH).publishTime);
    lagging.setPrice(ETH, 1n, lagging.feed(ETH).publishTime + 1n); // still behind: ignored
    fresh.setPrice(BTC, 3n);
    await until("the fresh move", () => r.stream.latest(BTC)?.price === 3n, 5_000);
    expect(r.stream.latest(ETH)?.price).toBe(300_000_000_000n);
  });

  it("every endpoint down: prices_stale once, latest() still served with its age; back: prices_recovered", async () => {
    const [a, b] = [await hermes(), await hermes()];
    const r = run([a.url, b.url], { staleAfterMs: 1_000 });
    await r.stream.start();
    await until("endpoint 0 followed", () => r.on(0), 5_000);
    const last = r.stream.latest(ETH);
    await Promise.all([a.close(), b.close()]);
    await until("prices_stale", () => r.logs.events("prices_stale").length > 0, 5_000);
    const seen = r.failovers().length;
    await until("two more failovers", () => r.failovers().length >= seen + 2, 10_000);
    expect(r.logs.events("prices_stale")).toHaveLength(1);
    expect(r.logs.events("prices_stale")[0]).toMatchObject({ levelName: "error", endpoints: 2 });
    expect(r.stream.latest(ETH)).toBe(last);
    expect(performance.now() - (last?.receivedAt ?? Number.POSITIVE_INFINITY)).toBeGreaterThan(0);
    const health = r.stream.health();
    expect(health).toMatchObject({ connected: false, stale: true });
    expect(health.lastEventAgeMs).toBeGreaterThan(0);

    const back = await hermes(undefined, Number(new URL(b.url).port));
    await until("prices_recovered", () => r.logs.events("prices_recovered").length > 0, 10_000);
    expect(r.logs.events("prices_recovered")[0]).toMatchObject({ endpoint: redactUrl(b.url), endpointIndex: 1 });
    expect(r.stream.health().stale).toBe(false);
    back.setPrice(ETH, 123n, (last?.publishTime ?? 0n) + 60n);
    await until("a move after the outage", () => r.stream.latest(ETH)?.price === 123n, 5_000);
    expect(r.logs.events("prices_stale")).toHaveLength(1);
  });

  it("refuses malformed answers: garbled JSON, a non-integer price, a garbled stream", async () => {
    const good = await hermes();
    const garbled = await proxy(good.url);
    garbled.latest = (body) => body.slice(0, body.length / 2);
    const badPrice = await proxy(good.url);
    badPrice.latest = (body) => body.replace(/"price":"300000000000"/, '"price":"3000.5"');
    const badStream = await proxy(good.url);
    badStream.stream = 'data: {"binary": {"encoding": "hex", "data": [\n\n';
    const r = run([garbled.url, badPrice.url, badStream.url, good.url]);
    const prices: bigint[] = [];
    r.stream.onUpdate((moved) => prices.push(...moved.map((m) => m.price)));
    await r.stream.start();
    await until("the good endpoint followed", () => r.on(3), 10_000);
    expect(r.failovers().map((f) => [f.endpointIndex, f.reason])).toEqual([
      [0, "malformed"],
      [1, "malformed"],
      [2, "malformed"],
    ]);
    expect(r.failovers()[1]?.detail).toMatch(/^price: /);
    expect(r.failovers()[2]?.detail).toMatch(/^not_json: /);
    expect(prices.some((p) => p === 3000n || p < 0n)).toBe(false);
    expect(r.stream.latest(ETH)?.price).toBe(300_000_000_000n);
    expect(r.logs.events("prices_stale")).toEqual([]);
  });

  it("start() rejects, naming no secret, when no endpoint answers", async () => {
    const port = await deadPort();
    const r = run([`http://user:SECRET-PW@127.0.0.1:${port}/?api-key=SECRET-KEY`], { startTimeoutMs: 1_000 });
    const error = await r.stream.start().then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(error?.message).toMatch(/no Hermes endpoint served every feed within 1000 ms \(2 of 2 feeds/);
    expect(error?.message).not.toMatch(/SECRET/);
    expect(r.logs.raw.join("")).not.toMatch(/SECRET/);
    expect(r.stream.health().connected).toBe(false);
  });

  it("passes an endpoint's credentials on, and never logs them", async () => {
    const a = await hermes();
    const keyed = await proxy(a.url, {
      prefix: "/SECRET-PATH-0123",
      apiKey: "SECRET-KEY-4567",
      basic: "user:SECRET-PW",
    });
    const port = await deadPort();
    const endpoints = [
      `http://user:SECRET-PW@${new URL(keyed.url).host}/SECRET-PATH-0123/?api-key=SECRET-KEY-4567`,
      `http://127.0.0.1:${port}/SECRET-PATH-89AB?api-key=SECRET-DEAD`,
    ];
    const r = run(endpoints, { maxBehindSeconds: 10, probeIntervalMs: 100 }, "debug");
    await r.stream.start();
    await until("the keyed endpoint followed", () => r.on(0), 5_000);
    expect(keyed.requests.some((q) => q.url.includes("/v2/updates/price/stream"))).toBe(true);
    expect(keyed.requests.every((q) => q.url.includes("api-key=SECRET-KEY-4567") && q.authorization)).toBe(true);
    expect(r.stream.latest(ETH)?.update).toBe(a.updateData([ETH])[0]);

    // a provider that echoes the request in its errors; the stream ends, its next answers are errors
    keyed.fail = (req) => `refused ${req.url} for ${req.headers.authorization} at http://x:y@example.com/k?key=v`;
    a.endStreams();
    await until("a failover of the keyed endpoint", () => r.failovers().some((f) => f.endpointIndex === 0), 5_000);
    await until("prices_stale", () => r.logs.events("prices_stale").length > 0, 10_000);
    await until(
      "a probe of the keyed endpoint failed",
      () => r.logs.raw.some((l) => l.includes("probe failed") && l.includes("refused")),
      5_000,
    );
    const text = r.logs.raw.join("");
    if (process.env.SHOW_LOGS) console.log(text);
    expect(text).toContain("price_stream_failover");
    expect(text).toContain("refused");
    expect(text).not.toMatch(/SECRET|dXNlcjpTRUNSRVQtUFc|x:y@/); // nor the Basic credentials, base64
    expect(JSON.stringify(r.stream.health())).not.toMatch(/SECRET/);
  });
});
