/**
 * What every embedded demo shares: a local Anvil and a throwaway state directory for the keeper's journal, both gone
 * when the demo ends, the keeper stopped first (also on failure or a signal); and, with `--keep-running`, following
 * after the scenario until Ctrl-C.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Anvil, type AnvilOptions, startAnvil } from "../devnet/anvil.ts";
import type { Logger } from "../ops/logger.ts";
import { sleep } from "../ops/sleep.ts";

export interface DemoStage {
  readonly anvil: Anvil;
  /** A fresh chain each run: its journal lives and dies with it. */
  readonly stateDir: string;
  /** The keeper to stop when the demo ends. */
  started(keeper: { stop(reason?: string): Promise<void> }): void;
}

export async function onDemoChain<T>(
  anvilOptions: AnvilOptions,
  signal: AbortSignal,
  body: (stage: DemoStage) => Promise<T>,
): Promise<T> {
  const anvil = await startAnvil(anvilOptions);
  const stateDir = mkdtempSync(join(tmpdir(), "perp-keeper-demo-"));
  let keeper: { stop(reason?: string): Promise<void> } | undefined;
  try {
    return await body({ anvil, stateDir, started: (k) => (keeper = k) });
  } finally {
    try {
      await keeper?.stop(signal.aborted ? "signal" : "demo finished");
    } finally {
      await anvil.stop();
      rmSync(stateDir, { recursive: true, force: true });
    }
  }
}

/** `--keep-running`: after the scenario, the keeper keeps following until the signal aborts. */
export async function keepFollowing(keepRunning: boolean | undefined, signal: AbortSignal, log: Logger): Promise<void> {
  if (!keepRunning || signal.aborted) return;
  log.info({ event: "demo_following" }, "scenario done; the keeper keeps following (Ctrl-C to stop)");
  await new Promise<void>((r) => signal.addEventListener("abort", () => r(), { once: true }));
}

/** Waits until the keeper's watcher has processed block `head` (60 s at most). */
export async function caughtUp(
  k: { readonly watcher: { readonly latestTick?: { readonly blockNumber: bigint } } },
  head: bigint,
  signal: AbortSignal,
): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!signal.aborted && (k.watcher.latestTick?.blockNumber ?? -1n) < head) {
    if (Date.now() > deadline) throw new Error(`the keeper did not reach block ${head} within 60 s`);
    await sleep(100, signal);
  }
}
