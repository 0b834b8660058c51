/**
 * One eth_subscribe over WebSocket that lasts: a connection that closes or fails is dropped and a new one subscribed,
 * with the keeper's back-off (jittered, at most 5 s), for as long as it takes: viem's own reconnection gives up
 * after one failed attempt. `renew` drops one that stays open but went silent. No keep-alive ping: liveness is judged
 * by what the caller expects to hear.
 */
import { webSocket } from "viem";
import { redactUrl } from "../config/load.ts";
import { backoffMs } from "../ops/backoff.ts";
import type { Logger } from "../ops/logger.ts";
import { describeError } from "./errors.ts";

export interface Subscription {
  stop(): void;
  /** Drops the connection and subscribes anew. */
  renew(reason: string): void;
}

export interface SubscriptionOptions {
  readonly wsUrl: string;
  readonly params: readonly unknown[];
  readonly log: Logger;
  /** What it is, in log lines ("head subscription"). */
  readonly what: string;
  /** The `step` of its rpc_error / rpc_recovered lines. */
  readonly step: string;
  /** Each notification's `result`. */
  readonly onData: (result: unknown) => void;
  /** Each time it is (re)established. */
  readonly onSubscribed?: () => void;
}

export function subscribe(o: SubscriptionOptions): Subscription {
  let stopped = false;
  let failures = 0;
  let current: ReturnType<ReturnType<typeof webSocket>> | undefined;
  let retryTimer: ReturnType<typeof setTimeout> | undefined;
  const endpoint = redactUrl(o.wsUrl);
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
    o.log.warn(
      { event: "rpc_error", step: o.step, endpoint, attempt: failures, retryInMs, error: describeError(error) },
      `${o.what} lost; polling covers it while it reconnects`,
    );
    current = undefined;
    close(transport);
    retryTimer = setTimeout(connect, retryInMs);
  };
  const connect = () => {
    retryTimer = undefined;
    if (stopped) return;
    const transport = webSocket(o.wsUrl, { reconnect: false, keepAlive: false })({});
    current = transport;
    const subscribing = transport.value?.subscribe({
      params: o.params as never,
      onData: (data: { result?: unknown }) => {
        if (data.result !== undefined) o.onData(data.result);
      },
      onError: (error: unknown) => failed(transport, error),
    });
    subscribing?.then(
      () => {
        o.onSubscribed?.();
        if (failures > 0) {
          o.log.info({ event: "rpc_recovered", step: o.step, endpoint }, `${o.what} restored`);
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
}
