/**
 * One rule for "is the keeper current?", shared by /healthz, the perp_keeper_head_behind gauge and the log (and meant
 * for the watcher's head_stalled too). A keeper without a new head for a while is either on a quiet chain (a devnet
 * or an L2 that mines only when a transaction comes: every endpoint reports the head it has processed: healthy) or
 * behind (an endpoint has reported a head past the processed block for `limitMs` and it is still not processed:
 * unhealthy), or it cannot tell (no endpoint answered for `limitMs`: unhealthy). While heads are processed, it is
 * current, unless an endpoint's head has been waiting `limitMs` to be processed.
 */

import { describeError } from "../chain/errors.ts";
import { big, type Logger } from "./logger.ts";

export type FreshnessState = "current" | "quiet" | "behind" | "no_answer";

export interface FreshnessVerdict {
  readonly state: FreshnessState;
  /** current and quiet are healthy. */
  readonly healthy: boolean;
  readonly processedBlock: bigint;
  /** The freshest head any endpoint reported (undefined: none has answered). */
  readonly reportedHead: bigint | undefined;
  /** ms since the keeper last processed a new head. */
  readonly idleMs: number;
  /** Why it is unhealthy, for /healthz and the log. */
  readonly reason: string | undefined;
}

export interface FreshnessInput {
  readonly processedBlock: bigint;
  readonly idleMs: number;
  /** The heads endpoints reported above the processed block, each with ms since it was first reported, oldest first. */
  readonly unprocessed: readonly { readonly number: bigint; readonly agoMs: number }[];
  /** The freshest head reported, and ms since any endpoint last answered (undefined: never). */
  readonly reportedHead: bigint | undefined;
  readonly answeredAgoMs: number | undefined;
  readonly limitMs: number;
}

/** The rule, pure. */
export function judgeFreshness(i: FreshnessInput): FreshnessVerdict {
  const base = { processedBlock: i.processedBlock, reportedHead: i.reportedHead, idleMs: i.idleMs };
  const waiting = i.unprocessed[0];
  if (waiting && waiting.agoMs >= i.limitMs) {
    return {
      ...base,
      state: "behind",
      healthy: false,
      reason:
        `behind: an endpoint reported block ${waiting.number} ${Math.round(waiting.agoMs / 1000)} s ago (now ` +
        `${i.reportedHead}) and the keeper has processed block ${i.processedBlock} (limit ${i.limitMs / 1000} s)`,
    };
  }
  if (i.idleMs < i.limitMs) return { ...base, state: "current", healthy: true, reason: undefined };
  if (i.answeredAgoMs === undefined || i.answeredAgoMs >= i.limitMs) {
    return {
      ...base,
      state: "no_answer",
      healthy: false,
      reason:
        `no new head processed for ${Math.round(i.idleMs / 1000)} s and no endpoint has told its head ` +
        (i.answeredAgoMs === undefined ? "yet" : `for ${Math.round(i.answeredAgoMs / 1000)} s`) +
        ` (limit ${i.limitMs / 1000} s; last block ${i.processedBlock})`,
    };
  }
  return { ...base, state: "quiet", healthy: true, reason: undefined };
}

export interface FreshnessOptions {
  /** Behind or unanswered for this long is unhealthy (keeper.healthMaxHeadAgeSeconds). */
  readonly limitMs: number;
  /** Asks every endpoint its head (eth_blockNumber); a failure or a timeout rejects. */
  readonly heads: () => readonly Promise<bigint>[];
  /** While no head was processed for this long, the endpoints are asked every probeMs (default 5 s both). */
  readonly probeMs?: number;
  readonly log?: Logger;
  /** performance.now() by default. */
  readonly now?: () => number;
}

/**
 * The rule's state for a running keeper: heads processed (progressed), heads the endpoints report (asked while the
 * keeper is idle), the verdict on demand, and its changes logged: keeper_behind (warn) when it turns unhealthy,
 * keeper_current when it is healthy again, chain_quiet (info) once per quiet spell.
 */
export class Freshness {
  private processed: bigint;
  private progressAt: number;
  private answeredAt: number | undefined;
  private reported: bigint | undefined;
  /** Heads reported above the processed block: when each new highest was first reported. */
  private unprocessed: { number: bigint; at: number }[] = [];
  private said: FreshnessState = "current";
  private readonly now: () => number;
  private timer: NodeJS.Timeout | undefined;
  private asking = false;

  constructor(
    private readonly o: FreshnessOptions,
    processedBlock: bigint,
  ) {
    this.now = o.now ?? (() => performance.now());
    this.processed = processedBlock;
    this.progressAt = this.now();
  }

  /** The keeper processed a new head (its block): it is what an endpoint reported too. */
  progressed(block: bigint): void {
    const now = this.now();
    if (block > this.processed) {
      this.processed = block;
      this.progressAt = now;
    }
    this.heard(block, now);
    this.unprocessed = this.unprocessed.filter((r) => r.number > this.processed);
  }

  /** An endpoint reported this head. */
  heard(head: bigint, now = this.now()): void {
    this.answeredAt = now;
    if (this.reported === undefined || head > this.reported) this.reported = head;
    const top = this.unprocessed.at(-1)?.number ?? this.processed;
    if (head > top) this.unprocessed.push({ number: head, at: now });
  }

  verdict(): FreshnessVerdict {
    const now = this.now();
    return judgeFreshness({
      processedBlock: this.processed,
      idleMs: now - this.progressAt,
      unprocessed: this.unprocessed.map((r) => ({ number: r.number, agoMs: now - r.at })),
      reportedHead: this.reported,
      answeredAgoMs: this.answeredAt === undefined ? undefined : now - this.answeredAt,
      limitMs: this.o.limitMs,
    });
  }

  /** Asks the endpoints (while idle), then judges and logs a change. Never rejects. */
  async check(): Promise<FreshnessVerdict> {
    const probeMs = this.o.probeMs ?? 5_000;
    if (this.now() - this.progressAt >= probeMs && !this.asking) {
      this.asking = true;
      try {
        const answers = await Promise.allSettled(this.o.heads());
        for (const a of answers) if (a.status === "fulfilled") this.heard(a.value);
        const failed = answers.find((a): a is PromiseRejectedResult => a.status === "rejected");
        if (failed && answers.every((a) => a.status === "rejected")) this.lastError = describeError(failed.reason);
        else this.lastError = undefined;
      } finally {
        this.asking = false;
      }
    }
    const v = this.verdict();
    this.say(v);
    return v;
  }

  private lastError: string | undefined;

  /** Checks every probeMs until stopped; the timer never holds the process up. */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.check(), this.o.probeMs ?? 5_000);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private say(v: FreshnessVerdict): void {
    const { log } = this.o;
    const was = this.said;
    if (v.state === was || !log) {
      this.said = v.state;
      return;
    }
    this.said = v.state;
    const fields = {
      processedBlock: big(v.processedBlock),
      reportedHead: v.reportedHead === undefined ? undefined : big(v.reportedHead),
      idleSeconds: Math.round(v.idleMs / 1000),
    };
    if (!v.healthy) {
      log.warn(
        { event: "keeper_behind", reason: v.state, ...fields, error: this.lastError },
        v.reason ?? "the keeper is behind",
      );
    } else if (was === "behind" || was === "no_answer") {
      log.info({ event: "keeper_current", state: v.state, ...fields }, "the keeper has processed the freshest head");
    } else if (v.state === "quiet") {
      log.info(
        { event: "chain_quiet", ...fields },
        `no new block for ${fields.idleSeconds} s; every endpoint reports block ${v.processedBlock} at most: the chain is quiet`,
      );
    }
  }
}
