/**
 * A fault-injecting JSON-RPC proxy in front of Anvil, HTTP and WebSocket on one free 127.0.0.1 port (as Anvil
 * serves both on one): everything is forwarded as it is until a test switches a fault on, and again after clear().
 *
 * HTTP faults (one at a time, for every request or only some): HTTP 429 (with Retry-After), 5xx, a 200 whose body
 * is not JSON, well-formed answers whose results are null, the node's real answer cut in half (the node did the
 * work), the connection destroyed without an answer, an answer delayed, and a frozen head (eth_blockNumber and
 * eth_getBlockByNumber("latest") answered with the block seen when the freeze began, everything else forwarded).
 * JSON-RPC batches (arrays) are read call by call. Inconsistent answers (inconsistentAnswers.ts: well-formed, prompt
 * and wrong, as a load balancer's backends at other heights or on other forks give): empty logs, a head lagging the
 * node's by N blocks, logs of another fork, transactions unknown.
 *
 * WebSocket: each client connection gets its own connection to the node, messages both ways. cut() terminates all
 * of them; faults refuse new connections (the upgrade answered 503), or drop or delay what the node sends.
 *
 * Also here: what every fault case checks with it (trackEvents, canonicalRefs/appliedRefs, bookVersusChain, msUntil)
 * and the traders who keep the exchange busy meanwhile (Traders). Always close().
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { type RawData, WebSocket, WebSocketServer } from "ws";
import { perpEngineAbi } from "../../abi/PerpEngine.ts";
import type { RunningKeeper } from "../../src/app.ts";
import type { DevExchange } from "../../src/devnet/exchange.ts";
import { positionKey } from "../../src/protocol/perpEngine/book.ts";
import { decodePerpEngineLogs } from "../../src/protocol/perpEngine/protocol.ts";
import { compareRefs, type LogRef } from "../../src/state/events.ts";
import { type InconsistentFault, inconsistentAnswer, isInconsistent, rewrites } from "./inconsistentAnswers.ts";

export type { InconsistentFault } from "./inconsistentAnswers.ts";

export type HttpFault =
  /** HTTP 429 with a JSON-RPC error body and Retry-After (seconds; default 1). */
  | { readonly kind: "429"; readonly retryAfterSeconds?: number }
  /** An HTML error page with this status (default 503), as a load balancer in front of a dead node answers. */
  | { readonly kind: "5xx"; readonly status?: number }
  /** HTTP 200, content-type application/json, a body that is not JSON. */
  | { readonly kind: "garbage" }
  /** HTTP 200, well-formed JSON-RPC: every call answered `"result": null` (as a node that lost its state might). */
  | { readonly kind: "nullResults" }
  /** Forwarded to the node; its answer comes back cut in half. */
  | { readonly kind: "truncated" }
  /** The connection destroyed without an answer. */
  | { readonly kind: "drop" }
  /** Forwarded after `ms`. */
  | { readonly kind: "delay"; readonly ms: number }
  /** The head stays at the block the node had when the fault was set; everything else is forwarded. */
  | { readonly kind: "frozenHead" }
  /** Wrong answers, well-formed and prompt: emptyLogs, laggingHead, otherForkLogs, unknownTx (inconsistentAnswers.ts). */
  | InconsistentFault;

export type WsFault =
  /** New WebSocket connections refused (the upgrade answered 503); open ones go on. */
  | { readonly kind: "wsRefuse" }
  /** What the node sends (answers and subscription notifications) is dropped. */
  | { readonly kind: "wsDrop" }
  /** What the node sends arrives `ms` late, in order. */
  | { readonly kind: "wsDelay"; readonly ms: number }
  /**
   * The connections open when it is set stay open and answer, but their subscription notifications are dropped (a
   * silent subscription); connections opened after work normally.
   */
  | { readonly kind: "wsSilence" };

export type Fault = HttpFault | WsFault;

