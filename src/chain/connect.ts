import pino from "pino";
import {
  type Address,
  type Chain,
  createPublicClient,
  defineChain,
  fallback,
  type Hex,
  type HttpTransportConfig,
  hexToBigInt,
  http,
  type PublicClient,
  type Transport,
} from "viem";
import { ConfigError, redactUrl } from "../config/load.ts";
import type { KeeperConfig } from "../config/schema.ts";
import type { Logger } from "../ops/logger.ts";
import { MULTICALL3_ADDRESS } from "../prices/chainlink/oracle.ts";
import { isPerpEngine } from "../protocol/perpEngine/protocol.ts";
import { type Endpoint, Endpoints } from "./endpoints.ts";
import { RpcStats } from "./rpcStats.ts";

/** A ranking ping refused for an endpoint the keeper does not trust now: viem's fallback ranks it last. */
class EndpointRankedOutError extends Error {
  override name = "EndpointRankedOutError";
}

export interface Connection {
  readonly chain: Chain;
  readonly transport: Transport;
  /** Batches the calls made in one turn of the event loop into one HTTP request (JSON-RPC batch). */
  readonly publicClient: PublicClient<Transport, Chain>;
  /**
   * One HTTP request per call: for simulations, so that a quick one never waits in a batch behind slow ones (a
   * batch's answer comes back whole, when its slowest call is done).
   */
  readonly unbatchedClient: PublicClient<Transport, Chain>;
  readonly engine: Address;
  /** Backfill log ranges: unbatched, answers read whole whatever their size. */
  readonly logsClient: PublicClient<Transport, Chain>;
  /** One client per endpoint, for broadcasts (a transaction is sent to all of them). */
  readonly broadcastClients: readonly PublicClient<Transport, Chain>[];
  /** JSON-RPC calls and failures per endpoint, for the metrics. */
  readonly rpcStats: RpcStats;
  /** Each endpoint on its own, with its standing: what the watcher pins a step to, and demotes. */
  readonly endpoints: Endpoints;
  /** Multicall3, when the chain has it at the configured (or canonical) address. */
  readonly multicall3: Address | undefined;
  /**
   * Stops the endpoint ranking's pings (viem's fallback ranks on a timer it never stops): after the keeper stops,
   * nothing more is sent to any endpoint.
   */
  close(): void;
}

/** The endpoints of an RPC setting: one URL, or several separated by commas (tried in order of health). */
export function endpoints(rpcUrl: string): string[] {
  return rpcUrl
    .split(",")
    .map((u) => u.trim())
    .filter((u) => u.length > 0);
}

/**
 * One HTTP endpoint, or viem's fallback transport over several: a call goes to the best-ranked endpoint that
 * answers, and moves to the next when one fails. Endpoints are ranked every rankIntervalMs by the success of a ping
 * (weighted 0.8: one failed ping puts an endpoint behind every healthy one) and latency (0.2), over the last 3
 * pings; with `standing`, the ping fails for an endpoint that is demoted or whose head lags the others.
 */
function overEndpoints(
  urls: readonly string[],
  options: HttpTransportConfig,
  rankIntervalMs: number,
  stats: RpcStats,
  closed: () => boolean,
  standing?: Endpoints,
): Transport {
  const [only] = urls;
  if (urls.length === 1 && only) return http(only, { ...options, fetchFn: stats.fetchFor(only) });
  return fallback(
    urls.map((url) => http(url, { ...options, retryCount: 0, fetchFn: stats.fetchFor(url) })),
    {
      rank: {
        interval: rankIntervalMs,
        sampleCount: 3,
        weights: { stability: 0.8, latency: 0.2 },
        // once closed, a ping asks nothing (and counts as a success: the ranking no longer matters)
        ping: async ({ transport }) => {
          if (closed()) return;
          if (!standing) {
            await transport.request({ method: "net_listening" });
            return;
          }
          const url = String((transport.value as { url?: string } | undefined)?.url ?? "");
          if (standing.isDemoted(url)) throw new EndpointRankedOutError("demoted");
          const head = hexToBigInt((await transport.request({ method: "eth_blockNumber" })) as Hex);
          standing.reportHead(url, head);
          if (standing.isLagging(url)) throw new EndpointRankedOutError("lagging");
        },
      },
      retryCount: options.retryCount,
    },
  );
}

