/**
 * keeper_heartbeat: one info line every `intervalSeconds` with where the keeper is (head, processed block, lag),
 * what it watches (positions, at risk) and what it has under way (pending transactions, signer balances).
 */

import type { Logger } from "./logger.ts";
import { type OpsSources, pendingBySigner, positionsByMarket, reading } from "./metrics.ts";

export interface Heartbeat {
  stop(): void;
}

/** The heartbeat's fields, as logged. */
export function heartbeatFields(s: OpsSources): Record<string, unknown> {
  const r = reading(s);
  let positions = 0;
  let atRisk = 0;
  for (const row of positionsByMarket(s, s.atRiskDistance).values()) {
    positions += row.tracked;
    atRisk += row.atRisk;
  }
  let pending = 0;
  for (const n of pendingBySigner(s).values()) pending += n;
  return {
    event: "keeper_heartbeat",
    head: r.headBlock.toString(),
    processedBlock: r.processedBlock.toString(),
    lagBlocks: r.lagBlocks.toString(),
    headAgeSeconds: Math.round(r.headAgeSeconds * 10) / 10,
    backfilled: r.backfilled,
    positions,
    atRisk,
    pendingTransactions: pending,
    signerBalances: Object.fromEntries(s.signers.map((x) => [x.address, x.balance?.toString()])),
  };
}

/** Logs a heartbeat every `intervalSeconds` (0: never) until stopped; the timer never holds the process up. */
export function startHeartbeat(s: OpsSources, log: Logger, intervalSeconds: number): Heartbeat {
  if (intervalSeconds <= 0) return { stop() {} };
  const timer = setInterval(() => {
    const fields = heartbeatFields(s);
    log.info(
      fields,
      `heartbeat: block ${fields.processedBlock} (lag ${fields.lagBlocks}), ${fields.positions} positions, ` +
        `${fields.atRisk} at risk, ${fields.pendingTransactions} pending`,
    );
  }, intervalSeconds * 1000);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
