/**
 * Counting JSON-RPC proxies on 127.0.0.1 in front of a local node, for the benchmarks: an HTTP one (HTTP requests,
 * and JSON-RPC calls with batch elements counted one by one) and a WebSocket one (client-to-server JSON-RPC
 * messages, batch elements one by one; the node's notifications and answers are forwarded, not counted). Both
 * count only between startCounting() and stopCounting(). Beside them, the bench's own newHeads subscription straight
 * to the node (HeadsSubscription): when each block was announced.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import WebSocket, { WebSocketServer } from "ws";

export interface ProxyCounts {
  /** HTTP requests (HTTP proxy) or WebSocket frames (WebSocket proxy) from the client. */
  readonly requests: number;
  /** JSON-RPC calls, batch elements one by one. */
  readonly calls: number;
  /** Requests that carried a JSON-RPC batch of more than one call. */
  readonly batches: number;
  /** Bytes answered to the client (HTTP proxy only). */
  readonly bytes: number;
  readonly byMethod: Record<string, number>;
}

class Counter {
  counting = false;
  requests = 0;
  calls = 0;
  batches = 0;
  bytes = 0;
  readonly byMethod = new Map<string, number>();

  /** Counts one request body (a JSON-RPC call or batch). */
  count(body: string): void {
    if (!this.counting) return;
    this.requests++;
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch {
      this.bump("(unparsable)");
      return;
    }
    if (Array.isArray(parsed) && parsed.length > 1) this.batches++;
    for (const call of Array.isArray(parsed) ? parsed : [parsed]) {
      this.bump(String((call as { method?: unknown } | null)?.method ?? "(none)"));
    }
  }

  private bump(method: string): void {
    this.calls++;
    this.byMethod.set(method, (this.byMethod.get(method) ?? 0) + 1);
  }

  snapshot(): ProxyCounts {
    const byMethod = Object.fromEntries([...this.byMethod.entries()].sort((a, b) => b[1] - a[1]));
    return { requests: this.requests, calls: this.calls, batches: this.batches, bytes: this.bytes, byMethod };
  }

  reset(): void {
    this.requests = 0;
    this.calls = 0;
    this.batches = 0;
    this.bytes = 0;
    this.byMethod.clear();
  }
}

/** A JSON-RPC forwarder over HTTP on a free loopback port; `onBody` sees each request (and when it came). */
export interface Forwarder {
  readonly url: string;
  close(): Promise<void>;
}

export async function startForwarder(
  target: string,
  o: {
    readonly onBody: (body: string, at: number) => void;
    /** Bytes of each answer given to the client. */
    readonly onAnswer?: (bytes: number) => void;
    readonly timeoutMs?: number;
  },
): Promise<Forwarder> {
  const forward = (req: IncomingMessage, res: ServerResponse): void => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const at = performance.now();
      const body = Buffer.concat(chunks);
      o.onBody(body.toString("utf8"), at);
      fetch(target, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
        signal: AbortSignal.timeout(o.timeoutMs ?? 300_000),
      })
        .then(async (upstream) => {
          const answer = Buffer.from(await upstream.arrayBuffer());
          o.onAnswer?.(answer.length);
          res.writeHead(upstream.status, { "content-type": "application/json", "content-length": answer.length });
          res.end(answer);
        })
        .catch((error: unknown) => {
          if (res.headersSent) return;
          res.writeHead(502, { "content-type": "text/plain" });
          res.end(String(error));
        });
    });
  };
  const server = createServer(forward);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

export class CountingHttpProxy {
  private readonly counter = new Counter();

  private constructor(private readonly forwarder: Forwarder) {}

  get url(): string {
    return this.forwarder.url;
  }

  static async start(target: string): Promise<CountingHttpProxy> {
    let proxy: CountingHttpProxy | undefined;
    const forwarder = await startForwarder(target, {
      onBody: (body) => proxy?.counter.count(body),
      onAnswer: (bytes) => {
        if (proxy?.counter.counting) proxy.counter.bytes += bytes;
      },
    });
    proxy = new CountingHttpProxy(forwarder);
    return proxy;
  }

