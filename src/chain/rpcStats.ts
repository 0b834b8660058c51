/**
 * Counts of the keeper's JSON-RPC traffic per endpoint (redacted) and method, and of failed HTTP exchanges per
 * endpoint and kind, for the metrics. Taken at the fetch under viem's HTTP transports: a JSON-RPC batch counts each
 * of its calls; an answer that is not 2xx, a timeout or a network failure counts as an error.
 */
import { redactUrl } from "../config/load.ts";

export type RpcErrorKind = "timeout" | "network" | `http_${number}`;

export class RpcStats {
  /** `${endpoint} ${method}` -> calls. */
  readonly calls = new Map<string, { endpoint: string; method: string; count: number }>();
  /** `${endpoint} ${kind}` -> failures. */
  readonly errors = new Map<string, { endpoint: string; kind: RpcErrorKind; count: number }>();

  call(endpoint: string, method: string): void {
    const key = `${endpoint} ${method}`;
    const row = this.calls.get(key);
    if (row) row.count++;
    else this.calls.set(key, { endpoint, method, count: 1 });
  }

  error(endpoint: string, kind: RpcErrorKind): void {
    const key = `${endpoint} ${kind}`;
    const row = this.errors.get(key);
    if (row) row.count++;
    else this.errors.set(key, { endpoint, kind, count: 1 });
  }

  /** A fetch for viem's http transport (its fetchFn) that counts what goes through it to `url`. */
  fetchFor(url: string): typeof fetch {
    const endpoint = redactUrl(url);
    return async (input, init) => {
      for (const method of methodsOf(init?.body)) this.call(endpoint, method);
      try {
        const response = await fetch(input, init);
        if (!response.ok) this.error(endpoint, `http_${response.status}`);
        return response;
      } catch (error) {
        const name = (error as Error).name;
        this.error(endpoint, name === "TimeoutError" || name === "AbortError" ? "timeout" : "network");
        throw error;
      }
    };
  }
}

/** The JSON-RPC methods of a request body (one call, or a batch). */
function methodsOf(body: unknown): string[] {
  if (typeof body !== "string") return ["unknown"];
  try {
    const parsed = JSON.parse(body) as { method?: unknown } | { method?: unknown }[];
    const calls = Array.isArray(parsed) ? parsed : [parsed];
    return calls.map((c) => (typeof c.method === "string" ? c.method : "unknown"));
  } catch {
    return ["unknown"];
  }
}
