/** Bad oracle answers are refused; in a dry run the keeper finds and prices liquidations and sends nothing. */
import { parseUnits } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mockV3AggregatorAbi } from "../../abi/MockV3Aggregator.ts";
import type { RunningKeeper } from "../../src/app.ts";
import { ORACLE_DECIMALS } from "../../src/devnet/exchange.ts";
import { ETH, openPositions, TEXTBOOK_POSITIONS } from "../../src/devnet/positions.ts";
import { type DevnetFixture, shutdown, startDevnet, startTestKeeper } from "../helpers/devnet.ts";
import type { CapturedLog } from "../helpers/logs.ts";
import { until } from "../helpers/wait.ts";

let net: DevnetFixture;
let keeper: RunningKeeper | undefined;
let logs: CapturedLog;

beforeAll(async () => {
  net = await startDevnet({ accounts: 5 });
  await openPositions(net.ex, TEXTBOOK_POSITIONS);
  ({ keeper, logs } = await startTestKeeper(net, { dryRun: true, gasTokenPrice: "3000" }));
});

afterAll(async () => {
  await shutdown(keeper, net);
});

describe("bad oracle answers", () => {
  it("refuses a zero answer: the market is skipped, nothing is flagged", async () => {
    await net.ex.setPrice(ETH, 0n);
    await until("an oracle_invalid line", () => logs.events("oracle_invalid").length > 0);
    expect(logs.events("oracle_invalid")[0]).toMatchObject({ market: "ETH-USD", reason: "non_positive_answer" });
    // more blocks on the same bad answer: reported once, not every block
    const k = keeper as RunningKeeper;
    for (let i = 0; i < 3; i++) await net.ex.publicClient.request({ method: "evm_mine" as never, params: [] as never });
    const head = await net.ex.publicClient.getBlockNumber({ cacheTime: 0 });
    await until("the keeper at the head", () => k.watcher.latestTick?.blockNumber === head);
    expect(logs.events("oracle_invalid")).toHaveLength(1);
    expect(logs.events("position_flagged")).toHaveLength(0);
  });

  it("refuses an answer older than the market's maxOracleAge", async () => {
    const block = await net.ex.publicClient.getBlock();
    const old = block.timestamp - 3601n;
    await net.ex.send(net.ex.owner, {
      address: net.ex.d.markets[ETH]?.oracle,
      abi: mockV3AggregatorAbi,
      functionName: "updateRoundData",
      args: [100n, parseUnits("1000", ORACLE_DECIMALS), old, old],
    });
    await until("a stale oracle_invalid line", () => logs.events("oracle_invalid").some((l) => l.reason === "stale"));
    expect(logs.events("oracle_invalid").some((l) => l.reason === "stale" && l.market === "ETH-USD")).toBe(true);
    expect(logs.events("position_flagged")).toHaveLength(0); // 1,000 would be far below the ETH long's liquidation price
  });
});

describe("dry run", () => {
  it("simulates and prices the liquidation of the 20x ETH long after a 5% drop, and sends nothing", async () => {
    await net.ex.setPrice(ETH, parseUnits("2375", ORACLE_DECIMALS));
    await until("a liquidation_dry_run line", () => logs.events("liquidation_dry_run").length > 0);
    const [dry] = logs.events("liquidation_dry_run");
    const trader = net.ex.trader(3).account.address;
    expect(dry).toMatchObject({ trader, marketId: ETH });
    expect(Number(dry?.reward)).toBeCloseTo(4 * 2375 * 0.005, 6);
    // gas at Anvil's ~1 gwei, priced at 3,000 per ETH: a profit just under the reward
    expect(Number(dry?.expectedProfit)).toBeLessThan(Number(dry?.reward));
    expect(Number(dry?.expectedProfit)).toBeGreaterThan(Number(dry?.reward) - 5);
    expect(BigInt(dry?.gas as string)).toBeGreaterThan(21_000n);
    expect(logs.events("liquidation_sent")).toHaveLength(0);
    expect(logs.events("oracle_recovered")).toMatchObject([{ market: "ETH-USD" }]);
    const keeperAddress = net.ex.trader(1).account.address;
    expect(await net.ex.publicClient.getTransactionCount({ address: keeperAddress })).toBe(0);
    expect((await net.ex.position(trader, ETH)).size).not.toBe(0n);
  });
});
