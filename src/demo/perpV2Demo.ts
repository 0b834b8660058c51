/**
 * `npm start -- --exchange perp-v2`: the embedded demo on Perpetual Protocol v2 ("Curie"), deployed from its npm
 * bytecode on a local Anvil with 1-second blocks. Two markets with a maker's liquidity; traders long and short, in
 * one market or both (cross margin), some at high leverage, two with $100 positions; the keeper's PerpV2Liquidator
 * funded. Then a crash: each market's oracle (the index) drops and the pool follows it, as arbitrage does. The keeper
 * liquidates through its contract: accounts far under maintenance whole, the others partly (the protocol's 50% rule)
 * and again until healthy, and it closes the positions it took over through the pool. The summary says what the
 * chain says: every account's health by the ClearingHouse's own views, and the liquidator's positions.
 */
import { type Address, formatUnits, type PublicClient } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { parseConfig } from "../config/load.ts";
import { ANVIL_KEYS } from "../devnet/anvil.ts";
import { accountBalanceAbi, clearingHouseAbi } from "../devnet/perpV2/abis.ts";
import { perpV2KeeperConfig } from "../devnet/perpV2/deploy.ts";
import { decodePerpV2Events, PerpV2Devnet } from "../devnet/perpV2/scenario.ts";
import { long, openTraders, short, spec, stageLiquidator, stageMarkets, type Trader } from "../devnet/perpV2/stage.ts";
import type { Logger } from "../ops/logger.ts";
import { sleep } from "../ops/sleep.ts";
import { startPerpV2Keeper } from "../protocol/perpV2/run.ts";
import { caughtUp, keepFollowing, onDemoChain } from "./stage.ts";

const ETH = "vETH";
const BTC = "vBTC";

/** Ratios after ETH 2000 -> 1800 and BTC 30000 -> 26500: whole < 3.125% <= partial < 6.25% <= healthy. */
export const PERP_V2_DEMO_TRADERS = [
  ...[9000, 8500].map((n, i) => spec(`ethWhole${i}`, 1000, long(ETH, n))),
  ...[6600, 7000].map((n, i) => spec(`ethPartial${i}`, 1000, long(ETH, n))),
  spec("ethHundred", 13.5, long(ETH, 100)),
  spec("ethSafe", 2000, long(ETH, 6000)),
  spec("ethShort", 1000, short(ETH, 5000)),
  ...[9000, 8800].map((n, i) => spec(`btcWhole${i}`, 1000, long(BTC, n))),
  spec("btcPartial", 1000, long(BTC, 6800)),
  spec("btcHundred", 13.5, long(BTC, 100)),
  spec("btcSafe", 3000, long(BTC, 9000)),
  spec("crossWhole", 1400, long(ETH, 6500), long(BTC, 6000)),
  spec("crossPartial", 1500, long(ETH, 11000), short(BTC, 3000)),
  spec("crossSafe", 3000, long(ETH, 5000), long(BTC, 4000)),
];

/** Mnemonic indexes: 0 deployer, 1 maker, 2 the devnet's arbitrageur, 3 the liquidator's owner, 8 the keeper. */
const MAKER = 1;
const OWNER = 3;
const KEEPER_KEY = ANVIL_KEYS[8];
const FIRST_TRADER = 10;

export interface PerpV2DemoOptions {
  readonly log: Logger;
  /** Keep the keeper running after the scenario until the signal aborts. */
  readonly keepRunning?: boolean;
  readonly signal: AbortSignal;
  /** How long the keeper may take to settle the crash (default 90 s). */
  readonly settleMs?: number;
}

