/**
 * Retry delays: doubling from `baseMs`, capped at `capMs` (5 s by default, so that the keeper is processing again
 * within seconds of an outage ending), with jitter (between half and all of it) so that restarted keepers do not
 * retry in step.
 */
export function backoffMs(attempt: number, baseMs: number, capMs = 5_000, random: () => number = Math.random): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling * (0.5 + 0.5 * random()));
}
