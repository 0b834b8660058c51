/**
 * The keeper's Pyth prices: the latest update of each feed, streamed from one of several Hermes endpoints through
 * the official @pythnetwork/hermes-client, with failover as the keeper does for RPCs.
 *
 * One endpoint is followed at a time: its latest updates are fetched (getLatestPriceUpdates), then its server-sent
 * events are followed (getPriceUpdatesStream). It is left for the next one, after the keeper's back-off (jittered,
 * doubling per consecutive failure, at most 5 s), when its stream fails or ends, when it says nothing for
 * `staleAfterMs` (connecting included: nothing waits on an endpoint longer than that), when an answer is malformed
 * (messages.ts) or lacks a feed, and, with `maxBehindSeconds`, when a feed's newest publish time from it lags the
 * newest seen by more than that. With `maxBehindSeconds` and several endpoints, the others' latest updates are
 * fetched every `probeIntervalMs`, so that a lagging endpoint is seen and the next one is chosen among those that
 * answer; their newer prices are taken too. latest() keeps serving the newest price of each feed throughout; a
 * price never replaces a newer one. When every endpoint has failed since prices last streamed (a stream that ends
 * after serving, as Hermes' do daily, counts only if reconnecting fails) `prices_stale` is logged, once an outage,
 * and `prices_recovered` at the first event after it, from an endpoint that is not behind.
 *
 * `staleAfterMs` must exceed an endpoint's longest normal silence: real Hermes sends an event every slot (400 ms);
 * the devnet's local server only on price moves.
 *
 * An endpoint URL may carry credentials (user info, path, query: hermesEndpoint.ts passes them on). Log lines,
 * errors and health() name an endpoint by redactUrl (scheme and host) and its index only; every error text is
 * scrubbed of the URL's secrets before it is logged.
 *
 * Listeners are called synchronously for each event, right after it is parsed: nothing is awaited in between.
 */
import type { Hex } from "viem";
import { ConfigError } from "../../config/load.ts";
import { backoffMs } from "../../ops/backoff.ts";
import type { Logger } from "../../ops/logger.ts";
import { describe, type Endpoint, endpointOf, malformed, type PriceEventSource } from "./hermesEndpoint.ts";
import { normalizeFeedId, type PythMessage, parsePriceUpdate, parsePriceUpdateJson } from "./messages.ts";

export interface PythPriceStreamOptions {
  /** Hermes base URLs, in order of preference. */
  readonly endpoints: readonly string[];
  readonly feeds: readonly Hex[];
  readonly log: Logger;
  /** An endpoint silent this long (no event; connecting included) is failed over. */
  readonly staleAfterMs: number;
  /** An endpoint whose newest publish time of a feed lags the newest seen by more than this is failed over. */
  readonly maxBehindSeconds?: number;
  readonly signal?: AbortSignal;
  /** Milliseconds, monotonic (default performance.now). */
  readonly clock?: () => number;
  /** Time limit of one HTTP request (default: staleAfterMs, at most 5 s). */
  readonly fetchTimeoutMs?: number;
  /** start() gives up after this long without every feed's price (default 10 s). */
  readonly startTimeoutMs?: number;
  /** Back-off before the first retry; doubles per consecutive failure, at most 5 s (default 100). */
  readonly backoffBaseMs?: number;
  /** With maxBehindSeconds and several endpoints: how often the others are asked for their latest (default 5 s). */
  readonly probeIntervalMs?: number;
}

export interface PythStreamHealth {
  /** The endpoint followed (or about to be), redacted. */
  readonly endpoint: string;
  /** Its stream is open. */
  readonly connected: boolean;
  /** Since the last event of a followed endpoint (its stream or its latest updates); undefined before the first. */
  readonly lastEventAgeMs: number | undefined;
  /** Every endpoint failed in turn, or nothing heard for staleAfterMs. */
  readonly stale: boolean;
}

export type PythListener = (moved: readonly PythMessage[]) => void;

