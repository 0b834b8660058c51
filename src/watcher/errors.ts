/**
 * The watcher's own failures. A refuted answer is retryable (another endpoint is asked next); a stopped backfill is
 * not a failure; a start block the chain contradicts is a configuration error (exit 2).
 */

import { InconsistentAnswerError } from "../chain/errors.ts";
import { SetupError } from "../errors.ts";

/** An answer the chain refuted (its endpoint demoted already): retried, elsewhere first. */
export class RefutedAnswerError extends InconsistentAnswerError {
  override name = "RefutedAnswerError";
}

/** A backfill asked to stop: not a failure. */
export class BackfillStopped extends Error {
  override name = "BackfillStopped";
}

/** A start block the chain contradicts (past its head): a setup error, exit 2. */
export class StartBlockError extends SetupError {
  override name = "StartBlockError";
}
