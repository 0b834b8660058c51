/**
 * One Hermes endpoint as the price stream uses it: an official HermesClient on the URL's base (scheme, host, path),
 * its credentials passed on (user info as HTTP Basic authorization; query parameters added to every request, which
 * HermesClient itself would drop), its name in log lines (redactUrl: scheme and host), and a scrubber that takes the
 * URL's secrets out of any error text before it is logged.
 */
import { HermesClient } from "@pythnetwork/hermes-client";
import type { Hex } from "viem";
import { ConfigError, redactUrl, redactUrls } from "../../config/load.ts";

export type PriceEventSource = Awaited<ReturnType<HermesClient["getPriceUpdatesStream"]>>;
type RequestOptions = Parameters<HermesClient["getLatestPriceUpdates"]>[1];

export interface Endpoint {
  readonly index: number;
  /** redactUrl of it: what log lines and health() show. */
  readonly label: string;
  readonly client: HermesClient;
  /** parsed=true and the URL's own query parameters. */
  readonly options: RequestOptions;
  /** An error text without the URL's secrets. */
  readonly scrub: (text: string) => string;
  /** Newest publish time it served, per feed. */
  readonly newest: Map<Hex, bigint>;
  /** Its last answer (stream, fetch or probe) succeeded; undefined before any. */
  up: boolean | undefined;
  probing: boolean;
}

/** Query parameters HermesClient sets itself: an endpoint URL may not carry them. */
const HERMES_PARAMS = new Set(["ids[]", "parsed", "encoding", "ignore_invalid_price_ids", "allow_unordered"]);

export function endpointOf(url: string, index: number, timeout: number): Endpoint {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ConfigError(`Hermes endpoint ${index} is not a URL`);
  }
  const label = redactUrl(url);
  if (u.protocol !== "http:" && u.protocol !== "https:") {
    throw new ConfigError(`Hermes endpoint ${index} (${label}) must be http(s)`);
  }
  const headers: Record<string, string> = {};
  const user = decoded(u.username);
  const password = decoded(u.password);
  const basic = user || password ? Buffer.from(`${user}:${password}`).toString("base64") : "";
  if (basic) headers.Authorization = `Basic ${basic}`;
  const params: Record<string, string> = {};
  for (const [key, value] of u.searchParams) {
    // HermesClient writes option names in snake case: an upper-case letter would be renamed
    if (/[A-Z]/.test(key) || HERMES_PARAMS.has(key) || key in params) {
      throw new ConfigError(`Hermes endpoint ${index} (${label}): query parameter "${key}" cannot be passed on`);
    }
    params[key] = value;
  }
  // as written, decoded and encoded: an error text may echo the request in any of these forms
  const secrets = [url, u.search, u.username, u.password, user, password, basic];
  for (const value of Object.values(params)) {
    secrets.push(value, encodeURIComponent(value), new URLSearchParams({ v: value }).toString().slice(2));
  }
  if (u.pathname.length > 1) secrets.push(u.pathname, ...u.pathname.split("/").filter((s) => s.length >= 6));
  const hidden = [...new Set(secrets.filter((s) => s.length >= 3))].sort((a, b) => b.length - a.length);
  return {
    index,
    label,
    client: new HermesClient(`${u.origin}${u.pathname}`, { timeout, httpRetries: 0, headers }),
    options: { parsed: true, ...params } as RequestOptions,
    scrub: (text) => redactUrls(hidden.reduce((t, s) => t.split(s).join("…"), text)).slice(0, 300),
    newest: new Map(),
    up: undefined,
    probing: false,
  };
}

function decoded(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** JSON that does not parse, or that HermesClient's own schema refuses. */
export const malformed = (error: unknown): boolean =>
  error instanceof SyntaxError || (error instanceof Error && error.name === "ZodError");

export const describe = (error: unknown): string =>
  error instanceof Error
    ? `${error.message}${error.cause instanceof Error ? `: ${error.cause.message}` : ""}`
    : typeof error === "object" && error !== null && "message" in error
      ? String((error as { message?: unknown }).message ?? "no message")
      : String(error);