export class PythPriceStream {
  private readonly endpoints: readonly Endpoint[];
  private feeds: Hex[];
  private feedSet: Set<Hex>;
  private readonly messages = new Map<Hex, PythMessage>();
  private readonly listeners = new Set<PythListener>();
  private readonly clock: () => number;
  private readonly staleAfterMs: number;
  private readonly backoffBaseMs: number;
  private readonly closing = new AbortController();
  private active = 0;
  /** Bumped at each attempt and failure: callbacks of an older attempt are ignored. */
  private generation = 0;
  private attempting = false;
  private attemptAbort: AbortController | undefined;
  private source: PriceEventSource | undefined;
  private connected = false;
  /** When the followed endpoint last said anything (or the attempt began). */
  private heardAt = 0;
  private lastEventAt: number | undefined;
  /** Consecutive failures (the back-off's attempt). */
  private failures = 0;
  /**
   * Endpoints failed since prices last streamed: all of them is an outage. A stream that ends after serving events
   * (Hermes closes streams after a day) does not count: only its reconnection failing does.
   */
  private readonly down = new Set<number>();
  /** The current attempt's stream has delivered an event. */
  private streaming = false;
  private lastFailure = "none yet";
  private staleSince: number | undefined;
  private started = false;
  private closed = false;
  private startWaiter: (() => void) | undefined;
  private readonly timers: ReturnType<typeof setInterval>[] = [];
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly onAbort = () => this.close();

  constructor(private readonly o: PythPriceStreamOptions) {
    if (o.endpoints.length === 0) throw new ConfigError("no Hermes endpoint");
    if (!(o.staleAfterMs > 0)) throw new ConfigError("staleAfterMs must be positive");
    const timeout = o.fetchTimeoutMs ?? Math.min(5_000, o.staleAfterMs);
    this.endpoints = o.endpoints.map((url, i) => endpointOf(url, i, timeout));
    this.feeds = [...new Set(o.feeds.map(normalizeFeedId))];
    this.feedSet = new Set(this.feeds);
    this.clock = o.clock ?? (() => performance.now());
    this.staleAfterMs = o.staleAfterMs;
    this.backoffBaseMs = o.backoffBaseMs ?? 100;
  }

