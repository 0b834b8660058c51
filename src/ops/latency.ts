/**
 * Latency histograms, in seconds, with buckets fit for 1 to 12 s blocks:
 *
 * - head to tick: the keeper learned of a head (Tick.receivedAt) to the keeper handling its tick (oracle reads and
 *   the head's logs in between);
 * - tick to broadcast: the last tick handled to a liquidation accepted by the node (liquidation_sent), for sends not
 *   prepared on a pending oracle update;
 * - broadcast to inclusion: liquidation_sent to the keeper reading the receipt of that signer's nonce
 *   (liquidation_confirmed, liquidation_reverted or liquidation_lost_race);
 * - pending oracle update to broadcast: the update seen in the pool to the send (liquidation_sent's
 *   msSinceUpdateSeen).
 *
 * Read from the log's events (LogTap) and the ticks, so that no hook is needed on the liquidation path. An executor
 * that knows better may call `observe` itself (docs/operations.md, "Latency").
 */

import { Histogram } from "prom-client";

/** Seconds: sub-second steps for the keeper's own work, then block times from 1 to 12 s and a few multiples. */
export const LATENCY_BUCKETS: readonly number[] = [0.05, 0.1, 0.25, 0.5, 1, 2, 3, 4, 6, 8, 12, 18, 24, 36, 60, 120];

export type LatencyName =
  | "head_to_tick"
  | "tick_to_broadcast"
  | "broadcast_to_inclusion"
  | "pending_update_to_broadcast";

const HELP: Record<LatencyName, string> = {
  head_to_tick: "Seconds from the keeper learning of a head to handling its tick (prices read, logs applied)",
  tick_to_broadcast: "Seconds from the last tick handled to a liquidation broadcast (not prepared on a pending update)",
  broadcast_to_inclusion: "Seconds from a liquidation broadcast to the keeper reading its receipt",
  pending_update_to_broadcast: "Seconds from a pending oracle update seen to a liquidation prepared on it broadcast",
};

/** Sent transactions followed to inclusion at most (older ones are forgotten first). */
const MAX_FOLLOWED = 10_000;

export class Latency {
  readonly histograms: ReadonlyMap<LatencyName, Histogram<string>>;
  private lastTickAt: number | undefined;
  /** performance.now() of each signer:nonce's broadcast. */
  private readonly sentAt = new Map<string, number>();

  constructor() {
    const out = new Map<LatencyName, Histogram<string>>();
    for (const name of Object.keys(HELP) as LatencyName[]) {
      out.set(
        name,
        new Histogram({
          name: `perp_keeper_${name}_seconds`,
          help: HELP[name],
          buckets: [...LATENCY_BUCKETS],
          registers: [],
        }),
      );
    }
    this.histograms = out;
  }

  /** One observation, in seconds (negative or non-finite values are dropped). */
  observe(name: LatencyName, seconds: number): void {
    if (Number.isFinite(seconds) && seconds >= 0) this.histograms.get(name)?.observe(seconds);
  }

  /** A tick was handled now (performance.now()); its head was learned at `receivedAt`. */
  tick(receivedAt: number | undefined, now = performance.now()): void {
    if (receivedAt !== undefined) this.observe("head_to_tick", (now - receivedAt) / 1000);
    this.lastTickAt = now;
  }

  /** A log event (LogTap listener). */
  onLog(fields: Readonly<Record<string, unknown>>, at: number): void {
    switch (fields.event) {
      case "liquidation_sent": {
        const seen = fields.msSinceUpdateSeen;
        if (typeof seen === "number") this.observe("pending_update_to_broadcast", seen / 1000);
        else if (this.lastTickAt !== undefined) this.observe("tick_to_broadcast", (at - this.lastTickAt) / 1000);
        const key = nonceKey(fields);
        if (key === undefined) return;
        if (this.sentAt.size >= MAX_FOLLOWED) this.sentAt.delete(this.sentAt.keys().next().value as string);
        this.sentAt.set(key, at);
        return;
      }
      case "liquidation_confirmed":
      case "liquidation_reverted":
      case "liquidation_lost_race": {
        const key = nonceKey(fields);
        const sent = key === undefined ? undefined : this.sentAt.get(key);
        if (key === undefined || sent === undefined) return;
        this.sentAt.delete(key); // a batch says one line per position: its first counts
        this.observe("broadcast_to_inclusion", (at - sent) / 1000);
        return;
      }
      case "liquidation_cancelled":
      case "liquidation_failed":
      case "liquidation_superseded": {
        const key = nonceKey(fields);
        if (key !== undefined) this.sentAt.delete(key);
        return;
      }
    }
  }
}

function nonceKey(fields: Readonly<Record<string, unknown>>): string | undefined {
  const { signer, nonce } = fields;
  if (typeof signer !== "string" || (typeof nonce !== "number" && typeof nonce !== "string")) return undefined;
  return `${signer.toLowerCase()}:${nonce}`;
}
