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
 * waited for before the next so that every one is a tick of its own; then its executor is idle (every simulation
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
  await keeper.executor.idle();
  return head;
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
