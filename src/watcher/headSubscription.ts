import { formatBlock, type RpcBlock } from "viem";
import { subscribe } from "../chain/subscription.ts";
import type { Logger } from "../ops/logger.ts";
import type { Head, WatcherOptions } from "./types.ts";

/**
 * New heads over WebSocket (eth_subscribe newHeads): each one wakes the watcher at once with its header, so that
 * following a head costs no request for the head itself. The subscription is kept up by src/chain/subscription.ts;
 * one that stays open but goes silent while blocks come (the watcher's fallback poll finds heads it never
 * announced) is renewed. Whatever the subscription missed, the watcher fills from the last block it processed (and
 * polls every 5 s meanwhile). A notification without a usable header is ignored.
 */
export function headSubscription(wsUrl: string, log: Logger): NonNullable<WatcherOptions["subscribeHeads"]> {
  return (onHead) =>
    subscribe({
      wsUrl,
      params: ["newHeads"],
      log,
      what: "head subscription",
      step: "subscribe",
      onData: (result) => {
        const head = headOf(result as RpcBlock);
        if (head) onHead(head);
      },
      onSubscribed: () => onHead(undefined), // subscribed: whatever came before it is asked for now
    });
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
      logsBloom: b.logsBloom,
    };
  } catch {
    return undefined;
  }
}
