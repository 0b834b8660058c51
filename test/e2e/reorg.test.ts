/** A reorganisation under the keeper's last block: it notices, rebuilds, and holds exactly the canonical state. */
import { parseUnits } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningKeeper } from "../../src/app.ts";
import { ORACLE_DECIMALS } from "../../src/devnet/exchange.ts";
import { BTC, ETH, openPosition, openPositions, TEXTBOOK_POSITIONS } from "../../src/devnet/positions.ts";
import { positionKey } from "../../src/protocol/perpEngine/book.ts";
import { type DevnetFixture, shutdown, startDevnet, startTestKeeper } from "../helpers/devnet.ts";
import type { CapturedLog } from "../helpers/logs.ts";
import { until } from "../helpers/wait.ts";

let net: DevnetFixture;
let keeper: RunningKeeper | undefined;
let logs: CapturedLog;

beforeAll(async () => {
  net = await startDevnet({ accounts: 6 });
  await openPositions(net.ex, TEXTBOOK_POSITIONS);
  ({ keeper, logs } = await startTestKeeper(net, { pollIntervalMs: 50 }));
  const k = keeper;
  await until("backfill", () => k.book.positions.size === TEXTBOOK_POSITIONS.length);
});

afterAll(async () => {
  await shutdown(keeper, net);
});

describe("reorganisations", () => {
  it("drops a position whose opening block was reorganised away", async () => {
    const k = keeper as RunningKeeper;
    // trader 4 opens a 20x BTC long; the keeper sees it
    const spec = { trader: 4, marketId: BTC, side: "long" as const, margin: "500", leverage: 20 };
    await openPosition(net.ex, spec);
    const key = positionKey(BTC, net.ex.trader(4).account.address);
    await until("the new position", () => k.book.positions.has(key));
    await until("a tick at the head", async () => {
      const head = await net.ex.publicClient.getBlockNumber({ cacheTime: 0 });
      return k.watcher.latestTick?.blockNumber === head;
    });

    // the block that opened it is replaced by an empty one at the same height
    await net.ex.publicClient.request({ method: "anvil_reorg" as never, params: [1, []] as never });
    expect((await net.ex.position(net.ex.trader(4).account.address, BTC)).size).toBe(0n);

    await until("the keeper to notice", () => logs.events("reorg_detected").length > 0);
    await until("the rebuilt book", () => !k.book.positions.has(key) && k.book.positions.size === 2);
    expect(k.risk.index.size).toBe(2);
  });

  it("still liquidates on the canonical chain afterwards, and only what is there", async () => {
    const k = keeper as RunningKeeper;
    await net.ex.setPrice(BTC, parseUnits("50000", ORACLE_DECIMALS)); // would crush the vanished 20x long too
    await net.ex.setPrice(ETH, parseUnits("2375", ORACLE_DECIMALS));
    await until("two liquidations", () => logs.events("liquidation_confirmed").length === 2);
    await k.executor.idle();
    const liquidated = logs.events("liquidation_confirmed").map((l) => l.trader);
    expect(liquidated).not.toContain(net.ex.trader(4).account.address);
    expect(logs.events("liquidation_skipped")).toHaveLength(0);
  });
});
