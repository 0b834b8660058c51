/**
 * The keeper's operator-facing side while it runs: /metrics, /healthz and /readyz (when enabled), the heartbeat line,
 * and closing them with the freshness checks, the latency tap and the notifier. The keeper's work matters more than its
 * figures: a port that cannot be bound is said (metrics_server_error) and the keeper runs on without them.
 */
import { describeError } from "../chain/errors.ts";
import type { KeeperConfig } from "../config/schema.ts";
import type { Freshness } from "./freshness.ts";
import { startHeartbeat } from "./heartbeat.ts";
import type { Logger } from "./logger.ts";
import { keeperMetrics, type OpsSources } from "./metrics.ts";
import type { Notifier } from "./notify.ts";
import { type OpsServer, startOpsServer } from "./server.ts";

export interface OpsRuntimeOptions {
  readonly keeper: KeeperConfig["keeper"];
  readonly sources: OpsSources;
  readonly log: Logger;
  readonly freshness: Freshness;
  /** Unsubscribes the latency histograms from the log tap. */
  readonly untap?: () => void;
  /** Stops the notifier following the log. */
  readonly unnotify?: () => void;
  readonly notifier?: Notifier;
}

export interface OpsRuntime {
  /** Where /metrics, /healthz and /readyz are served (undefined: disabled, or the address could not be bound). */
  readonly url: string | undefined;
  /** Stops the heartbeat, the freshness checks and the tap, closes the server and flushes the notifier (up to 2 s). */
  close(): Promise<void>;
}

export async function startOpsRuntime(o: OpsRuntimeOptions): Promise<OpsRuntime> {
  const k = o.keeper;
  let server: OpsServer | undefined;
  if (k.metricsEnabled) {
    try {
      server = await startOpsServer({
        host: k.metricsHost,
        port: k.metricsPort,
        registry: keeperMetrics(o.sources),
        sources: o.sources,
        health: { maxHeadAgeSeconds: k.healthMaxHeadAgeSeconds, maxPendingBlocks: 3n * BigInt(k.stuckBlocks) },
        log: o.log,
      });
      o.log.info(
        { event: "metrics_server_started", url: server.url },
        `metrics on ${server.url}/metrics, health on /healthz and /readyz`,
      );
    } catch (error) {
      o.log.warn(
        {
          event: "metrics_server_error",
          host: k.metricsHost,
          port: k.metricsPort,
          error: describeError(error),
        },
        `cannot serve metrics on ${k.metricsHost}:${k.metricsPort}; running without them`,
      );
    }
  }
  const heartbeat = startHeartbeat(o.sources, o.log, k.heartbeatSeconds);
  let closed: Promise<void> | undefined;
  return {
    url: server?.url,
    close: () => {
      closed ??= (async () => {
        heartbeat.stop();
        o.freshness.stop();
        o.untap?.();
        o.unnotify?.();
        await Promise.all([server?.close(), o.notifier?.flush(2_000)]);
      })();
      return closed;
    },
  };
}