export interface PerpV2DemoResult {
  /** Accounts the chain's views said were liquidatable after the crash. */
  readonly liquidatableAfterCrash: number;
  /** Accounts the keeper's contract liquidated, and its liquidation calls (partial ones count each call). */
  readonly liquidatedByKeeper: number;
  readonly liquidations: number;
  /** Accounts that took more than one call (partial liquidations continued until healthy). */
  readonly partiallyLiquidated: number;
  /** Accounts still liquidatable by the chain's views at the end: 0 is the keeper's job done. */
  readonly stillLiquidatable: number;
  /** Positions taken over, closed through the pool by the keeper's contract. */
  readonly inventoryClosed: number;
  /** Whether the liquidator holds no position at the end. */
  readonly inventoryFlat: boolean;
  /** The liquidator's account value change (USDC), the discount earned less the closing costs. */
  readonly liquidatorValueChange: string;
}

export async function runPerpV2Demo(o: PerpV2DemoOptions): Promise<PerpV2DemoResult> {
  const { signal } = o;
  const log = o.log.child({ component: "demo" });
  const accounts = FIRST_TRADER + PERP_V2_DEMO_TRADERS.length + 2;
  return onDemoChain({ blockTime: 1, accounts }, signal, async ({ anvil, stateDir, started }) => {
    log.info({ event: "devnet_started", rpcUrl: anvil.rpcUrl }, "local Anvil devnet started (1-second blocks)");
    const dev = await PerpV2Devnet.deploy(anvil.rpcUrl);
    const client = dev.publicClient as unknown as PublicClient;
    await stageMarkets(dev, dev.account(MAKER));
    const keeperAddress = privateKeyToAccount(KEEPER_KEY).address;
    const liquidator = await stageLiquidator(dev, dev.account(OWNER), [keeperAddress], "2000000");
    const traders = await openTraders(dev, FIRST_TRADER, PERP_V2_DEMO_TRADERS);
    log.info(
      {
        event: "devnet_ready",
        exchange: "perp-v2",
        clearingHouse: dev.d.clearingHouse,
        markets: dev.d.markets.map((m) => m.name),
        traders: traders.length,
        liquidator,
      },
      `Perp v2 deployed from its npm bytecode: ${dev.d.markets.map((m) => m.name).join(", ")} with a maker's liquidity; ${traders.length} traders opened; the keeper's PerpV2Liquidator holds 2,000,000 USDC`,
    );

    const raw = perpV2KeeperConfig(dev.d, anvil.rpcUrl, { pollIntervalMs: 200, metricsPort: 0, stateDir });
    const config = parseConfig({ ...raw, exchange: { ...(raw.exchange as object), liquidator } }, "perp-v2 demo");
    const keeper = await startPerpV2Keeper({
      config,
      rpcUrl: anvil.rpcUrl,
      privateKeys: [KEEPER_KEY],
      log: o.log,
      signal,
    });
    started(keeper);
    keeper.done.catch(() => {});
    await caughtUp(keeper, await client.getBlockNumber({ cacheTime: 0 }), signal);

    const before = await accountValue(client, dev, liquidator);
    const crashFrom = await client.getBlockNumber({ cacheTime: 0 });
    for (const [market, price, label] of [
      [ETH, "1800", "ETH crash: the index 2000 -> 1800, the pool follows"],
      [BTC, "26500", "BTC crash: the index 30000 -> 26500, the pool follows"],
    ] as const) {
      if (signal.aborted) break;
      log.info({ event: "demo_price_move", market, price }, `demo: ${label}`);
      await dev.crash(market, price);
    }
    const liquidatableAfterCrash = await countLiquidatable(client, dev, traders, crashFrom);
    const deadline = Date.now() + (o.settleMs ?? 90_000);
    let left = traders.length;
    let flat = false;
    while (!signal.aborted && Date.now() < deadline) {
      await sleep(1000, signal);
      if (signal.aborted) break;
      left = (await liquidatableNow(client, dev, traders)).length;
      flat = await isFlat(client, dev, liquidator);
      if (left === 0 && flat) break;
    }
    await keepFollowing(o.keepRunning, signal, log);
    const head = await client.getBlockNumber({ cacheTime: 0 });
    const events = decodePerpV2Events(
      await client.getLogs({ address: [dev.d.clearingHouse, liquidator], fromBlock: crashFrom, toBlock: head }),
    );
    const calls = new Map<string, number>();
    let closes = 0;
    for (const e of events) {
      if (e.eventName === "PositionLiquidated" && e.args.liquidator.toLowerCase() === liquidator.toLowerCase()) {
        const who = e.args.trader.toLowerCase();
        calls.set(who, (calls.get(who) ?? 0) + 1);
      }
      if (e.eventName === "InventoryClosed") closes++;
    }
    const after = await accountValue(client, dev, liquidator);
    const result: PerpV2DemoResult = {
      liquidatableAfterCrash,
      liquidatedByKeeper: calls.size,
      liquidations: [...calls.values()].reduce((s, n) => s + n, 0),
      partiallyLiquidated: [...calls.values()].filter((n) => n > 1).length,
      stillLiquidatable: (await liquidatableNow(client, dev, traders)).length,
      inventoryClosed: closes,
      inventoryFlat: await isFlat(client, dev, liquidator),
      liquidatorValueChange: formatUnits(after - before, 18),
    };
    log.info(
      { event: "demo_summary", exchange: "perp-v2", ...result },
      `demo finished: ${result.liquidatableAfterCrash} accounts liquidatable after the crash; the keeper liquidated ` +
        `${result.liquidatedByKeeper} in ${result.liquidations} calls (${result.partiallyLiquidated} partly, over ` +
        `several calls); ${result.stillLiquidatable} left liquidatable; ${result.inventoryClosed} takeovers closed ` +
        `through the pool, the liquidator ${result.inventoryFlat ? "holds nothing" : "still holds positions"}; ` +
        `its account value changed by ${Number(result.liquidatorValueChange).toFixed(2)} USDC`,
    );
    return result;
  });
}