/**
 * Connects to the configured chain and checks it is the one the config names and that the exchange is deployed
 * there: a wrong RPC or address fails here, with a clear message, before anything is indexed or signed.
 */
export async function connect(config: KeeperConfig, rpcUrl: string, log?: Logger): Promise<Connection> {
  const closing: { close?: () => void } = {};
  try {
    return await open(config, rpcUrl, closing, log);
  } catch (error) {
    closing.close?.(); // a connection that failed its checks (retried at start) pings nothing afterwards
    throw error;
  }
}

async function open(
  config: KeeperConfig,
  rpcUrl: string,
  closing: { close?: () => void },
  log?: Logger,
): Promise<Connection> {
  const k = config.keeper;
  const chain = defineChain({
    id: config.network.chainId,
    name: config.network.name,
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: endpoints(rpcUrl) } },
  });
  const urls = endpoints(rpcUrl);
  const batched = { timeout: k.rpcTimeoutMs, retryCount: 2, batch: { wait: 0 } } as const;
  const rpcStats = new RpcStats();
  let isClosed = false;
  const closed = () => isClosed;
  const close = () => {
    isClosed = true;
  };
  closing.close = close;
  // each endpoint on its own too: the watcher pins each step to one, and judges its answers
  const single = (url: string, options: HttpTransportConfig) =>
    createPublicClient({ chain, transport: http(url, { ...options, fetchFn: rpcStats.fetchFor(url) }) });
  const own: Endpoint[] = urls.map((url) => ({
    url,
    label: redactUrl(url),
    client: single(url, batched),
    logsClient: single(url, { timeout: k.rpcTimeoutMs, retryCount: 2, batch: false, maxResponseBodySize: false }),
  }));
  const standing = new Endpoints(own, log ?? pino({ enabled: false }), BigInt(k.maxEndpointLagBlocks));
  const transport = overEndpoints(
    urls,
    batched,
    k.rpcRankIntervalMs,
    rpcStats,
    closed,
    urls.length > 1 ? standing : undefined,
  );
  const publicClient = createPublicClient({ chain, transport, pollingInterval: Math.min(k.pollIntervalMs, 500) });
  const chainId = await publicClient.getChainId();
  if (chainId !== config.network.chainId) {
    throw new ConfigError(
      `the RPC is on chain ${chainId} but config ${config.network.name} expects chain ${config.network.chainId}`,
    );
  }
  const engine = config.exchange.address as Address;
  const code = await publicClient.getCode({ address: engine });
  if (!code || code === "0x") throw new ConfigError(`no contract at exchange address ${engine} on chain ${chainId}`);
  if (config.exchange.adapter === "perp-engine" && !(await isPerpEngine(publicClient, engine))) {
    throw new ConfigError(`the contract at ${engine} does not answer as a PerpEngine: check exchange.address`);
  }
  const multicall = (config.network.multicall3Address ?? MULTICALL3_ADDRESS) as Address;
  const multicallCode = await publicClient.getCode({ address: multicall });
  const multicall3 = multicallCode && multicallCode !== "0x" ? multicall : undefined;
  const unbatchedClient = createPublicClient({
    chain,
    transport: overEndpoints(
      urls,
      { timeout: k.rpcTimeoutMs, retryCount: 2, batch: false },
      k.rpcRankIntervalMs,
      rpcStats,
      closed,
      urls.length > 1 ? standing : undefined,
    ),
  });
  // backfill ranges: one HTTP request each (a JSON-RPC batch of several would come back as one huge answer), and an
  // answer may be far larger than viem's default 10 MiB: a range's size is bounded by maxLogRange (and the node's
  // own limits) instead; without a cap viem reads the body whole, not chunk by chunk
  const logsClient = createPublicClient({
    chain,
    transport: overEndpoints(
      urls,
      { timeout: k.rpcTimeoutMs, retryCount: 2, batch: false, maxResponseBodySize: false },
      k.rpcRankIntervalMs,
      rpcStats,
      closed,
      urls.length > 1 ? standing : undefined,
    ),
  });
  // a transaction goes to every endpoint: the first that takes it is enough, and one that is down costs nothing
  const broadcastClients = urls.length === 1 ? [publicClient] : urls.map((url) => single(url, batched));
  return {
    chain,
    transport,
    publicClient,
    unbatchedClient,
    logsClient,
    broadcastClients,
    engine,
    endpoints: standing,
    multicall3,
    rpcStats,
    close,
  };
}
