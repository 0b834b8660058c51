/** Classified failures of chain I/O: what the keeper does next depends on the class, not the message. */
import { BaseError, HttpRequestError, RpcRequestError, TimeoutError } from "viem";
import { KeeperError } from "../errors.ts";

/**
 * tx_fee_cap: the node refuses a transaction whose gas x maxFeePerGas is above its cap (geth, Erigon `rpc.txfeecap`):
 * not to be sent again as it is.
 */
export type RpcFailure = "timeout" | "range_too_large" | "rate_limited" | "unavailable" | "rejected" | "tx_fee_cap";

/** A provider's rate limit (HTTP 429, or its words for it): asked again after a back-off, never split smaller. */
const RATE_LIMIT_HINTS = ["too many requests", "rate limit", "rate-limit", "ratelimit", "request limit reached"];

/** The node's words for a transaction above its fee cap (geth, Erigon). */
export const TX_FEE_CAP_REFUSAL = /exceeds the configured cap/i;

const RANGE_HINTS = [
  "range",
  "too many",
  "limit exceeded",
  "response size",
  "too large",
  "query returned more than",
  "block range",
];

/** Sorts an error from a JSON-RPC call into what to do about it. */
export function classifyRpcError(error: unknown): RpcFailure {
  if (error instanceof BaseError) {
    if (error.walk((e) => e instanceof TimeoutError)) return "timeout";
    const text = `${error.shortMessage} ${error.details ?? ""}`.toLowerCase();
    if (TX_FEE_CAP_REFUSAL.test(text)) return "tx_fee_cap";
    // before the range hints: "Too Many Requests" is a rate limit, not a range too large
    const http = error.walk((e) => e instanceof HttpRequestError) as HttpRequestError | null;
    if (http?.status === 429 || RATE_LIMIT_HINTS.some((h) => text.includes(h))) return "rate_limited";
    if (error.name === "ResponseBodyTooLargeError" || RANGE_HINTS.some((h) => text.includes(h))) {
      return "range_too_large";
    }
    if (error.walk((e) => e instanceof HttpRequestError)) return "unavailable";
    if (error.walk((e) => e instanceof RpcRequestError)) return "rejected";
  }
  return "unavailable";
}

/** A short, key-free description of an error for log lines. */
export function describeError(error: unknown): string {
  if (error instanceof BaseError) return error.shortMessage;
  if (error instanceof Error) return error.message;
  return String(error);
}

/** An RPC answer that cannot be right (logs of another block than asked, a result of the wrong length): retried. */
export class InconsistentAnswerError extends KeeperError {
  override name = "InconsistentAnswerError";
  readonly retryable = true;
  readonly exitCode = 1;
}

/**
 * Runs one RPC read. An answer viem cannot even take apart (a `null` where a list of logs belongs) surfaces as a
 * TypeError from inside the call: it is the RPC's fault, so it becomes an InconsistentAnswerError, retried like any
 * other I/O failure, never a crash of the keeper.
 */
export async function rpcRead<T>(what: string, read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (error) {
    if (error instanceof TypeError || error instanceof SyntaxError || error instanceof RangeError) {
      throw new InconsistentAnswerError(`${what}: the RPC's answer is malformed (${error.message})`);
    }
    throw error;
  }
}

/**
 * Whether a failure is worth retrying: the keeper's own errors say so themselves (an inconsistent answer is; events
 * that do not decode or add up, a start block past the head are deterministic and stop it); of the others, errors
 * of chain I/O (viem's, or the network's) are.
 */
export function isRetryable(error: unknown): boolean {
  if (error instanceof KeeperError) return error.retryable;
  return (
    error instanceof BaseError || (error instanceof Error && /fetch|network|socket|ECONN|timeout/i.test(error.message))
  );
}