  startCounting(): void {
    this.counter.reset();
    this.counter.counting = true;
  }

  stopCounting(): void {
    this.counter.counting = false;
  }

  snapshot(): ProxyCounts {
    return this.counter.snapshot();
  }

  close(): Promise<void> {
    return this.forwarder.close();
  }
}

export class CountingWsProxy {
  private readonly counter = new Counter();
  url = "";
  private readonly sockets = new Set<WebSocket>();

  private constructor(
    private readonly target: string,
    private readonly server: WebSocketServer,
  ) {
    server.on("connection", (client) => this.pair(client));
  }

  static async start(target: string): Promise<CountingWsProxy> {
    const server = new WebSocketServer({ host: "127.0.0.1", port: 0 });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.once("listening", () => resolve());
    });
    const proxy = new CountingWsProxy(target, server);
    proxy.url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return proxy;
  }

  /** One upstream connection per client; what the client sends before it is open waits in order. */
  private pair(client: WebSocket): void {
    const upstream = new WebSocket(this.target);
    this.sockets.add(client);
    this.sockets.add(upstream);
    const waiting: string[] = [];
    client.on("message", (data) => {
      const text = String(data);
      this.counter.count(text);
      if (upstream.readyState === WebSocket.OPEN) upstream.send(text);
      else waiting.push(text);
    });
    upstream.on("open", () => {
      for (const text of waiting.splice(0)) upstream.send(text);
    });
    upstream.on("message", (data) => {
      if (client.readyState === WebSocket.OPEN) client.send(String(data));
    });
    const closeBoth = () => {
      for (const s of [client, upstream]) {
        this.sockets.delete(s);
        if (s.readyState === WebSocket.OPEN || s.readyState === WebSocket.CONNECTING) s.terminate();
      }
    };
    client.on("close", closeBoth);
    upstream.on("close", closeBoth);
    client.on("error", closeBoth);
    upstream.on("error", closeBoth);
  }

  startCounting(): void {
    this.counter.reset();
    this.counter.counting = true;
  }

  stopCounting(): void {
    this.counter.counting = false;
  }

  snapshot(): ProxyCounts {
    return this.counter.snapshot();
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.terminate();
    this.sockets.clear();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/**
 * The bench's own newHeads subscription (straight to the node): when each block number was first announced
 * (performance.now()), and a way to wait for a block.
 */
export class HeadsSubscription {
  readonly arrivals = new Map<bigint, number>();
  latest: bigint | undefined;
  private readonly waiters = new Set<() => void>();

  private constructor(private readonly socket: WebSocket) {
    socket.on("message", (data) => {
      const at = performance.now();
      let message: { method?: string; params?: { result?: { number?: string } } };
      try {
        message = JSON.parse(String(data)) as typeof message;
      } catch {
        return;
      }
      const number = message.method === "eth_subscription" ? message.params?.result?.number : undefined;
      if (typeof number !== "string") return;
      const n = BigInt(number);
      if (!this.arrivals.has(n)) this.arrivals.set(n, at);
      this.latest = n;
      for (const wake of this.waiters) wake();
    });
  }

  static async start(wsUrl: string): Promise<HeadsSubscription> {
    const socket = new WebSocket(wsUrl);
    await new Promise<void>((resolve, reject) => {
      socket.once("open", () => resolve());
      socket.once("error", reject);
    });
    const subscription = new HeadsSubscription(socket);
    socket.send(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_subscribe", params: ["newHeads"] }));
    return subscription;
  }

  /** Resolves at the announcement of block `n` (or later); rejects after `timeoutMs`. */
  async waitFor(n: bigint, timeoutMs: number): Promise<number> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const at = this.arrivals.get(n);
      if (at !== undefined || (this.latest !== undefined && this.latest >= n)) return at ?? performance.now();
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`no newHeads announcement of block ${n} within ${Math.round(timeoutMs)} ms`);
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.waiters.delete(done);
          resolve();
        };
        const timer = setTimeout(done, left);
        this.waiters.add(done);
      });
    }
  }

  close(): void {
    this.socket.terminate();
  }
}
