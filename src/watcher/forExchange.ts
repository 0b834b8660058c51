import { webSocket } from "viem";
import type { Connection } from "../chain/connect.ts";
import { describeError } from "../chain/errors.ts";
import { redactUrl } from "../config/load.ts";
import type { KeeperConfig } from "../config/schema.ts";
import type { Logger } from "../ops/logger.ts";
import { decodePerpEngineLogs } from "../protocol/perpEngine.ts";
import type { Book } from "../state/book.ts";
import { Watcher, type WatcherOptions } from "./watcher.ts";

/** A watcher of the configured exchange, from its deployment block, with the adapter's decoder. */
export function watchExchange(
  config: KeeperConfig,
  connection: Connection,
  book: Book,
  log: Logger,
  handlers: Pick<WatcherOptions, "onEvent" | "onTick" | "onReorg" | "onRollback">,
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
    headStallMs: config.keeper.headStallSeconds === undefined ? undefined : config.keeper.headStallSeconds * 1000,
    ...handlers,
  });
}

/**
 * New heads over WebSocket (eth_subscribe newHeads): each one wakes the watcher at once. The transport reconnects
 * by itself; whatever it missed, the watcher's next poll fills from the last block it processed.
 */
function headSubscription(wsUrl: string, log: Logger): NonNullable<WatcherOptions["subscribeHeads"]> {
  return (onHead) => {
    const transport = webSocket(wsUrl, { reconnect: true, keepAlive: true })({});
    const failed = (error: unknown) =>
      log.warn(
        { event: "rpc_error", step: "subscribe", endpoint: redactUrl(wsUrl), error: describeError(error) },
        "head subscription failed; polling covers it while it reconnects",
      );
    const subscription = transport.value
      ?.subscribe({ params: ["newHeads"], onData: () => onHead(), onError: failed })
      .catch((error: unknown) => {
        failed(error);
        return undefined;
      });
    return () => {
      void subscription?.then((s) => s?.unsubscribe()).catch(() => {});
      void transport.value
        ?.getRpcClient()
        .then((rpc) => rpc.close())
        .catch(() => {});
    };
  };
}