  /** Fetches every feed's latest update, then follows the stream; resolves once every feed has a price. */
  async start(): Promise<void> {
    if (this.started) throw new Error("PythPriceStream already started");
    this.started = true;
    if (this.o.signal?.aborted) throw new Error("PythPriceStream: aborted before start");
    this.o.signal?.addEventListener("abort", this.onAbort, { once: true });
    const tick = Math.min(1_000, Math.max(20, Math.floor(this.staleAfterMs / 5)));
    this.timers.push(setInterval(() => this.watch(), tick));
    if (this.o.maxBehindSeconds !== undefined && this.endpoints.length > 1) {
      this.timers.push(setInterval(() => this.probe(), this.o.probeIntervalMs ?? 5_000));
      this.probe();
    }
    for (const timer of this.timers) timer.unref();
    this.launch(0);
    const timeoutMs = this.o.startTimeoutMs ?? 10_000;
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          const missing = this.feeds.filter((f) => !this.messages.has(f)).length;
          reject(
            new Error(
              `no Hermes endpoint served every feed within ${timeoutMs} ms (${missing} of ${this.feeds.length} ` +
                `feeds without a price; endpoints ${this.endpoints.map((e) => e.label).join(", ")}; last failure: ${this.lastFailure})`,
            ),
          );
        }, timeoutMs);
        this.startWaiter = () => {
          clearTimeout(timer);
          if (this.closed) reject(new Error("PythPriceStream closed before every feed had a price"));
          else resolve();
        };
        if (this.complete()) this.startWaiter();
      });
    } catch (error) {
      this.close();
      throw error;
    } finally {
      this.startWaiter = undefined;
    }
  }

  /** The newest price of a feed (0x + 64 hex, any case), from whichever endpoint served it. */
  latest(feed: Hex): PythMessage | undefined {
    return this.messages.get(feed.toLowerCase() as Hex);
  }

  /** Called synchronously with the feeds whose publish time advanced, at each event; returns its removal. */
  onUpdate(listener: PythListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Follows these feeds from now on (a market appeared or went): the followed endpoint is asked again. */
  setFeeds(feeds: readonly Hex[]): void {
    const next = [...new Set(feeds.map(normalizeFeedId))];
    if (next.length === this.feeds.length && next.every((f) => this.feedSet.has(f))) return;
    this.feeds = next;
    this.feedSet = new Set(next);
    for (const feed of this.messages.keys()) if (!this.feedSet.has(feed)) this.messages.delete(feed);
    for (const e of this.endpoints)
      for (const feed of e.newest.keys()) if (!this.feedSet.has(feed)) e.newest.delete(feed);
    this.o.log.debug({ feeds: next.length, endpoint: this.endpoints[this.active]?.label }, "Pyth feeds changed");
    // a pending retry connects with the new feeds; otherwise the followed endpoint is asked again (or at last)
    if (!this.started || this.closed || this.retryTimer !== undefined) return;
    this.stopAttempt();
    this.launch(this.active);
  }

  health(): PythStreamHealth {
    const age = this.lastEventAt === undefined ? undefined : this.clock() - this.lastEventAt;
    return {
      endpoint: this.endpoints[this.active]?.label ?? "",
      connected: this.connected,
      lastEventAgeMs: age,
      stale: this.staleSince !== undefined || age === undefined || age > this.staleAfterMs,
    };
  }

  /** Stops everything: no request, stream or timer is left. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.stopAttempt();
    for (const timer of this.timers) clearInterval(timer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.closing.abort();
    this.o.signal?.removeEventListener("abort", this.onAbort);
    this.startWaiter?.();
  }

  private complete(): boolean {
    return this.feeds.every((f) => this.messages.has(f));
  }

  private stopAttempt(): void {
    this.generation++;
    this.attempting = false;
    this.connected = false;
    this.attemptAbort?.abort();
    this.attemptAbort = undefined;
    this.source?.close();
    this.source = undefined;
  }

  private launch(index: number): void {
    this.retryTimer = undefined;
    this.connect(index).catch((error: unknown) => {
      this.o.log.error({ error: describe(error) }, "Pyth price stream: unexpected failure while connecting");
      this.fail(this.generation, "unexpected", error);
    });
  }

  private async connect(index: number): Promise<void> {
    if (this.closed) return;
    const gen = ++this.generation;
    const e = this.endpoints[index] as Endpoint;
    this.active = index;
    if (this.feeds.length === 0) return; // nothing to follow until setFeeds
    this.attempting = true;
    this.heardAt = this.clock();
    this.streaming = false;
    const abort = new AbortController();
    this.attemptAbort = abort;
    const feeds = this.feeds;
    let answer: unknown;
    try {
      answer = await e.client.getLatestPriceUpdates(feeds, e.options, {
        signal: AbortSignal.any([abort.signal, this.closing.signal]),
      });
    } catch (error) {
      return this.fail(gen, malformed(error) ? "malformed" : "fetch_failed", error);
    }
    if (gen !== this.generation) return;
    try {
      const messages = parsePriceUpdate(answer, { receivedAt: this.clock(), endpoint: index });
      const missing = feeds.filter((f) => !messages.some((m) => m.feed === f)).length;
      if (missing > 0) return this.fail(gen, "incomplete", `${missing} feeds missing from its latest updates`);
      this.heardAt = this.lastEventAt = this.clock();
      this.accept(e, messages);
    } catch (error) {
      return this.fail(gen, "malformed", error);
    }
    const lag = this.lagOf(e);
    if (lag !== undefined) return this.fail(gen, "behind", `${lag} s behind the newest publish time seen`);
    let source: PriceEventSource;
    try {
      source = await e.client.getPriceUpdatesStream(feeds, e.options);
    } catch (error) {
      return this.fail(gen, "stream_failed", error);
    }
    if (gen !== this.generation) {
      source.close();
      return;
    }
    this.source = source;
    source.onopen = () => {
      if (gen === this.generation) this.connected = true;
    };
    source.onmessage = (event) => this.onEvent(gen, e, event.data);
    source.onerror = (event) => {
      if (event.message) this.fail(gen, "stream_error", event.message);
      else this.fail(gen, "stream_closed", "the stream ended");
    };
  }

  /** One stream event: parsed, applied and handed to the listeners, synchronously. */
  private onEvent(gen: number, e: Endpoint, data: unknown): void {
    if (gen !== this.generation) return;
    const now = this.clock();
    let messages: PythMessage[];
    try {
      messages = parsePriceUpdateJson(String(data), { receivedAt: now, endpoint: e.index });
    } catch (error) {
      this.fail(gen, "malformed", error);
      return;
    }
    this.heardAt = this.lastEventAt = now;
    this.connected = this.streaming = true;
    this.accept(e, messages);
    if ((this.failures > 0 || this.staleSince !== undefined) && this.lagOf(e) === undefined) this.healthy(e, now);
  }

  private healthy(e: Endpoint, now: number): void {
    this.failures = 0;
    this.down.clear();
    if (this.staleSince === undefined) return;
    const staleForMs = Math.round(now - this.staleSince);
    this.staleSince = undefined;
    this.o.log.info(
      { event: "prices_recovered", endpoint: e.label, endpointIndex: e.index, staleForMs },
      "Pyth prices are streaming again",
    );
  }

  /** Takes the messages newer than what is held, and tells the listeners which moved. */
  private accept(e: Endpoint, messages: readonly PythMessage[]): void {
    e.up = true;
    let moved: PythMessage[] | undefined;
    for (const m of messages) {
      if (!this.feedSet.has(m.feed)) continue;
      const served = e.newest.get(m.feed);
      if (served === undefined || m.publishTime > served) e.newest.set(m.feed, m.publishTime);
      const held = this.messages.get(m.feed);
      if (held !== undefined && m.publishTime <= held.publishTime) continue;
      this.messages.set(m.feed, m);
      if (moved === undefined) moved = [m];
      else moved.push(m);
    }
    if (moved === undefined) return;
    for (const listener of this.listeners) {
      try {
        listener(moved);
      } catch (error) {
        this.o.log.error({ error: describe(error) }, "a Pyth price listener threw");
      }
    }
    if (this.startWaiter && this.complete()) this.startWaiter();
  }

  /** How far (seconds) an endpoint's newest publish time of some feed lags the newest held; undefined if within. */
  private lagOf(e: Endpoint): bigint | undefined {
    const max = this.o.maxBehindSeconds;
    if (max === undefined) return undefined;
    let worst = 0n;
    for (const [feed, served] of e.newest) {
      const best = this.messages.get(feed)?.publishTime;
      if (best !== undefined && best - served > worst) worst = best - served;
    }
    return worst > BigInt(Math.floor(max)) ? worst : undefined;
  }

  /** The periodic check of the followed endpoint: silent, or behind. */
  private watch(): void {
    if (this.closed || !this.attempting) return;
    const silentMs = this.clock() - this.heardAt;
    if (silentMs > this.staleAfterMs) {
      this.fail(this.generation, "silent", `nothing for ${Math.round(silentMs)} ms`);
      return;
    }
    this.checkBehind();
  }

  private checkBehind(): void {
    if (this.closed || !this.attempting) return;
    const lag = this.lagOf(this.endpoints[this.active] as Endpoint);
    if (lag !== undefined) this.fail(this.generation, "behind", `${lag} s behind the newest publish time seen`);
  }

  private fail(gen: number, reason: string, error: unknown): void {
    if (gen !== this.generation || this.closed) return;
    this.stopAttempt();
    const from = this.endpoints[this.active] as Endpoint;
    from.up = false;
    this.failures++;
    if (!this.streaming || !reason.startsWith("stream_")) this.down.add(from.index);
    const detail = from.scrub(describe(error));
    this.lastFailure = `${from.label}: ${reason} (${detail})`;
    const next = this.pickNext();
    const retryInMs = backoffMs(this.failures, this.backoffBaseMs);
    this.o.log.warn(
      {
        event: "price_stream_failover",
        endpoint: from.label,
        endpointIndex: from.index,
        to: (this.endpoints[next] as Endpoint).label,
        toIndex: next,
        reason,
        detail,
        attempt: this.failures,
        retryInMs,
      },
      "Pyth price stream moves to the next Hermes endpoint",
    );
    if (this.down.size >= this.endpoints.length && this.staleSince === undefined) {
      this.staleSince = this.clock();
      const age = this.lastEventAt === undefined ? undefined : Math.round(this.clock() - this.lastEventAt);
      this.o.log.error(
        { event: "prices_stale", endpoints: this.endpoints.length, reason, lastEventAgeMs: age ?? null },
        "every Hermes endpoint is down or behind: Pyth prices are stale",
      );
    }
    this.active = next;
    this.retryTimer = setTimeout(() => this.launch(next), retryInMs);
  }

  /** The next endpoint after the followed one that last answered and is not behind; else simply the next. */
  private pickNext(): number {
    const n = this.endpoints.length;
    for (let k = 1; k <= n; k++) {
      const e = this.endpoints[(this.active + k) % n] as Endpoint;
      if (e.up !== false && this.lagOf(e) === undefined) return e.index;
    }
    return (this.active + 1) % n;
  }

  /** The latest updates of every endpoint but the followed one: who answers, how far behind, newer prices. */
  private probe(): void {
    for (const e of this.endpoints) {
      if (e.index === this.active || e.probing || this.closed) continue;
      e.probing = true;
      const feeds = this.feeds;
      e.client
        .getLatestPriceUpdates(feeds, e.options, { signal: this.closing.signal })
        .then((answer) => {
          if (this.closed) return;
          this.accept(e, parsePriceUpdate(answer, { receivedAt: this.clock(), endpoint: e.index }));
          this.checkBehind(); // newer prices elsewhere: the followed endpoint may be behind
        })
        .catch((error: unknown) => {
          e.up = false;
          this.o.log.debug({ endpoint: e.label, error: e.scrub(describe(error)) }, "Hermes probe failed");
        })
        .finally(() => {
          e.probing = false;
        });
    }
  }
}