/** The ClearingHouse's own condition at one block: getAccountValue < getMarginRequirementForLiquidation. */
async function liquidatableNow(client: PublicClient, dev: PerpV2Devnet, traders: readonly Trader[], at?: bigint) {
  const blockNumber = at ?? (await client.getBlockNumber({ cacheTime: 0 }));
  const flags = await Promise.all(
    traders.map(async (t) => {
      // a view can revert at a block where the index's TWAP is not readable yet (SafeMath): no verdict there
      const read = Promise.all([
        client.readContract({
          address: dev.d.clearingHouse,
          abi: clearingHouseAbi,
          functionName: "getAccountValue",
          args: [t.address],
          blockNumber,
        }),
        client.readContract({
          address: dev.d.accountBalance,
          abi: accountBalanceAbi,
          functionName: "getMarginRequirementForLiquidation",
          args: [t.address],
          blockNumber,
        }),
      ]);
      const answer = await read.catch(() => undefined);
      return answer !== undefined && answer[0] < answer[1];
    }),
  );
  return traders.filter((_, i) => flags[i]);
}

/** Accounts liquidatable at any block from `from` to the head (a keeper may have liquidated them since). */
async function countLiquidatable(client: PublicClient, dev: PerpV2Devnet, traders: readonly Trader[], from: bigint) {
  const head = await client.getBlockNumber({ cacheTime: 0 });
  const seen = new Set<string>();
  for (let b = from; b <= head; b++)
    for (const t of await liquidatableNow(client, dev, traders, b)) seen.add(t.address);
  return seen.size;
}

async function isFlat(client: PublicClient, dev: PerpV2Devnet, liquidator: Address): Promise<boolean> {
  const sizes = await Promise.all(
    dev.d.markets.map((m) =>
      client.readContract({
        address: dev.d.accountBalance,
        abi: accountBalanceAbi,
        functionName: "getTakerPositionSize",
        args: [liquidator, m.baseToken],
      }),
    ),
  );
  return sizes.every((s) => s === 0n);
}

function accountValue(client: PublicClient, dev: PerpV2Devnet, who: Address): Promise<bigint> {
  return client.readContract({
    address: dev.d.clearingHouse,
    abi: clearingHouseAbi,
    functionName: "getAccountValue",
    args: [who],
  });
}
