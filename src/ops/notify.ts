/**
 * Optional webhook notifications of the events an operator must act on (keeper.notify): a liquidation confirmed or
 * failed, a signer running low, liquidatable positions left behind, the keeper stopping. Follows the log's events
 * through the logger's tap, so nothing on the liquidation path waits for it: a listener only enqueues, a worker
 * posts (JSON, retried with back-off, rate-limited; what the limit drops is counted in the next message). Bodies
 * carry a fixed set of fields, never an `error` text, a URL, a key or a token; the Telegram bot token comes from the
 * environment (TELEGRAM_BOT_TOKEN) and is used in the request URL only, which is never logged.
 */

import { SetupError } from "../errors.ts";
import { backoffMs } from "./backoff.ts";
import { type Logger, tapOf } from "./logger.ts";

/** A notifier setting that cannot work (a preset without its URL, token or chat): a setup error, exit 2. */
export class NotifyConfigError extends SetupError {
  override name = "NotifyConfigError";
}

export const NOTIFY_EVENTS = [
  "liquidation_confirmed",
  "liquidation_failed",
  "signer_low",
  "left_behind",
  "keeper_stopping",
  "prices_stale",
] as const;
export type NotifyEvent = (typeof NOTIFY_EVENTS)[number];

export interface NotifyConfig {
  readonly preset: "json" | "slack" | "discord" | "telegram";
  /** The webhook (json, slack, discord); KEEPER_NOTIFY_URL in the environment overrides it. */
  readonly url?: string;
  readonly telegramChatId?: string;
  /** Telegram's Bot API base (tests point it at a local server). */
  readonly telegramApiUrl: string;
  readonly events: readonly NotifyEvent[];
  readonly maxPerMinute: number;
  readonly retries: number;
  readonly timeoutMs: number;
  /** The first retry's delay, doubling (with jitter) up to 10 s. */
  readonly retryBaseMs: number;
}

/** Log events by the notification they are. */
const BY_LOG_EVENT: Record<string, NotifyEvent> = {
  liquidation_confirmed: "liquidation_confirmed",
  liquidation_failed: "liquidation_failed",
  liquidation_reverted: "liquidation_failed",
  signer_low_balance: "signer_low",
  liquidatable_left_behind: "left_behind",
  keeper_stopping: "keeper_stopping",
  // a pull oracle's price service (Hermes): every endpoint down or behind, nothing is liquidated meanwhile
  prices_stale: "prices_stale",
};

/** The only fields a notification carries (figures and public identifiers). */
const FIELDS = [
  "trader",
  "marketId",
  "signer",
  "nonce",
  "txHash",
  "blockNumber",
  "reward",
  "badDebt",
  "reason",
  "balanceWei",
  "floorWei",
  "signersLeft",
  "positions",
  "oldestKey",
  "oldestAgeBlocks",
  "oldestAgeSeconds",
  "endpoints",
  "lastEventAgeMs",
] as const;

interface Message {
  readonly event: NotifyEvent;
  readonly logEvent: string;
  readonly text: string;
  readonly fields: Record<string, string | number | boolean>;
}

export interface NotifierStats {
  delivered: number;
  failed: number;
  suppressed: number;
}

export class Notifier {
  readonly stats: NotifierStats = { delivered: 0, failed: 0, suppressed: 0 };
  private readonly queue: Message[] = [];
  private sent: number[] = [];
  private suppressedSinceLast = 0;
  private working: Promise<void> | undefined;
  private readonly target: string;
  private closed = false;

  constructor(
    private readonly c: NotifyConfig,
    private readonly log: Logger,
    /** The network's name, in each message. */
    private readonly network: string,
    env: Readonly<Record<string, string | undefined>> = process.env,
  ) {
    if (c.preset === "telegram") {
      const token = env.TELEGRAM_BOT_TOKEN;
      if (!token)
        throw new NotifyConfigError("keeper.notify.preset telegram needs TELEGRAM_BOT_TOKEN in the environment");
      if (!c.telegramChatId)
        throw new NotifyConfigError("keeper.notify.preset telegram needs keeper.notify.telegramChatId");
      this.target = `${c.telegramApiUrl.replace(/\/$/, "")}/bot${token}/sendMessage`;
    } else {
      const url = env.KEEPER_NOTIFY_URL ?? c.url;
      if (!url) throw new NotifyConfigError("keeper.notify needs keeper.notify.url or KEEPER_NOTIFY_URL");
      this.target = url;
    }
  }

