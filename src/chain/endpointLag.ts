/**
 * Which RPC endpoints lag: the ping viem's fallback transport ranks endpoints by. Each ping reads the endpoint's
 * head; one more than `maxLagBlocks` behind the best head any endpoint reported within the window fails its ping,
 * which ranks it behind every endpoint in step (it is used only when they all fail), until it catches up. Said once
 * each way (rpc_endpoint_lagging, rpc_endpoint_caught_up), with the endpoint redacted.
 */
import { hexToBigInt, type Transport } from "viem";
import { redactUrl } from "../config/load.ts";
import { big, type Logger } from "../ops/logger.ts";

export class EndpointLaggingError extends Error {
  override name = "EndpointLaggingError";
}

export class EndpointLag {
  private readonly heads = new Map<string, { readonly head: bigint; readonly at: number }>();
  private readonly lagging = new Set<string>();

  constructor(
    private readonly maxLagBlocks: bigint,
    /** How recent another endpoint's head must be to count as the best (a ranking interval and a ping timeout). */
    private readonly windowMs: number,
    private readonly log: Logger,
  ) {}

  /** Whether an endpoint is currently ranked out for lagging. */
  isLagging(url: string): boolean {
    return this.lagging.has(url);
  }

  /** The fallback transport's ping: throws for an endpoint that lags. */
  async ping(transport: ReturnType<Transport>): Promise<void> {
    const url = String((transport.value as { url?: string } | undefined)?.url ?? "");
    const head = hexToBigInt((await transport.request({ method: "eth_blockNumber" })) as `0x${string}`);
    this.check(url, head, Date.now());
  }

  /** Records an endpoint's head and throws when it lags the best recent one by more than the limit. */
  check(url: string, head: bigint, now: number): void {
    this.heads.set(url, { head, at: now });
    let best = head;
    for (const h of this.heads.values()) if (now - h.at <= this.windowMs && h.head > best) best = h.head;
    const lag = best - head;
    if (lag > this.maxLagBlocks) {
      if (!this.lagging.has(url)) {
        this.lagging.add(url);
        this.log.warn(
          {
            event: "rpc_endpoint_lagging",
            endpoint: redactUrl(url),
            head: big(head),
            bestHead: big(best),
            lagBlocks: big(lag),
          },
          `RPC endpoint ${redactUrl(url)} is ${lag} blocks behind the others: skipped until it catches up`,
        );
      }
      throw new EndpointLaggingError(`${redactUrl(url)} is ${lag} blocks behind`);
    }
    if (this.lagging.delete(url)) {
      this.log.info(
        { event: "rpc_endpoint_caught_up", endpoint: redactUrl(url), head: big(head) },
        `RPC endpoint ${redactUrl(url)} caught up`,
      );
    }
  }
}