/** Which HTTP requests a fault hits: those with a call of one of `methods` (default all), one in `every` (default 1). */
export interface FaultScope {
  readonly methods?: readonly string[];
  readonly every?: number;
}

export interface ProxyStats {
  /** HTTP requests received (a batch is one). */
  httpRequests: number;
  /** JSON-RPC calls received over HTTP (each element of a batch). */
  calls: number;
  /**
   * HTTP requests a fault hit (for frozenHead: requests with a call answered from the frozen head; for the
   * inconsistent answers: requests with a call the fault rewrote).
   */
  faulted: number;
  /** WebSocket connections accepted, and refused. */
  wsConnections: number;
  wsRefused: number;
  /** Connections terminated by cut(). */
  wsCut: number;
  /** eth_subscribe requests for new heads sent by clients (the pool watch's are not counted). */
  wsSubscribes: number;
  /** Subscription notifications (eth_subscription) delivered to clients. */
  wsNotifications: number;
  /** Messages from the node dropped, or delayed, by a fault. */
  wsDropped: number;
  wsDelayed: number;
}

export interface FaultProxy {
  /** http://127.0.0.1:port */
  readonly url: string;
  /** ws://127.0.0.1:port */
  readonly wsUrl: string;
  readonly stats: Readonly<ProxyStats>;
  /** The faults in force (HTTP and WebSocket are independent). */
  readonly faults: {
    readonly http: HttpFault | undefined;
    readonly ws: WsFault | undefined;
    /** With frozenHead, the block the head is frozen at. */
    readonly frozenAt: bigint | undefined;
  };
  /** Per JSON-RPC method, the calls received over HTTP. */
  readonly methods: ReadonlyMap<string, number>;
  /** Switches a fault on (replacing the one of its side); resolves when it is in force. */
  set(fault: Fault, scope?: FaultScope): Promise<void>;
  /** Switches every fault off: from now on everything is forwarded. */
  clear(): void;
  /** Terminates every open WebSocket connection (and its connection to the node); returns how many. */
  cut(): number;
  close(): Promise<void>;
}

interface RpcCall {
  readonly jsonrpc?: string;
  readonly id?: number | string | null;
  readonly method?: string;
  params?: unknown[];
}

const GARBAGE = '<html>\x00\x1f\x8b\ufffd}{"jsonrpc":"2.0","id":<<<not json>>>';

