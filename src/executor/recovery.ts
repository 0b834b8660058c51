/**
 * What to do, at start, with the attempts a signer's journal still holds. Pure: the executor supplies the chain's
 * nonces of the key and whether the node knows each attempt's transactions, and applies the plan.
 */
import type { Attempt } from "./attempt.ts";

export interface RecoveryPlan {
  /** Nonce already used on chain: settled by the first inclusion pass, once the book is rebuilt. */
  readonly mined: Attempt[];
  /** The node still has a transaction of it (or cannot say): tracked again, so that nothing is sent twice. */
  readonly pending: Attempt[];
  /** Lost by the node, below a nonce that is still pending: checked at the first head (re-sent or cancelled). */
  readonly lost: Attempt[];
  /** Lost, above every nonce in use: it never reached the chain, and its nonce is free again. */
  readonly abandoned: Attempt[];
  /** Where the lane's counter resumes. */
  readonly nextNonce: number;
}

export function planRecovery(
  attempts: readonly Attempt[],
  chain: { readonly latest: number; readonly pending: number },
  known: (a: Attempt) => boolean | undefined,
): RecoveryPlan {
  const sorted = [...attempts].sort((a, b) => a.nonce - b.nonce);
  const mined = sorted.filter((a) => a.nonce < chain.latest);
  const rest = sorted.filter((a) => a.nonce >= chain.latest);
  const pending = rest.filter((a) => known(a) !== false);
  const gone = rest.filter((a) => known(a) === false);
  const topInUse = Math.max(chain.latest - 1, chain.pending - 1, ...pending.map((a) => a.nonce));
  const lost = gone.filter((a) => a.nonce <= topInUse);
  const abandoned = gone.filter((a) => a.nonce > topInUse);
  const tracked = [...mined, ...pending, ...lost];
  const nextNonce = Math.max(chain.pending, chain.latest, ...tracked.map((a) => a.nonce + 1));
  return { mined, pending, lost, abandoned, nextNonce };
}
