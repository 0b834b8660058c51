/**
 * A racer's own JSON-RPC endpoint for the race benchmark: a proxy on a free loopback port in front of Anvil that
 * forwards every request and keeps each eth_sendRawTransaction it carries (batch elements one by one) with the
 * moment it arrived (performance.now()), and counts calls by method. From the raw transactions: what each racer sent
 * for, pending or replaced or mined (sentTargets), and when it first broadcast after a tick (firstSendAfter).
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { type Address, type Hex, keccak256, parseTransaction } from "viem";
import { perpEngineCompetitors } from "../../src/protocol/perpEngine/competitors.ts";
import { now } from "./tools.ts";

export interface SentRaw {
  readonly at: number;
  readonly raw: Hex;
}

export class RaceProxy {
  readonly sends: SentRaw[] = [];
  readonly byMethod = new Map<string, number>();
  url = "";
  private readonly server = createServer((req, res) => this.forward(req, res));

  private constructor(private readonly target: string) {}

  static async start(target: string): Promise<RaceProxy> {
    const proxy = new RaceProxy(target);
    await new Promise<void>((resolve, reject) => {
      proxy.server.once("error", reject);
      proxy.server.listen(0, "127.0.0.1", () => resolve());
    });
    proxy.url = `http://127.0.0.1:${(proxy.server.address() as AddressInfo).port}`;
    return proxy;
  }

  private forward(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const at = now();
      const body = Buffer.concat(chunks);
      this.record(body.toString("utf8"), at);
      fetch(this.target, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
        signal: AbortSignal.timeout(120_000),
      })
        .then(async (upstream) => {
          const answer = Buffer.from(await upstream.arrayBuffer());
          res.writeHead(upstream.status, { "content-type": "application/json", "content-length": answer.length });
          res.end(answer);
        })
        .catch((error: unknown) => {
          if (res.headersSent) return;
          res.writeHead(502, { "content-type": "text/plain" });
          res.end(String(error));
        });
    });
  }

  private record(body: string, at: number): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch {
      return;
    }
    for (const call of Array.isArray(parsed) ? parsed : [parsed]) {
      const c = call as { method?: unknown; params?: unknown[] } | null;
      const method = String(c?.method ?? "(none)");
      this.byMethod.set(method, (this.byMethod.get(method) ?? 0) + 1);
      const raw = c?.params?.[0];
      if (method === "eth_sendRawTransaction" && typeof raw === "string") this.sends.push({ at, raw: raw as Hex });
    }
  }

  /** The first eth_sendRawTransaction at or after `at` (performance.now()); undefined: none. */
  firstSendAfter(at: number): number | undefined {
    return this.sends.find((s) => s.at >= at)?.at;
  }

  /** Position keys the liquidations sent through this proxy addressed (any of them: mined, replaced or dropped). */
  sentTargets(engine: Address): { keys: Set<string>; hashes: Set<Hex> } {
    const targets = perpEngineCompetitors(engine);
    const keys = new Set<string>();
    const hashes = new Set<Hex>();
    for (const s of this.sends) {
      hashes.add(keccak256(s.raw));
      try {
        const tx = parseTransaction(s.raw);
        if (!tx.to || !tx.data) continue;
        for (const key of targets(tx.data, tx.to) ?? []) keys.add(key);
      } catch {
        // not a transaction viem reads: nothing it liquidates is known
      }
    }
    return { keys, hashes };
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
