/**
 * The watcher's own failures. A refuted answer is retryable (another endpoint is asked next); a stopped backfill is
 * not a failure; a start block the chain contradicts is a configuration error (exit 2).
 */

import { InconsistentAnswerError } from "../chain/errors.ts";

/** An answer the chain refuted (its endpoint demoted already): retried, elsewhere first. */
export class RefutedAnswerError extends InconsistentAnswerError {
  override name = "RefutedAnswerError";
}

/** A backfill asked to stop: not a failure. */
export class BackfillStopped extends Error {
  override name = "BackfillStopped";
}

export class StartBlockError extends Error {
  override name = "StartBlockError";
}
