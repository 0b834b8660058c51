import { SetupError } from "../errors.ts";

/**
 * The events do not add up. Of itself a deterministic fault (wrong address or start block): not retryable, exit 2.
 * The watcher, which knows an answer may have left events out, refutes that answer and asks again (watcher/apply.ts).
 */
export class BookError extends SetupError {
  override name = "BookError";
}
