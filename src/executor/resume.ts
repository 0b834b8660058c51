/**
 * Resuming a lane on start (Aztec's loadStateAndResumeMonitoring): its journal's attempts are reconciled with the
 * chain (recovery.ts, pure) and what is still unresolved is tracked again instead of re-sent; the lane's counter
 * starts after the highest nonce in use.
 */
import type { Logger } from "../ops/logger.ts";
import type { Attempt } from "./attempt.ts";
import type { Attempts } from "./attempts.ts";
import { NonceLane } from "./lane.ts";
import { planRecovery } from "./recovery.ts";
import type { ExecutorOptions } from "./types.ts";

/**
 * Attempts mined while the keeper was down are settled at the first head, those still in the pool are tracked
 * again, those the node lost are re-sent or filled when a later nonce needs them and given back otherwise.
 */
export async function resumeLane(
  lane: NonceLane,
  journaled: readonly Attempt[],
  deps: {
    readonly o: ExecutorOptions;
    readonly attempts: Attempts;
    readonly anyKnown: (a: Attempt) => Promise<boolean | undefined>;
  },
): Promise<void> {
  const { client, log } = deps.o;
  const { attempts } = deps;
  const [{ latest, pending }, balance] = await Promise.all([
    NonceLane.chainNonces(client, lane.address),
    client.getBalance({ address: lane.address }),
    lane.warmUp(),
  ]);
  lane.balance = balance;
  lane.chainNonce = latest;
  const answers = new Map<Attempt, boolean | undefined>();
  await Promise.all(
    journaled.filter((a) => a.nonce >= latest).map(async (a) => answers.set(a, await deps.anyKnown(a))),
  );
  const plan = planRecovery(journaled, { latest, pending }, (a) => answers.get(a));
  for (const a of [...plan.mined, ...plan.pending, ...plan.lost]) {
    attempts.adopt(lane, a);
    if (a.status === "signed") void attempts.setStatus(a, "pending", { background: true });
  }
  for (const a of plan.lost) for (const tx of a.txs) tx.sentAtBlock = 0n; // checked at the first head
  for (const a of plan.abandoned) {
    attempts.adopt(lane, a, false);
    void attempts.setStatus(a, "failed", { background: true });
  }
  lane.init(plan.nextNonce);
  reportResumed(log, lane, journaled.length, plan);
}

function reportResumed(
  log: Logger,
  lane: NonceLane,
  journaled: number,
  plan: { mined: unknown[]; pending: unknown[]; lost: unknown[]; abandoned: unknown[] },
): void {
  if (journaled === 0) return;
  const settled = plan.mined.length;
  const tracked = plan.pending.length + plan.lost.length;
  const abandoned = plan.abandoned.length;
  log.info(
    {
      event: "executor_recovered",
      signer: lane.address,
      journaled,
      settled,
      tracked,
      abandoned,
      nextNonce: lane.nextNonce,
    },
    `journal of ${lane.address}: ${settled} settled, ${tracked} still pending, ${abandoned} never reached the chain`,
  );
}