export async function startFaultProxy(target: string): Promise<FaultProxy> {
  const wsTarget = target.replace(/^http/, "ws");
  const stats: ProxyStats = {
    httpRequests: 0,
    calls: 0,
    faulted: 0,
    wsConnections: 0,
    wsRefused: 0,
    wsCut: 0,
    wsSubscribes: 0,
    wsNotifications: 0,
    wsDropped: 0,
    wsDelayed: 0,
  };
  const methods = new Map<string, number>();
  let http: { fault: HttpFault; scope: FaultScope; matched: number; frozen?: string } | undefined;
  let ws: WsFault | undefined;
  /** With wsSilence: connections up to this one (by order of opening) are silenced. */
  let silencedUpTo = 0;
  let closed = false;

  const forward = async (body: string): Promise<{ status: number; text: string }> => {
    const upstream = await fetch(target, { method: "POST", headers: { "content-type": "application/json" }, body });
    return { status: upstream.status, text: await upstream.text() };
  };

  /** The fault this request gets, if any (counting it against `every`). */
  const faultFor = (calls: readonly RpcCall[]): HttpFault | undefined => {
    if (!http) return undefined;
    const { fault, scope } = http;
    if (fault.kind === "frozenHead") return fault;
    // an inconsistent answer hits only the calls it rewrites (each counted when it did)
    if (isInconsistent(fault) && !calls.some((c) => rewrites(fault, c))) return undefined;
    if (scope.methods && !calls.some((c) => c.method !== undefined && scope.methods?.includes(c.method))) {
      return undefined;
    }
    http.matched++;
    return http.matched % (scope.every ?? 1) === 0 ? fault : undefined;
  };

  /** A frozen head: what the frozen block answers locally, the rest forwarded (the latest block rewritten to it). */
  const frozenAnswer = async (parsed: unknown, calls: RpcCall[], frozen: string) => {
    const local = new Map<RpcCall, unknown>();
    for (const call of calls) {
      if (call.method === "eth_blockNumber") {
        local.set(call, { jsonrpc: "2.0", id: call.id, result: frozen });
      } else if (call.method === "eth_getBlockByNumber" && ["latest", "pending"].includes(String(call.params?.[0]))) {
        call.params = [frozen, ...(call.params?.slice(1) ?? [])];
        local.set(call, undefined); // rewritten, forwarded
      }
    }
    if (local.size > 0) stats.faulted++;
    const rest = calls.filter((c) => local.get(c) === undefined);
    let answers: unknown[] = [];
    if (rest.length > 0) {
      const upstream = await forward(JSON.stringify(Array.isArray(parsed) ? rest : rest[0]));
      if (!Array.isArray(parsed)) return upstream; // one call, forwarded (perhaps rewritten)
      answers = JSON.parse(upstream.text) as unknown[];
    } else if (!Array.isArray(parsed)) {
      return { status: 200, text: JSON.stringify(local.get(calls[0] as RpcCall)) };
    }
    const byId = new Map((answers as { id?: unknown }[]).map((a) => [a.id, a]));
    const merged = calls.map((c) => local.get(c) ?? byId.get(c.id));
    return { status: 200, text: JSON.stringify(merged) };
  };

  const handleHttp = async (req: IncomingMessage, res: ServerResponse, body: string) => {
    stats.httpRequests++;
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch {
      parsed = undefined;
    }
    const calls = (Array.isArray(parsed) ? parsed : parsed === undefined ? [] : [parsed]) as RpcCall[];
    stats.calls += calls.length;
    for (const c of calls) methods.set(String(c.method), (methods.get(String(c.method)) ?? 0) + 1);
    const fault = faultFor(calls);
    const json = { "content-type": "application/json" };
    if (!fault) {
      const { status, text } = await forward(body);
      res.writeHead(status, json).end(text);
      return;
    }
    if (fault.kind !== "frozenHead" && !isInconsistent(fault)) stats.faulted++;
    switch (fault.kind) {
      case "429":
        res
          .writeHead(429, { ...json, "retry-after": String(fault.retryAfterSeconds ?? 1) })
          .end(JSON.stringify({ jsonrpc: "2.0", id: null, error: { code: -32005, message: "rate limit exceeded" } }));
        return;
      case "5xx": {
        const status = fault.status ?? 503;
        res.writeHead(status, { "content-type": "text/html" }).end(`<html><body><h1>${status}</h1></body></html>`);
        return;
      }
      case "garbage":
        res.writeHead(200, json).end(GARBAGE);
        return;
      case "nullResults": {
        const answers = calls.map((c) => ({ jsonrpc: "2.0", id: c.id ?? null, result: null }));
        res.writeHead(200, json).end(JSON.stringify(Array.isArray(parsed) ? answers : answers[0]));
        return;
      }
      case "truncated": {
        const { text } = await forward(body);
        res.writeHead(200, json).end(text.slice(0, Math.floor(text.length / 2)));
        return;
      }
      case "drop":
        req.socket.destroy();
        return;
      case "delay": {
        await new Promise((r) => setTimeout(r, fault.ms));
        if (closed) {
          req.socket.destroy();
          return;
        }
        const { status, text } = await forward(body);
        res.writeHead(status, json).end(text);
        return;
      }
      case "frozenHead": {
        const frozen = http?.frozen as string;
        const { status, text } = await frozenAnswer(parsed, calls, frozen);
        res.writeHead(status, json).end(text);
        return;
      }
      case "emptyLogs":
      case "laggingHead":
      case "otherForkLogs":
      case "unknownTx": {
        const { status, text, hit } = await inconsistentAnswer(fault, parsed, calls, forward);
        if (hit) stats.faulted++;
        res.writeHead(status, json).end(text);
        return;
      }
    }
  };

  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => {
      body += c.toString();
    });
    req.on("end", () => {
      handleHttp(req, res, body).catch(() => {
        // the node is gone (the test is ending) or the client left: answer as a dead gateway would
        if (!res.headersSent) res.writeHead(502).end();
        else res.destroy();
      });
    });
  });

  // WebSocket: one node connection per client connection
  const wss = new WebSocketServer({ noServer: true });
  const pairs = new Set<{ client: WebSocket; node: WebSocket }>();
  const countClientMessage = (data: RawData) => {
    try {
      const parsed = JSON.parse(data.toString()) as RpcCall | RpcCall[];
      // head subscriptions only: the pool watch's (newPendingTransactions) comes and goes on its own connection
      for (const m of Array.isArray(parsed) ? parsed : [parsed]) {
        if (m.method === "eth_subscribe" && (m.params as unknown[] | undefined)?.[0] === "newHeads")
          stats.wsSubscribes++;
      }
    } catch {
      // not JSON: forwarded as it is
    }
  };
  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (ws?.kind === "wsRefuse" || closed) {
      stats.wsRefused++;
      socket.end("HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
      socket.destroy();
      return;
    }
    wss.handleUpgrade(req, socket, head, (client) => {
      stats.wsConnections++;
      const connection = stats.wsConnections;
      const node = new WebSocket(wsTarget);
      const pair = { client, node };
      pairs.add(pair);
      const waiting: { data: RawData; isBinary: boolean }[] = [];
      let delivery = Promise.resolve();
      const end = () => {
        pairs.delete(pair);
        client.terminate();
        node.terminate();
      };
      node.on("open", () => {
        for (const m of waiting.splice(0)) node.send(m.data, { binary: m.isBinary });
      });
      client.on("message", (data, isBinary) => {
        countClientMessage(data);
        if (node.readyState === WebSocket.OPEN) node.send(data, { binary: isBinary });
        else waiting.push({ data, isBinary });
      });
      node.on("message", (data, isBinary) => {
        const fault = ws;
        if (fault?.kind === "wsDrop") {
          stats.wsDropped++;
          return;
        }
        if (
          fault?.kind === "wsSilence" &&
          connection <= silencedUpTo &&
          data.toString().includes('"eth_subscription"')
        ) {
          stats.wsDropped++;
          return;
        }
        const due = Date.now() + (fault?.kind === "wsDelay" ? fault.ms : 0);
        if (fault?.kind === "wsDelay") stats.wsDelayed++;
        // in order: a message never overtakes one delayed before it
        delivery = delivery.then(async () => {
          const wait = due - Date.now();
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
          if (client.readyState !== WebSocket.OPEN) return;
          if (data.toString().includes('"eth_subscription"')) stats.wsNotifications++;
          client.send(data, { binary: isBinary });
        });
      });
      client.on("close", end);
      node.on("close", end);
      client.on("error", end);
      node.on("error", end);
    });
  });

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;

  return {
    url: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}`,
    stats,
    methods,
    get faults() {
      return { http: http?.fault, ws, frozenAt: http?.frozen === undefined ? undefined : BigInt(http.frozen) };
    },
    async set(fault, scope = {}) {
      if (
        fault.kind === "wsRefuse" ||
        fault.kind === "wsDrop" ||
        fault.kind === "wsDelay" ||
        fault.kind === "wsSilence"
      ) {
        ws = fault;
        silencedUpTo = stats.wsConnections;
        return;
      }
      if (fault.kind === "frozenHead") {
        const { text } = await forward(
          JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_blockNumber", params: [] }),
        );
        http = { fault, scope, matched: 0, frozen: (JSON.parse(text) as { result: string }).result };
        return;
      }
      http = { fault, scope, matched: 0 };
    },
    clear() {
      http = undefined;
      ws = undefined;
    },
    cut() {
      const n = pairs.size;
      for (const pair of [...pairs]) {
        pairs.delete(pair);
        pair.client.terminate();
        pair.node.terminate();
      }
      stats.wsCut += n;
      return n;
    },
    async close() {
      closed = true;
      for (const pair of pairs) {
        pair.client.terminate();
        pair.node.terminate();
      }
      pairs.clear();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// What every fault case checks

/** Every event the keeper was handed, net of what a reorganisation took back. */
export interface EventTrail {
  /** The events applied, in order; a rollback removes those above its cursor, a reset all. */
  readonly applied: LogRef[];
  /** Events handed to the keeper at or before one already applied: a duplicate (the book would have ignored it). */
  readonly replays: { readonly ref: LogRef; readonly after: LogRef }[];
  /** Position changes (opened, changed, closed, liquidated) applied. */
  positionChanges: number;
  rollbacks: number;
  resets: number;
}

/**
 * Wraps the keeper's handleEvent, rollback and reset (the watcher calls them through the Keeper instance) to keep
 * its EventTrail. Call it before the first event is applied (right after startKeeper: the backfill needs a round
 * trip first).
 */
export function trackEvents(k: RunningKeeper): EventTrail {
  if (k.book.cursor !== undefined) throw new Error("trackEvents: events were applied before it was called");
  const trail: EventTrail = { applied: [], replays: [], positionChanges: 0, rollbacks: 0, resets: 0 };
  const keeper = k.keeper;
  const handle = keeper.handleEvent.bind(keeper);
  const rollback = keeper.rollback.bind(keeper);
  const reset = keeper.reset.bind(keeper);
  keeper.handleEvent = (event, live) => {
    const last = trail.applied.at(-1);
    if (last && compareRefs(event.ref, last) <= 0) trail.replays.push({ ref: event.ref, after: last });
    const change = handle(event, live);
    if (change && !(last && compareRefs(event.ref, last) <= 0)) {
      trail.applied.push(event.ref);
      if (change.type === "position") trail.positionChanges++;
    }
    return change;
  };
  keeper.rollback = (changes, cursor) => {
    trail.rollbacks++;
    for (let top = trail.applied.at(-1); top && (!cursor || compareRefs(top, cursor) > 0); top = trail.applied.at(-1)) {
      trail.applied.pop();
    }
    rollback(changes, cursor);
  };
  keeper.reset = () => {
    trail.resets++;
    trail.applied.length = 0;
    reset();
  };
  return trail;
}

const refId = (r: LogRef) => `${r.blockNumber}:${r.logIndex}:${r.blockHash}`;

/**
 * The exchange's events on the chain up to `toBlock`, in order, as `block:logIndex:blockHash`: what appliedRefs must
 * equal (none missed, none applied twice).
 */
export async function canonicalRefs(ex: DevExchange, toBlock: bigint): Promise<string[]> {
  const raw = await ex.publicClient.getLogs({ address: ex.d.engine, fromBlock: ex.d.deployBlock, toBlock });
  return decodePerpEngineLogs(raw).map((e) => refId(e.ref));
}

/** The events the keeper applied up to `toBlock`, in order, as canonicalRefs names them. */
export function appliedRefs(trail: EventTrail, toBlock: bigint): string[] {
  return trail.applied.filter((r) => r.blockNumber <= toBlock).map(refId);
}

/**
 * The keeper's book against PerpEngine.getPosition for every (trader, market) the test used: each open position
 * field by field, and no other key in the book. Returns the keys open on chain.
 */
export async function bookVersusChain(
  k: RunningKeeper,
  ex: DevExchange,
  traders: readonly number[],
  markets: readonly number[],
): Promise<{ mismatches: string[]; openOnChain: string[] }> {
  const mismatches: string[] = [];
  const openOnChain: string[] = [];
  for (const t of traders) {
    const trader = ex.trader(t).account.address;
    for (const m of markets) {
      const key = positionKey(m, trader);
      const chain = await ex.position(trader, m);
      const ours = k.book.positions.get(key);
      if (chain.size === 0n) {
        if (ours) mismatches.push(`${key}: closed on chain, open in the book`);
        continue;
      }
      openOnChain.push(key);
      const want = {
        size: chain.size,
        openNotional: chain.openNotional,
        margin: chain.margin,
        lastFundingIndex: chain.lastFundingIndex,
      };
      const got = ours && {
        size: ours.size,
        openNotional: ours.openNotional,
        margin: ours.margin,
        lastFundingIndex: ours.lastFundingIndex,
      };
      if (!got) mismatches.push(`${key}: open on chain, missing from the book`);
      else if (JSON.stringify(got, big) !== JSON.stringify(want, big)) {
        mismatches.push(`${key}: book ${JSON.stringify(got, big)} != chain ${JSON.stringify(want, big)}`);
      }
    }
  }
  for (const key of k.book.positions.keys()) {
    if (!openOnChain.includes(key)) mismatches.push(`${key}: in the book, not open on chain`);
  }
  return { mismatches, openOnChain };
}

const big = (_: string, v: unknown) => (typeof v === "bigint" ? v.toString() : v);

/** Milliseconds until `check` holds, polled every 10 ms; throws naming `what` after `timeoutMs`. */
export async function msUntil(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  from = performance.now(),
): Promise<number> {
  const deadline = from + timeoutMs;
  for (;;) {
    if (await check()) return Math.round(performance.now() - from);
    if (performance.now() > deadline) throw new Error(`timed out waiting ${timeoutMs} ms for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Devnet traders who keep the exchange busy: each act() opens a position if the trader has none, else adds margin,
 * halves it or closes it, in turn. Trader t trades BTC when odd, ETH when even; long or short by t % 4.
 */
