/**
 * A racer's own JSON-RPC endpoint for the race benchmark: a proxy on a free loopback port in front of Anvil that
 * forwards every request and keeps each eth_sendRawTransaction it carries (batch elements one by one) with the
 * moment it arrived (performance.now()), and counts calls by method. From the raw transactions: what each racer sent
 * for, pending or replaced or mined (sentTargets), and when it first broadcast after a tick (firstSendAfter).
 */
import { type Address, type Hex, keccak256, parseTransaction } from "viem";
import { perpEngineCompetitors } from "../../src/protocol/perpEngine/competitors.ts";
import { type Forwarder, startForwarder } from "./countingProxies.ts";

export interface SentRaw {
  readonly at: number;
  readonly raw: Hex;
}

export class RaceProxy {
  readonly sends: SentRaw[] = [];
  readonly byMethod = new Map<string, number>();

  private constructor(private readonly forwarder: Forwarder) {}

  get url(): string {
    return this.forwarder.url;
  }

  static async start(target: string): Promise<RaceProxy> {
    let proxy: RaceProxy | undefined;
    const forwarder = await startForwarder(target, {
      onBody: (body, at) => proxy?.record(body, at),
      timeoutMs: 120_000,
    });
    proxy = new RaceProxy(forwarder);
    return proxy;
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

  close(): Promise<void> {
    return this.forwarder.close();
  }
}
