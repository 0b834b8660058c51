import { formatBlock, type RpcBlock, webSocket } from "viem";
import type { Connection } from "../chain/connect.ts";
import { describeError } from "../chain/errors.ts";
import { redactUrl } from "../config/load.ts";
import type { KeeperConfig } from "../config/schema.ts";
import { backoffMs } from "../ops/backoff.ts";
import type { Logger } from "../ops/logger.ts";
import { decodePerpEngineLogs } from "../protocol/perpEngine.ts";
import type { Book } from "../state/book.ts";
import { type Head, Watcher, type WatcherOptions } from "./watcher.ts";

/** A watcher of the configured exchange, from its deployment block, with the adapter's decoder. */
export function watchExchange(
  config: KeeperConfig,
  connection: Connection,
  book: Book,
  log: Logger,
  handlers: Pick<WatcherOptions, "onEvent" | "onTick" | "onReorg" | "onRollback" | "onRestore">,
): Watcher {
  return new Watcher({
    client: connection.publicClient,
    address: connection.engine,
    fromBlock: BigInt(config.exchange.deployBlock),
    book,
    log,
    decode: decodePerpEngineLogs,
    maxLogRange: BigInt(config.keeper.maxLogRange),
    pollIntervalMs: config.keeper.pollIntervalMs,
    reorgDepth: BigInt(config.keeper.reorgDepth),
    logConcurrency: config.keeper.logConcurrency,
    subscribeHeads: config.network.wsUrl === undefined ? undefined : headSubscription(config.network.wsUrl, log),
    multicall3: connection.multicall3,
    logsClient: connection.logsClient,
    headStallMs: config.keeper.headStallSeconds === undefined ? undefined : config.keeper.headStallSeconds * 1000,
    ...handlers,
  });
}

/**
 * New heads over WebSocket (eth_subscribe newHeads): each one wakes the watcher at once with its header, so that
 * following a head costs no request for the head itself. A connection that closes or fails is dropped and a new one
 * subscribed, with the keeper's back-off (jittered, at most 5 s), as long as it takes: viem's own reconnection gives
 * up after one failed attempt. One that stays open but goes silent while blocks come (the watcher's fallback poll
 * finds heads it never announced) is renewed the same way. Whatever the subscription missed, the watcher fills from the last block it
 * processed (and polls every 5 s meanwhile). A notification without a usable header is ignored.
 */
function headSubscription(wsUrl: string, log: Logger): NonNullable<WatcherOptions["subscribeHeads"]> {
  return (onHead) => {
    let stopped = false;
    let failures = 0;
    let current: ReturnType<ReturnType<typeof webSocket>> | undefined;
    let retryTimer: ReturnType<typeof setTimeout> | undefined;
    const endpoint = redactUrl(wsUrl);
    const close = (transport: typeof current) => {
      void transport?.value
        ?.getRpcClient()
        .then((rpc) => rpc.close())
        .catch(() => {});
    };
    const failed = (transport: typeof current, error: unknown) => {
      if (stopped || transport !== current) return; // an old connection's last words
      failures++;
      const retryInMs = backoffMs(failures, 500);
      log.warn(
        { event: "rpc_error", step: "subscribe", endpoint, attempt: failures, retryInMs, error: describeError(error) },
        "head subscription lost; polling covers it while it reconnects",
      );
      current = undefined;
      close(transport);
      retryTimer = setTimeout(connect, retryInMs);
    };
    const connect = () => {
      retryTimer = undefined;
      if (stopped) return;
      // no keep-alive ping: liveness is judged by what matters, announcements (see HeadSubscription.renew)
      const transport = webSocket(wsUrl, { reconnect: false, keepAlive: false })({});
      current = transport;
      const subscribing = transport.value?.subscribe({
        params: ["newHeads"],
        onData: (data: { result?: RpcBlock }) => {
          const head = data.result && headOf(data.result);
          if (head) onHead(head);
        },
        onError: (error: unknown) => failed(transport, error),
      });
      subscribing?.then(
        () => {
          onHead(undefined); // subscribed: whatever came before it is asked for now
          if (failures > 0) {
            log.info({ event: "rpc_recovered", step: "subscribe", endpoint }, "head subscription restored");
          }
          failures = 0;
          if (stopped) close(transport);
        },
        (error: unknown) => failed(transport, error),
      );
    };
    connect();
    return {
      stop() {
        stopped = true;
        if (retryTimer) clearTimeout(retryTimer);
        close(current);
      },
      renew(reason: string) {
        if (current) failed(current, new Error(`subscription silent: ${reason}`));
      },
    };
  };
}

/** The header fields the watcher needs, or undefined when the notification lacks them. */
function headOf(raw: RpcBlock): Head | undefined {
  try {
    const b = formatBlock(raw);
    if (b.number === null || b.hash === null || typeof b.parentHash !== "string") return undefined;
    return {
      number: b.number,
      hash: b.hash,
      parentHash: b.parentHash,
      timestamp: b.timestamp,
      baseFeePerGas: b.baseFeePerGas,
    };
  } catch {
    return undefined;
  }
}