export class Traders {
  private readonly steps = new Map<number, number>();
  private turn = 0;

  constructor(
    readonly ex: DevExchange,
    readonly traders: readonly number[],
  ) {}

  marketOf(trader: number): number {
    return trader % 2 ? 0 : 1;
  }

  /** Mints each trader plenty of collateral and approves the engine for it. */
  async fund(): Promise<void> {
    await Promise.all(this.traders.map((t) => this.ex.fund(this.ex.trader(t), 1_000_000n * 10n ** 6n)));
  }

  /** One action of `trader`; resolves with the block it was mined in. */
  async act(trader: number): Promise<bigint> {
    const { ex } = this;
    const wallet = ex.trader(trader);
    const market = this.marketOf(trader);
    const open = await ex.position(wallet.account.address, market);
    let hash: `0x${string}`;
    if (open.size === 0n) {
      // about 4x: 0.02 BTC at 60,000 or 0.5 ETH at 2,500 on 300 collateral
      const size = market === 0 ? 2n * 10n ** 16n : 5n * 10n ** 17n;
      hash = await ex.trade(wallet, market, trader % 4 < 2 ? size : -size, 300n * 10n ** 6n);
    } else {
      const step = this.steps.get(trader) ?? 0;
      this.steps.set(trader, step + 1);
      if (step % 3 === 0) {
        hash = await ex.send(wallet, {
          address: ex.d.engine,
          abi: perpEngineAbi,
          functionName: "addMargin",
          args: [BigInt(market), 50n * 10n ** 6n],
        });
      } else {
        hash = await ex.trade(wallet, market, step % 3 === 1 ? -open.size / 2n : -open.size, 0n);
      }
    }
    return (await ex.publicClient.getTransactionReceipt({ hash })).blockNumber;
  }

  /** The next `n` traders in turn act at once; resolves with the blocks their actions were mined in. */
  async next(n: number): Promise<bigint[]> {
    const chosen = Array.from({ length: n }, () => this.traders[this.turn++ % this.traders.length] as number);
    return Promise.all(chosen.map((t) => this.act(t)));
  }
}
