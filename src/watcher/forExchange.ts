import { formatBlock, type RpcBlock, webSocket } from "viem";
import type { Connection } from "../chain/connect.ts";
import { describeError } from "../chain/errors.ts";
import { redactUrl } from "../config/load.ts";
import type { KeeperConfig } from "../config/schema.ts";
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
    headStallMs: config.keeper.headStallSeconds === undefined ? undefined : config.keeper.headStallSeconds * 1000,
    ...handlers,
  });
}

/**
 * New heads over WebSocket (eth_subscribe newHeads): each one wakes the watcher at once with its header, so that
 * following a head costs no request for the head itself. The transport reconnects by itself; whatever it missed,
 * the watcher fills from the last block it processed. A notification without a usable header is ignored (the
 * watcher's poll covers it).
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
      ?.subscribe({
        params: ["newHeads"],
        onData: (data: { result?: RpcBlock }) => {
          const head = data.result && headOf(data.result);
          if (head) onHead(head);
        },
        onError: failed,
      })
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
