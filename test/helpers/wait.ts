import type { RunningKeeper } from "../../src/app.ts";
import type { DevnetFixture } from "./devnet.ts";

/** Polls `check` every 50 ms until it holds; throws naming `what` after `timeoutMs`. */
export async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/**
 * The positive condition behind a "nothing happened" assertion: the keeper ticks the chain's head as it is now, then
 * `heads` more, mined one at a time (`mine`, evm_mine unless given; a mined block takes what the pool holds), each
 * waited for before the next so that every one is a tick of its own; then its executor is settled (every simulation
 * done, every broadcast under way finished). What the keeper decided at any of those heads is then signed and sent.
 * Returns the last block ticked.
 */
export async function ticked(
  keeper: RunningKeeper,
  net: DevnetFixture,
  heads = 2,
  mine: () => Promise<unknown> = () =>
    net.ex.publicClient.request({ method: "evm_mine" as never, params: [] as never }),
): Promise<bigint> {
  const tickedAt = (block: bigint) =>
    until(
      `the keeper's tick at block ${block}`,
      () => (keeper.watcher.latestTick?.blockNumber ?? -1n) >= block,
      15_000,
    );
  let head = await net.ex.publicClient.getBlockNumber({ cacheTime: 0 });
  await tickedAt(head);
  for (let i = 0; i < heads; i++) {
    await mine();
    const next = await net.ex.publicClient.getBlockNumber({ cacheTime: 0 });
    if (next <= head) throw new Error(`mining gave no new block after ${head}`);
    head = next;
    await tickedAt(head);
  }
  await settled(keeper);
  return head;
}

/**
 * The executor idle and staying so: executor.idle() looks at the simulations before the per-head work, and an
 * inclusion pass there can hand positions back to planning (a cancel mined, a race lost), so it is asked again until
 * a round changes none of its counts. Every simulation, broadcast and per-head pass the keeper has started is over.
 */
export async function settled(keeper: RunningKeeper): Promise<void> {
  const e = keeper.executor;
  const counts = () =>
    JSON.stringify([e.stats, e.updateStats, e.pendingAttempts.length], (_, v) =>
      typeof v === "bigint" ? v.toString() : v,
    );
  await e.idle();
  for (let round = 0; round < 20; round++) {
    const before = counts();
    await e.idle();
    if (counts() === before) return;
  }
  throw new Error("the executor never settled: every round of idle() changed its counts");
}

/** JSON-RPC calls of `method` the keeper has sent to any endpoint, from its /metrics (perp_keeper_rpc_requests_total). */
export async function rpcCalls(keeper: RunningKeeper, method: string): Promise<number> {
  if (!keeper.metricsUrl) throw new Error("the keeper serves no metrics");
  const text = await (await fetch(`${keeper.metricsUrl}/metrics`)).text();
  let total = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith("perp_keeper_rpc_requests_total{") && line.includes(`method="${method}"`)) {
      total += Number(line.slice(line.lastIndexOf(" ") + 1));
    }
  }
  return total;
}
