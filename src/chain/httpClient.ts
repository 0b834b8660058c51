/**
 * A viem PublicClient over HTTP, typed as the plain `PublicClient` once, here. The client type viem infers from each
 * call's own options is otherwise checked against `PublicClient` where it is assigned, which costs the type checker
 * about a second per call site (measured with `tsc --generateTrace`).
 */
import { type Chain, createPublicClient, type HttpTransportConfig, http, type PublicClient } from "viem";

export interface HttpClientOptions {
  readonly chain?: Chain;
  readonly pollingInterval?: number;
}

export function httpPublicClient(
  url: string,
  transport: HttpTransportConfig = {},
  options: HttpClientOptions = {},
): PublicClient {
  return createPublicClient({ ...options, transport: http(url, transport) }) as unknown as PublicClient;
}