  /** Follows the logger's events; returns the unsubscription. */
  follow(log: Logger): () => void {
    return tapOf(log)?.on((_level, fields) => this.onLog(fields)) ?? (() => {});
  }

  /** A log line: enqueued when it is a notification asked for; never waits, never throws. */
  onLog(fields: Readonly<Record<string, unknown>>): void {
    const event = BY_LOG_EVENT[String(fields.event)];
    if (!event || this.closed || !this.c.events.includes(event)) return;
    const now = Date.now();
    this.sent = this.sent.filter((t) => now - t < 60_000);
    if (this.sent.length >= this.c.maxPerMinute || this.queue.length >= 100) {
      this.stats.suppressed++;
      this.suppressedSinceLast++;
      return;
    }
    this.sent.push(now);
    const picked: Record<string, string | number | boolean> = {};
    for (const k of FIELDS) {
      const v = fields[k];
      if (typeof v === "string" || typeof v === "number" || typeof v === "boolean") picked[k] = v;
    }
    this.queue.push({ event, logEvent: String(fields.event), text: this.describe(event, picked), fields: picked });
    this.working ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.drain());
  }

  /** Waits (up to `ms`) for what is queued to be delivered; then drops the rest. */
  async flush(ms: number): Promise<void> {
    this.closed = true;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.working ?? Promise.resolve(),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, ms);
        timer.unref();
      }),
    ]);
    clearTimeout(timer);
  }

  private describe(event: NotifyEvent, f: Record<string, string | number | boolean>): string {
    const where = `perp-keeper (${this.network})`;
    switch (event) {
      case "liquidation_confirmed":
        return `${where}: liquidated market ${f.marketId} position of ${f.trader} in block ${f.blockNumber} for ${f.reward}`;
      case "liquidation_failed":
        return `${where}: a liquidation failed (${f.reason ?? "reverted"}), signer ${f.signer} nonce ${f.nonce}`;
      case "signer_low":
        return `${where}: signer ${f.signer} is low on funds (${f.balanceWei} wei) and skipped; ${f.signersLeft} left`;
      case "left_behind":
        return `${where}: ${f.positions} liquidatable position(s) not liquidated, the oldest for ${f.oldestAgeBlocks} blocks`;
      case "keeper_stopping":
        return `${where}: the keeper is stopping`;
      case "prices_stale":
        return `${where}: every price service endpoint (${f.endpoints}) is down or behind: pull-oracle prices are stale, nothing is liquidated against them`;
    }
  }

  private body(m: Message, suppressed: number): unknown {
    const text = suppressed > 0 ? `${m.text} (${suppressed} notification(s) suppressed by the rate limit)` : m.text;
    switch (this.c.preset) {
      case "slack":
        return { text };
      case "discord":
        return { content: text };
      case "telegram":
        return { chat_id: this.c.telegramChatId, text };
      default:
        return {
          source: "perp-keeper",
          network: this.network,
          event: m.event,
          logEvent: m.logEvent,
          text,
          fields: m.fields,
          suppressed,
        };
    }
  }

  private async drain(): Promise<void> {
    try {
      for (let m = this.queue.shift(); m; m = this.queue.shift()) {
        const suppressed = this.suppressedSinceLast;
        this.suppressedSinceLast = 0;
        await this.deliver(m, JSON.stringify(this.body(m, suppressed)));
      }
    } finally {
      this.working = undefined;
    }
  }

  private async deliver(m: Message, body: string): Promise<void> {
    let last = "";
    for (let attempt = 1; attempt <= this.c.retries + 1; attempt++) {
      try {
        const res = await fetch(this.target, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body,
          signal: AbortSignal.timeout(this.c.timeoutMs),
        });
        await res.arrayBuffer().catch(() => undefined);
        if (res.ok) {
          this.stats.delivered++;
          return;
        }
        last = `HTTP ${res.status}`;
        if (res.status < 500 && res.status !== 429) break; // refused: retrying sends the same
      } catch (error) {
        // the error text may carry the URL (and a token in it): only its kind is kept
        last = error instanceof Error && error.name === "TimeoutError" ? "timeout" : "network error";
      }
      if (attempt <= this.c.retries)
        await new Promise((r) => setTimeout(r, backoffMs(attempt, this.c.retryBaseMs, 10_000)));
    }
    this.stats.failed++;
    this.log.warn(
      {
        event: "notify_failed",
        notification: m.event,
        preset: this.c.preset,
        attempts: this.c.retries + 1,
        status: last,
      },
      `could not deliver the ${m.event} notification (${last})`,
    );
  }
}
