/**
 * A race on Perp v2 ("Curie", its real npm bytecode on Anvil) for a contested liquidation (issue 18): the keeper's
 * liquidation of an account (through its PerpV2Liquidator) waits in the pool, a competitor calls
 * ClearingHouse.liquidate for the same account at three times the keeper's tip, the keeper sees it there
 * (txpool_content), outbids it while the liquidation penalty pays for it, and its liquidation is mined first.
 * Without bidding (`bidding.enabled: false`, or no `gasTokenPrice` to weigh a bid by) the competitor is mined first:
 * `test/e2e/perp-v2-keeper.test.ts` has that race, lost cleanly.
 */
import type { Address, Hex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { clearingHouseAbi } from "../../src/devnet/perpV2/abis.ts";
import {
  KEEPER_KEYS,
  type Leg,
  liquidationsBetween,
  naming,
  openTraders,
  type PerpV2Fixture,
  ROLE,
  settledKeeper,
  startPerpV2Fixture,
  startPerpV2Keeper,
  stopKeeper,
  submitPoolStep,
  type TestKeeper,
  type Trader,
  withMiningPaused,
  writeLogs,
} from "../helpers/perpV2.ts";
import { until } from "../helpers/wait.ts";

const ETH = "vETH";
const long = (notional: number): Leg => ({ market: ETH, side: "long", notional: String(notional) });

let fx: PerpV2Fixture | undefined;
let run: TestKeeper | undefined;
let victim: Trader;
const ready = () => fx as PerpV2Fixture;
const keeper = () => run as TestKeeper;

beforeAll(async () => {
  fx = await startPerpV2Fixture();
  // a 9500 ETH long on 1000 USDC: wholly liquidatable once ETH's mark is near 1845 (from 2000)
  [victim] = (await openTraders(fx.dev, 10, [{ name: "victim", usdc: "1000", legs: [long(9500)] }])) as [Trader];
  // gas priced in collateral (USDC per ETH), so that a bid can be weighed against the penalty; the pool read often
  run = await startPerpV2Keeper(fx, {
    keys: [KEEPER_KEYS[0] as Hex],
    keeper: { gasTokenPrice: "2000", bidding: { txpoolPollMs: 50 } },
  });
  const logs = run.logs;
  await until("backfill_completed", () => logs.events("backfill_completed").length > 0, 60_000);
}, 240_000);

afterAll(async () => {
  try {
    const dir = process.env.PV2_E2E_LOGS;
    if (dir && fx && run) writeLogs(dir, [run], { victim: victim?.address, liquidator: fx.liquidator });
    await stopKeeper(run?.keeper);
  } finally {
    await fx?.stop();
  }
});

describe("a race on Perp v2", () => {
  it("outbids a competitor's ClearingHouse.liquidate of the same account, and its liquidation is mined first", async () => {
    const { dev, client } = ready();
    const { logs, keeper: k } = keeper();
    const competitor = dev.account(ROLE.competitor);
    const from = (await ready().head()) + 1n;
    await dev.setIndexPrice(ETH, "1800");
    let rivalTx: Hex = "0x";
    let rivalTip = 0n;
    let raceBlock = 0n;
    await withMiningPaused(ready(), async () => {
      await dev.warp(15);
      const step = await submitPoolStep(dev, ETH, "1845");
      await ready().rpc("evm_mine");
      await dev.tx.confirm(step);
      await until(
        "the keeper's liquidation of the victim",
        () => naming(logs, "liquidation_sent", victim.address).length > 0,
        20_000,
      );
      const ours = naming(logs, "liquidation_sent", victim.address)[0];
      rivalTip = BigInt(ours?.maxPriorityFeePerGas as string) * 3n;
      const base = (await client.getBlock({ blockTag: "latest" })).baseFeePerGas ?? 0n;
      rivalTx = await competitor.writeContract({
        address: dev.d.clearingHouse,
        abi: clearingHouseAbi,
        functionName: "liquidate",
        args: [victim.address, dev.market(ETH).baseToken, 0n],
        gas: 2_900_000n,
        maxFeePerGas: 2n * base + rivalTip,
        maxPriorityFeePerGas: rivalTip,
      });
      await until("outbid", () => logs.events("liquidation_outbid").length > 0, 15_000);
      raceBlock = (await ready().head()) + 1n;
      await ready().rpc("evm_mine");
    });
    await settledKeeper(k).catch(() => {});
    const { liquidated } = await liquidationsBetween(ready(), from, raceBlock);
    const outbid = logs.events("liquidation_outbid")[0];
    const first = liquidated.find((l) => l.trader === victim.address.toLowerCase());
    console.log(
      `[perp-v2 race] competitor ${rivalTx} at ${rivalTip} wei; ours replaced at ${outbid?.maxPriorityFeePerGas} wei; ` +
        `liquidations of the victim ${JSON.stringify(liquidated.filter((l) => l.trader === victim.address.toLowerCase()).map((l) => ({ block: String(l.blockNumber), liquidator: l.liquidator, tx: l.txHash })))}`,
    );
    expect(outbid?.competitorTx).toBe(rivalTx);
    expect(BigInt(outbid?.maxPriorityFeePerGas as string)).toBeGreaterThan(rivalTip);
    // the first liquidation of the victim is ours (through our liquidator), in the race's block
    expect(first?.liquidator).toBe(ready().liquidator.toLowerCase() as Address);
    expect(first?.blockNumber).toBe(raceBlock);
    const rival = competitor.account.address.toLowerCase();
    await until("the race settled", () => (k.executor.races.byCompetitor.get(rival)?.won ?? 0) >= 1, 10_000);
    expect(k.executor.stats.lostRaceGasWei).toBe(0n);
    expect(logs.events("liquidation_reverted")).toEqual([]);
    // the competitor's call came after ours in the same block (skipped or reverted there), or not at all
    const theirs = await client.getTransactionReceipt({ hash: rivalTx }).catch(() => undefined);
    console.log(
      `[perp-v2 race] competitor's receipt: ${theirs ? `${theirs.status} in ${theirs.blockNumber}` : "none"}`,
    );
  }, 180_000);
});
