/**
 * Waiting with bounds: `within` (a promise given a deadline, for a stop that must end on time) and `retry` (an I/O
 * step repeated with a jittered back-off until it succeeds, the signal aborts or a deadline passes).
 */
import { describeError, isRetryable } from "../chain/errors.ts";
import { backoffMs } from "./backoff.ts";
import type { Logger } from "./logger.ts";
import { sleep } from "./sleep.ts";

/** Whether `work` settled within `ms` (its failure counts as settled: the caller's own path reports it). */
export async function within(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([work.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Runs `step` until it succeeds or the signal aborts, logging each I/O failure as rpc_error and backing off with
 * jitter up to 5 s; a deterministic failure (see isRetryable) is thrown at once. The step must be safe to repeat
 * (the backfill resumes from the last applied block). With `deadlineMs`, failures past it end the retrying with
 * the last cause.
 */
export async function retry(
  step: () => Promise<void>,
  signal: AbortSignal,
  log: Logger,
  name: string,
  fields: Record<string, unknown> = {},
  deadlineMs = Number.POSITIVE_INFINITY,
): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  for (let attempt = 1; !signal.aborted; attempt++) {
    try {
      return await step();
    } catch (error) {
      if (!isRetryable(error)) throw error;
      const delay = backoffMs(attempt, 500);
      if (Date.now() + delay > deadline) throw error;
      log.warn(
        { event: "rpc_error", step: name, ...fields, attempt, retryInMs: delay, error: describeError(error) },
        `${name} failed; retrying in ${delay} ms`,
      );
      await sleep(delay, signal);
    }
  }
}
