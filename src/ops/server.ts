/**
 * The keeper's operations endpoint: GET /metrics (Prometheus text), /healthz (200, or 503 with the reasons, as
 * JSON) and /readyz (503 until the backfill completed). Bound to loopback by default; it serves figures only,
 * never a key.
 */

import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";
import { describeError } from "../chain/errors.ts";
import { fromWad } from "./decimals.ts";
import type { Logger } from "./logger.ts";
import { type OpsSources, reading } from "./metrics.ts";

export interface HealthOptions {
  /** No head processed for longer than this (seconds) is unhealthy, once the backfill completed. */
  readonly maxHeadAgeSeconds: number;
  /** A transaction unresolved for more than this many blocks wedges the executor. */
  readonly maxPendingBlocks: bigint;
}

export interface Health {
  readonly healthy: boolean;
  readonly reasons: readonly string[];
  readonly headBlock: string;
  readonly processedBlock: string;
  readonly headAgeSeconds: number;
  readonly backfilled: boolean;
  readonly pendingTransactions: number;
  /** The shared freshness rule's state (current, quiet, behind, no_answer), once backfilled. */
  readonly chain?: string;
  /** The freshest head any endpoint reported. */
  readonly reportedHead?: string;
}

/**
 * Healthy unless the keeper is behind what the endpoints report, or cannot tell (src/ops/freshness.ts; judged once
 * the backfill completed: a long backfill is /readyz's business; without that rule: no new head processed within
 * maxHeadAgeSeconds), or a transaction of ours has been unresolved for more than maxPendingBlocks.
 */
export function health(s: OpsSources, o: HealthOptions): Health {
  const r = reading(s);
  const reasons: string[] = [];
  const fresh = r.backfilled ? s.freshness?.() : undefined;
  if (fresh) {
    // the shared rule (src/ops/freshness.ts): a quiet chain with the keeper at its head is healthy
    if (!fresh.healthy && fresh.reason) reasons.push(fresh.reason);
  } else if (r.backfilled && !s.freshness && r.headAgeSeconds > o.maxHeadAgeSeconds) {
    reasons.push(
      `no new head processed for ${Math.round(r.headAgeSeconds)} s (limit ${o.maxHeadAgeSeconds} s; last ` +
        `block ${r.processedBlock})`,
    );
  }
  const pending = s.executor.pendingAttempts;
  const head = s.watcher.latestTick?.blockNumber;
  if (head !== undefined) {
    const wedged = pending.filter((a) => head - a.createdAtBlock > o.maxPendingBlocks);
    if (wedged.length > 0) {
      const oldest = wedged.reduce((x, a) => (a.createdAtBlock < x ? a.createdAtBlock : x), head);
      reasons.push(
        `executor wedged: ${wedged.length} transaction(s) unresolved for more than ${o.maxPendingBlocks} blocks ` +
          `(oldest from block ${oldest}, head ${head})`,
      );
    }
  }
  return {
    healthy: reasons.length === 0,
    reasons,
    headBlock: r.headBlock.toString(),
    processedBlock: r.processedBlock.toString(),
    headAgeSeconds: Math.round(r.headAgeSeconds * 10) / 10,
    backfilled: r.backfilled,
    pendingTransactions: pending.length,
    ...(fresh ? { chain: fresh.state, reportedHead: fresh.reportedHead?.toString() } : {}),
  };
}

export interface OpsServer {
  /** http://host:port */
  readonly url: string;
  close(): Promise<void>;
}

export interface OpsServerOptions {
  readonly host: string;
  /** 0: a free port. */
  readonly port: number;
  readonly registry: Registry;
  readonly sources: OpsSources;
  readonly health: HealthOptions;
  readonly log: Logger;
}

function json(status: number, body: unknown): { status: number; type: string; body: string } {
  return { status, type: "application/json; charset=utf-8", body: `${JSON.stringify(body)}\n` };
}

/** Starts listening; rejects when the address cannot be bound (in use, not local). */
export async function startOpsServer(o: OpsServerOptions): Promise<OpsServer> {
  const route = async (path: string): Promise<{ status: number; type: string; body: string }> => {
    switch (path) {
      case "/metrics":
        return { status: 200, type: o.registry.contentType, body: await o.registry.metrics() };
      case "/healthz": {
        const h = health(o.sources, o.health);
        return json(h.healthy ? 200 : 503, { status: h.healthy ? "ok" : "unhealthy", ...h });
      }
      case "/readyz": {
        const ready = o.sources.backfilled();
        return json(ready ? 200 : 503, {
          status: ready ? "ready" : "not ready",
          ...(ready ? {} : { reasons: ["the backfill has not completed"] }),
          processedBlock: o.sources.watcher.processedBlock.toString(),
          backfillTarget: o.sources.startHead.toString(),
        });
      }
      case "/status": {
        // the running keeper at a glance: its head, what it did, and its last races for contested positions
        const r = reading(o.sources);
        const stats = o.sources.executor.stats;
        const net = o.sources.executor.netProfit?.();
        return json(200, {
          headBlock: r.headBlock.toString(),
          processedBlock: r.processedBlock.toString(),
          backfilled: r.backfilled,
          liquidations: JSON.parse(JSON.stringify(stats, (_k, v) => (typeof v === "bigint" ? v.toString() : v))),
          netProfit: net === undefined ? undefined : fromWad(net).toString(),
          races: {
            byCompetitor: Object.fromEntries(o.sources.executor.races?.byCompetitor ?? []),
            recent: o.sources.executor.races?.recent ?? [],
          },
        });
      }
      default:
        return json(404, { error: "not found", paths: ["/metrics", "/healthz", "/readyz", "/status"] });
    }
  };
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0] as string;
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" }).end();
      return;
    }
    route(path).then(
      (r) => {
        res.writeHead(r.status, { "content-type": r.type, "cache-control": "no-store" });
        res.end(req.method === "HEAD" ? undefined : r.body);
      },
      (error: unknown) => {
        o.log.warn({ event: "metrics_server_error", path, error: describeError(error) }, "ops endpoint failed");
        res.writeHead(500, { "content-type": "text/plain" }).end("internal error\n");
      },
    );
  });
  // scrapes are short: no idle keep-alive connection holds the process (or a stop) up
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve, reject) => {
    const failed = (error: Error) => reject(error);
    server.once("error", failed);
    server.listen(o.port, o.host, () => {
      server.off("error", failed);
      resolve();
    });
  });
  server.unref(); // the keeper's own work holds the process; stop() closes the server
  server.on("error", (error) => {
    o.log.warn({ event: "metrics_server_error", error: describeError(error) }, "ops endpoint failed");
  });
  const address = server.address() as AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  return {
    url: `http://${host}:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
