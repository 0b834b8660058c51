/**
 * Where heads come from: the WebSocket subscription's announcements (the header in the notification, no request)
 * and the freshest-head round across every endpoint (a poll, and the fallback when a subscription misses). The
 * follow loop runs here: a step per head, a jittered back-off after a failed one, and a subscription renewed when it
 * stays open but goes silent (the fallback poll found heads it never announced).
 *
 * Invariants: each endpoint's lag is measured against the freshest head reported in the same round; a step is pinned
 * to one endpoint at the freshest head (the first listed among equals; a backfill: the first listed that does not lag); an
 * announced head not yet followed is taken as it is, without a request.
 */

import type { Endpoint } from "../chain/endpoints.ts";
import { describeError, isRetryable } from "../chain/errors.ts";
import { backoffMs } from "../ops/backoff.ts";
import { sleep } from "../ops/sleep.ts";
import { HeadStall } from "./headStall.ts";
import type { WatcherState } from "./state.ts";
import type { Head } from "./types.ts";

/** Polls in a row that found a new head the subscription did not announce, before it is renewed. */
const SILENT_SUBSCRIPTION_HEADS = 2;

/** With a head subscription, the fallback poll: what a missed notification costs at most. */
const SUBSCRIBED_POLL_MS = 5_000;

/** A head to follow, the endpoint the step is pinned to, and when the keeper learned of it (performance.now()). */
export interface SeenAt {
  readonly block: Head;
  readonly endpoint: Endpoint;
  readonly receivedAt: number;
}

/** How often the stall is judged while a step runs (a blocked step never reaches the check after it). */
const STALL_CHECK_MS = 1_000;

export class HeadSource {
  /** The last head the subscription announced, and when (performance.now()). */
  private announced: { readonly head: Head; readonly at: number } | undefined;
  /** Whether heads still come (head_stalled / head_resumed). */
  private readonly stall: HeadStall;

  constructor(private readonly s: WatcherState) {
    this.stall = new HeadStall(s.o.log, s.o.headStallMs);
  }

  /** The head a step follows: the announced one if it is not followed yet, else the freshest head asked now. */
  async next(): Promise<SeenAt> {
    const announced = this.announced;
    if (announced && announced.head.hash !== this.s.checkpoint?.hash) {
      return { block: announced.head, endpoint: this.s.eps.preferred(), receivedAt: announced.at };
    }
    const { block, endpoint } = await this.freshest();
    return { block, endpoint, receivedAt: performance.now() };
  }

  /**
   * The latest block, from the endpoint that has the freshest one: every usable endpoint is asked at once (one
   * request each, in parallel), each one's lag is measured against the freshest head reported in that same round,
   * and the step is pinned to the endpoint with the highest head (the first configured among equals).
   */
  async freshest(first = false): Promise<{ block: Head; endpoint: Endpoint }> {
    const eps = this.s.eps;
    if (!eps.many) {
      const endpoint = eps.preferred();
      return { block: await endpoint.client.getBlock({ blockTag: "latest" }), endpoint };
    }
    const asked = eps.usable();
    const answers = await Promise.allSettled(asked.map((e) => e.client.getBlock({ blockTag: "latest" })));
    const heads: { block: Head; endpoint: Endpoint }[] = [];
    let failure: unknown;
    answers.forEach((a, i) => {
      const e = asked[i] as Endpoint;
      if (a.status === "rejected") {
        eps.failed(e);
        failure ??= a.reason;
        return;
      }
      eps.reportHead(e.url, a.value.number);
      heads.push({ block: a.value, endpoint: e });
    });
    if (heads.length === 0) throw failure;
    const top = heads.reduce((m, h) => (h.block.number > m ? h.block.number : m), 0n);
    // a backfill (`first`): the first listed endpoint that does not lag, the operator's primary; following: the first
    // listed of those at the freshest head (the primary while it keeps up and is not refuted, the next one otherwise)
    if (first) return heads.find((h) => !eps.isLagging(h.endpoint.url)) ?? (heads[0] as (typeof heads)[0]);
    return heads.find((h) => h.block.number === top) as { block: Head; endpoint: Endpoint };
  }

  /**
   * Runs `poll` (one follow step; true when it followed a new head) until the signal aborts. A failed I/O step is
   * logged and retried with a backoff growing from the poll interval to 30 s; a deterministic failure (see
   * isRetryable) ends the run with that error.
   */
  async run(signal: AbortSignal, poll: (signal: AbortSignal) => Promise<boolean>): Promise<void> {
    const { o } = this.s;
    let failures = 0;
    this.stall.start();
    let wake: AbortController | undefined;
    /** The subscription was (re)established since the last step: poll now. */
    let subscribed = false;
    /** It has been established at least once: only then can it be judged silent. */
    let live = false;
    const subscription = o.subscribeHeads?.((head) => {
      if (head) this.announced = { head, at: performance.now() };
      else subscribed = live = true;
      wake?.abort();
    });
    const idleMs = subscription ? Math.max(o.pollIntervalMs, SUBSCRIBED_POLL_MS) : o.pollIntervalMs;
    // new heads the fallback poll found that the subscription never announced: a silent subscription is renewed
    let unannounced = 0;
    // the stall is judged on its own clock too: a step blocked on an endpoint that never answers is a stall
    const judge = () => this.stall.check(this.s.lastTick?.blockNumber, this.s.o.freshness?.()?.healthy);
    const judging = setInterval(judge, STALL_CHECK_MS);
    judging.unref();
    try {
      while (!signal.aborted) {
        // the fallback timer (not an announcement, nor the subscription's start) brought this step; none did the first
        const byTimer = wake !== undefined && !wake.signal.aborted;
        // armed before the step: an announcement that comes while it runs cuts the sleep after it short
        wake = new AbortController();
        try {
          // subscribed, and the last announcement is processed and recent: nothing to ask the node
          const a = this.announced;
          const quiet =
            subscription !== undefined &&
            !subscribed &&
            failures === 0 &&
            a !== undefined &&
            a.head.hash === this.s.checkpoint?.hash &&
            performance.now() - a.at < idleMs;
          subscribed = false;
          const before = this.announced;
          if (!quiet && (await poll(signal))) {
            this.stall.arrived(this.s.lastTick);
            // the fallback poll found a head the live subscription never announced: count it against it
            if (
              subscription &&
              live &&
              byTimer &&
              this.announced === before &&
              this.s.checkpoint?.hash !== before?.head.hash
            ) {
              if (++unannounced >= SILENT_SUBSCRIPTION_HEADS) {
                subscription.renew(`${unannounced} new heads found by polling were never announced`);
                unannounced = 0;
              }
            } else unannounced = 0;
          }
          failures = 0;
        } catch (error) {
          if (!isRetryable(error)) throw error;
          failures++;
          o.log.warn(
            { event: "rpc_error", step: "follow", attempt: failures, error: describeError(error) },
            "follow step failed; retrying",
          );
        }
        judge();
        await sleep(failures ? backoffMs(failures, o.pollIntervalMs) : idleMs, AbortSignal.any([signal, wake.signal]));
      }
    } finally {
      clearInterval(judging);
      subscription?.stop();
    }
  }
}
