/**
 * Perp v2 ("Curie") from its real npm bytecode on Anvil: the deploy wires every contract, a maker makes two markets,
 * traders open leveraged longs and shorts (cross margin), one market crashes ~10%, and the views, the partial-
 * liquidation rules and liquidations (through PerpV2Liquidator and from an EOA) behave as the protocol says.
 */
import { type Address, decodeErrorResult, type Hex, parseAbi, toEventSelector, toFunctionSelector } from "viem";
import { formatAbiItem } from "viem/utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { perpV2LiquidatorAbi } from "../../abi/PerpV2Liquidator.ts";
import { testUSDCAbi } from "../../abi/TestUSDC.ts";
import { type Anvil, startAnvil } from "../../src/devnet/anvil.ts";
import * as abis from "../../src/devnet/perpV2/abis.ts";
import { type PerpV2ContractName, perpV2Artifact } from "../../src/devnet/perpV2/artifacts.ts";
import { perpV2KeeperConfig } from "../../src/devnet/perpV2/deploy.ts";
import { fromX18, priceToTick } from "../../src/devnet/perpV2/math.ts";
import {
  decodePerpV2Events,
  type PerpV2AccountView,
  PerpV2Devnet,
  type PositionChange,
} from "../../src/devnet/perpV2/scenario.ts";
import type { Wallet } from "../../src/devnet/perpV2/tx.ts";

const ETH = "vETH";
const BTC = "vBTC";

describe("Perp v2 ABI fragments", () => {
  it("every hand-written function and event is in the npm artifact it stands for", () => {
    const pairs: [readonly unknown[], PerpV2ContractName][] = [
      [abis.virtualTokenAbi, "QuoteToken"],
      [abis.baseTokenAbi, "BaseToken"],
      [abis.uniswapV3FactoryAbi, "UniswapV3Factory"],
      [abis.uniswapV3PoolAbi, "UniswapV3Pool"],
      [abis.clearingHouseConfigAbi, "ClearingHouseConfig"],
      [abis.marketRegistryAbi, "MarketRegistry"],
      [abis.orderBookAbi, "OrderBook"],
      [abis.exchangeAbi, "Exchange"],
      [abis.accountBalanceAbi, "AccountBalance"],
      [abis.insuranceFundAbi, "InsuranceFund"],
      [abis.vaultAbi, "Vault"],
      [abis.collateralManagerAbi, "CollateralManager"],
      [abis.clearingHouseAbi, "ClearingHouse"],
      [abis.chainlinkPriceFeedV3Abi, "ChainlinkPriceFeedV3"],
      [abis.priceFeedDispatcherAbi, "PriceFeedDispatcher"],
    ];
    const missing: string[] = [];
    for (const [fragment, name] of pairs) {
      const artifact = perpV2Artifact(name).abi;
      const selectors = new Set(
        artifact.flatMap((item) =>
          item.type === "function"
            ? [toFunctionSelector(formatAbiItem(item))]
            : item.type === "event"
              ? [toEventSelector(formatAbiItem(item))]
              : [],
        ),
      );
      for (const item of fragment as Parameters<typeof formatAbiItem>[0][]) {
        if (item.type !== "function" && item.type !== "event") continue;
        const selector =
          item.type === "function" ? toFunctionSelector(formatAbiItem(item)) : toEventSelector(formatAbiItem(item));
        if (!selectors.has(selector)) missing.push(`${name}: ${formatAbiItem(item)}`);
      }
    }
    expect(missing).toEqual([]);
  });
});

describe("Perp v2 on Anvil: deploy, crash, liquidate", () => {
  let anvil: Anvil | undefined;
  let dev: PerpV2Devnet;
  // roles (Anvil mnemonic indexes): 0 deployer, 1 maker, 2 arbitrageur, 3 EOA liquidator, 4 liquidator contract owner,
  // 5 its operator, 6.. traders
  let maker: Wallet;
  let eoaLiquidator: Wallet;
  let contractOwner: Wallet;
  let operator: Wallet;
  const t: Record<string, Wallet> = {};
  let liquidator: Address;

  const views = async (name: string): Promise<PerpV2AccountView> => dev.views(t[name] as Wallet);
  const market = (v: PerpV2AccountView, name: string) => {
    const m = v.markets.find((x) => x.name === name);
    if (!m) throw new Error(`no market ${name}`);
    return m;
  };

  beforeAll(async () => {
    anvil = await startAnvil({ accounts: 20 });
    dev = await PerpV2Devnet.deploy(anvil.rpcUrl);
    maker = dev.account(1);
    eoaLiquidator = dev.account(3);
    contractOwner = dev.account(4);
    operator = dev.account(5);
    for (const [i, name] of ["A", "B", "C", "tiny", "short", "cross", "btc"].entries()) t[name] = dev.account(6 + i);
  }, 120_000);

  afterAll(async () => {
    await anvil?.stop();
  });

  it("deploys the stack wired together, with the settings that make it usable", async () => {
    const d = dev.d;
    const client = dev.publicClient;
    expect(d.markets.map((m) => m.name)).toEqual([ETH, BTC]);
    for (const m of d.markets) {
      // base sorts below quote (MR_IB), the registry knows the pool, the market is not paused
      expect(BigInt(m.baseToken) < BigInt(d.quoteToken)).toBe(true);
      expect(
        await client.readContract({
          address: d.marketRegistry,
          abi: abis.marketRegistryAbi,
          functionName: "getPool",
          args: [m.baseToken],
        }),
      ).toBe(m.pool);
      expect(
        await client.readContract({
          address: d.exchange,
          abi: abis.exchangeAbi,
          functionName: "getMaxTickCrossedWithinBlock",
          args: [m.baseToken],
        }),
      ).toBe(1000);
      // the base token's feed is the dispatcher, which reads the aggregator
      expect(
        await client.readContract({ address: m.baseToken, abi: abis.baseTokenAbi, functionName: "getPriceFeed" }),
      ).toBe(m.priceFeed);
      expect(await dev.indexPrice(m.baseToken)).toBe(BigInt(m.initialPrice) * 10n ** 18n);
      // mark = pool = index at the start, readable at once (no OLD revert)
      expect(fromX18(await dev.markPrice(m.baseToken))).toBeCloseTo(Number(m.initialPrice), 6);
    }
    expect(
      await client.readContract({
        address: d.clearingHouseConfig,
        abi: abis.clearingHouseConfigAbi,
        functionName: "getMarkPriceConfig",
      }),
    ).toEqual([1, 1]);
    expect(
      await client.readContract({
        address: d.clearingHouseConfig,
        abi: abis.clearingHouseConfigAbi,
        functionName: "getSettlementTokenBalanceCap",
      }),
    ).toBe(2n ** 256n - 1n);
    expect(
      await client.readContract({ address: d.clearingHouse, abi: abis.clearingHouseAbi, functionName: "getVault" }),
    ).toBe(d.vault);
    // deployBlock is the ClearingHouse's own block
    expect(await client.getCode({ address: d.clearingHouse, blockNumber: d.deployBlock - 1n })).toBeUndefined();
    expect((await client.getCode({ address: d.clearingHouse, blockNumber: d.deployBlock }))?.length).toBeGreaterThan(
      10_000,
    );
    const config = perpV2KeeperConfig(d, anvil?.rpcUrl ?? "");
    expect(config.exchange).toEqual({
      adapter: "perp-v2",
      address: d.clearingHouse,
      deployBlock: Number(d.deployBlock),
    });
  });

  it("makes markets and opens leveraged positions across both (cross margin)", async () => {
    await dev.fundMany([
      { trader: maker, usdc: "10000000" },
      { trader: t.A as Wallet, usdc: "1000" },
      { trader: t.B as Wallet, usdc: "1000" },
      { trader: t.C as Wallet, usdc: "1000" },
      { trader: t.tiny as Wallet, usdc: "13.5" },
      { trader: t.short as Wallet, usdc: "1000" },
      { trader: t.cross as Wallet, usdc: "1500" },
      { trader: t.btc as Wallet, usdc: "1000" },
      { trader: eoaLiquidator, usdc: "100000" },
    ]);
    await dev.addLiquidity(maker, ETH, "10000", "20000000");
    await dev.addLiquidity(maker, BTC, "200", "6000000");

    const long = (quote: string) => ({ isBaseToQuote: false, isExactInput: true, amount: quote });
    const short = (quote: string) => ({ isBaseToQuote: true, isExactInput: false, amount: quote });
    const trades = await dev.openPositions([
      { trader: t.A as Wallet, base: ETH, args: long("8000") },
      { trader: t.B as Wallet, base: ETH, args: long("7000") },
      { trader: t.C as Wallet, base: ETH, args: long("5000") },
      { trader: t.tiny as Wallet, base: ETH, args: long("100") },
      { trader: t.short as Wallet, base: ETH, args: short("8000") },
      { trader: t.cross as Wallet, base: ETH, args: long("9000") },
      { trader: t.cross as Wallet, base: BTC, args: short("6000") },
      { trader: t.btc as Wallet, base: BTC, args: long("8000") },
    ]);
    const changes = trades.map((trade) => trade.change as PositionChange);
    expect(changes.every((c) => c !== undefined)).toBe(true);
    expect(changes.map((c) => c.exchangedPositionSize > 0n)).toEqual([
      true,
      true,
      true,
      true,
      false,
      true,
      false,
      true,
    ]);

    const cross = await views("cross");
    expect(market(cross, ETH).positionSize).toBeGreaterThan(0n);
    expect(market(cross, BTC).positionSize).toBeLessThan(0n);
    // one account value and margin requirement over both markets
    expect(fromX18(cross.totalAbsPositionValue)).toBeCloseTo(15_000, -2);
    expect(fromX18(cross.marginRequirement)).toBeCloseTo(fromX18(cross.totalAbsPositionValue) * 0.0625, 6);
    for (const name of Object.keys(t)) expect((await views(name)).liquidatable).toBe(false);
  });

  it("does not move the mark price on an index update alone (the median of pool TWAPs holds it)", async () => {
    const poolBefore = (await dev.poolPrice(ETH)).price;
    await dev.setIndexPrice(ETH, "1800");
    expect(await dev.indexPrice(ETH)).toBe(1800n * 10n ** 18n);
    const mark = fromX18(await dev.markPrice(ETH));
    expect(Math.abs(mark - poolBefore) / poolBefore).toBeLessThan(0.005);
    for (const name of Object.keys(t)) expect((await views(name)).liquidatable).toBe(false);
  });

  it("moves the mark with the pool, and makes the over-leveraged longs liquidatable", async () => {
    const trades = await dev.movePoolTo(ETH, "1800");
    expect(trades.length).toBe(2); // ~10.5% in steps of at most 9%
    const pool = (await dev.poolPrice(ETH)).price;
    expect(pool).toBeCloseTo(1800, 6);
    const mark = fromX18(await dev.markPrice(ETH));
    expect(Math.abs(mark - pool) / pool).toBeLessThan(0.002);
    // vBTC did not move
    expect(fromX18(await dev.markPrice(BTC))).toBeGreaterThan(29_900);

    const v: Record<string, PerpV2AccountView> = {};
    for (const name of Object.keys(t)) v[name] = await views(name);
    const liquidatable = Object.keys(t).filter((name) => v[name]?.liquidatable);
    expect(liquidatable.sort()).toEqual(["A", "B", "cross", "tiny"]);
    for (const name of Object.keys(t)) {
      const view = v[name] as PerpV2AccountView;
      // the views agree with the protocol's own rule: accountValue < totalAbsPositionValue × 6.25%
      expect(view.marginRequirement).toBe((view.totalAbsPositionValue * 62_500n) / 1_000_000n);
      expect(view.liquidatable).toBe(view.accountValue < view.marginRequirement);
      if (!view.liquidatable) for (const m of view.markets) expect(m.liquidatablePositionSize).toBe(0n);
    }
  });

  it("lets a liquidator take 100% below a 3.125% margin ratio, 50% between 3.125% and 6.25% in one market", async () => {
    const a = await views("A");
    expect(a.marginRatio).toBeGreaterThan(0);
    expect(a.marginRatio).toBeLessThan(0.03125);
    expect(market(a, ETH).liquidatablePositionSize).toBe(market(a, ETH).positionSize);

    const b = await views("B");
    expect(b.marginRatio).toBeGreaterThanOrEqual(0.03125);
    expect(b.marginRatio).toBeLessThan(0.0625);
    expect(market(b, ETH).liquidatablePositionSize).toBe((market(b, ETH).positionSize * 500_000n) / 1_000_000n);

    // a position worth ≤ $100 goes whole, whatever the ratio
    const tiny = await views("tiny");
    expect(tiny.marginRatio).toBeGreaterThanOrEqual(0.03125);
    expect(fromX18(market(tiny, ETH).positionValue)).toBeLessThanOrEqual(100);
    expect(market(tiny, ETH).liquidatablePositionSize).toBe(market(tiny, ETH).positionSize);

    // cross margin: the share is totalAbsPositionValue / (2·|positionValue|) per market, capped at 100%
    const cross = await views("cross");
    expect(cross.marginRatio).toBeGreaterThanOrEqual(0.03125);
    for (const name of [ETH, BTC]) {
      const m = market(cross, name);
      const abs = m.positionValue < 0n ? -m.positionValue : m.positionValue;
      let ratio = (cross.totalAbsPositionValue * 1_000_000n) / (2n * abs);
      if (ratio > 1_000_000n) ratio = 1_000_000n;
      expect(m.liquidatablePositionSize).toBe((m.positionSize * ratio) / 1_000_000n);
    }
    expect(market(cross, ETH).liquidatablePositionSize).not.toBe(market(cross, ETH).positionSize);
    expect(market(cross, BTC).liquidatablePositionSize).toBe(market(cross, BTC).positionSize);
  });

  it("liquidates through PerpV2Liquidator: a batch that skips a healthy trader, only for its owner and operators", async () => {
    liquidator = await dev.deployLiquidator(contractOwner);
    await dev.fundLiquidator(contractOwner, liquidator, "100000");
    const client = dev.publicClient;
    expect(
      await client.readContract({
        address: dev.d.vault,
        abi: abis.vaultAbi,
        functionName: "getFreeCollateral",
        args: [liquidator],
      }),
    ).toBe(100_000n * 10n ** 6n);

    const items = [
      { trader: (t.A as Wallet).account.address, baseToken: dev.market(ETH).baseToken, positionSize: 0n },
      { trader: (t.C as Wallet).account.address, baseToken: dev.market(ETH).baseToken, positionSize: 0n },
    ];
    // nobody else may use it
    await expect(
      client.simulateContract({
        account: operator.account,
        address: liquidator,
        abi: perpV2LiquidatorAbi,
        functionName: "liquidateBatch",
        args: [items],
      }),
    ).rejects.toThrow(/NotOperator/);
    await dev.tx.call(contractOwner, "PerpV2Liquidator.setOperator", {
      address: liquidator,
      abi: perpV2LiquidatorAbi,
      functionName: "setOperator",
      args: [operator.account.address, true],
      gas: 100_000n,
    });

    const sizeA = market(await views("A"), ETH).positionSize;
    const receipt = await dev.liquidateBatch(operator, liquidator, items);
    const events = decodePerpV2Events(receipt.logs);
    const liquidated = events.filter((e) => e.eventName === "PositionLiquidated");
    expect(liquidated).toHaveLength(1);
    expect(liquidated[0]?.args).toMatchObject({
      trader: items[0]?.trader,
      baseToken: dev.market(ETH).baseToken,
      positionSize: sizeA,
      liquidator,
    });
    const failed = events.filter((e) => e.eventName === "LiquidationFailed");
    expect(failed).toHaveLength(1);
    const failure = failed[0]?.args as { trader: Address; baseToken: Address; reason: Hex } | undefined;
    expect(failure?.trader).toBe(items[1]?.trader);
    const reason = failure?.reason ?? "0x";
    expect(decodeErrorResult({ abi: parseAbi(["error Error(string)"]), data: reason }).args[0]).toBe("CH_EAV");

    // the contract now holds A's long, and A holds nothing
    expect(market(await views("A"), ETH).positionSize).toBe(0n);
    expect(market(await dev.views(liquidator), ETH).positionSize).toBe(sizeA);
  });

  it("liquidates from an EOA with a Vault deposit: half of a 50% trader, then the rest of the pattern", async () => {
    const before = market(await views("B"), ETH);
    const receipt = await dev.liquidate(eoaLiquidator, (t.B as Wallet).account.address, ETH);
    const liquidated = decodePerpV2Events(receipt.logs).filter((e) => e.eventName === "PositionLiquidated");
    expect(liquidated).toHaveLength(1);
    const args = liquidated[0]?.args as { positionSize: bigint; liquidator: Address; liquidationFee: bigint };
    expect(args.liquidator).toBe(eoaLiquidator.account.address);
    expect(args.positionSize).toBe(before.liquidatablePositionSize);
    expect(args.liquidationFee).toBeGreaterThan(0n);
    expect(market(await views("B"), ETH).positionSize).toBe(before.positionSize - before.liquidatablePositionSize);
    expect(market(await dev.views(eoaLiquidator), ETH).positionSize).toBe(before.liquidatablePositionSize);

    // the $100 rule: all of tiny's position in one call
    const tinySize = market(await views("tiny"), ETH).positionSize;
    await dev.liquidate(eoaLiquidator, (t.tiny as Wallet).account.address, ETH);
    expect(market(await views("tiny"), ETH).positionSize).toBe(0n);
    expect(market(await dev.views(eoaLiquidator), ETH).positionSize).toBe(before.liquidatablePositionSize + tinySize);
  });

  it("closes the liquidators' inherited positions through the pool and withdraws the contract's collateral", async () => {
    await dev.liquidatorClosePosition(operator, liquidator, ETH);
    expect(market(await dev.views(liquidator), ETH).positionSize).toBe(0n);
    const closed = await dev.closePosition(eoaLiquidator, ETH);
    expect(closed.change?.exchangedPositionSize).toBeLessThan(0n);
    expect(market(await dev.views(eoaLiquidator), ETH).positionSize).toBe(0n);

    const client = dev.publicClient;
    const free = await client.readContract({
      address: dev.d.vault,
      abi: abis.vaultAbi,
      functionName: "getFreeCollateral",
      args: [liquidator],
    });
    expect(free).toBeGreaterThan(0n);
    const balanceBefore = await client.readContract({
      address: dev.d.usdc,
      abi: testUSDCAbi,
      functionName: "balanceOf",
      args: [contractOwner.account.address],
    });
    await dev.liquidatorWithdraw(operator, liquidator, free);
    const balanceAfter = await client.readContract({
      address: dev.d.usdc,
      abi: testUSDCAbi,
      functionName: "balanceOf",
      args: [contractOwner.account.address],
    });
    expect(balanceAfter - balanceBefore).toBe(free);
  });

  it("cancels a liquidatable maker's orders through PerpV2Liquidator, after which it can be liquidated", async () => {
    const m2 = dev.account(13);
    const btc = dev.market(BTC).baseToken;
    await dev.fund(m2, "4400");
    await dev.addLiquidity(m2, BTC, "1", "30000", priceToTick(28_000), priceToTick(31_000));
    const hasOrder = (who: Address) =>
      dev.publicClient.readContract({
        address: dev.d.accountBalance,
        abi: abis.accountBalanceAbi,
        functionName: "hasOrder",
        args: [who],
      });
    expect(await hasOrder(m2.account.address)).toBe(true);
    expect((await dev.views(m2)).liquidatable).toBe(false);

    expect((await dev.crash(BTC, "26000")).length).toBe(2); // -13%: two steps
    const before = await dev.views(m2);
    expect(before.liquidatable).toBe(true);
    // its position is the orders' impermanent one: liquidate refuses while the orders are there
    await expect(
      dev.publicClient.simulateContract({
        account: eoaLiquidator.account,
        address: dev.d.clearingHouse,
        abi: abis.clearingHouseAbi,
        functionName: "liquidate",
        args: [m2.account.address, btc, 0n],
      }),
    ).rejects.toThrow(/CH_CLWTISO/);

    await dev.fundLiquidator(contractOwner, liquidator, "50000");
    // a healthy maker's orders stay, and the call says why without reverting
    const kept = await dev.liquidatorCancelExcessOrders(operator, liquidator, maker.account.address, BTC);
    const keptEvents = decodePerpV2Events(kept.logs);
    expect(keptEvents.map((e) => e.eventName)).toEqual(["CancelExcessOrdersFailed"]);
    const keptReason = (keptEvents[0]?.args as { reason: Hex } | undefined)?.reason ?? "0x";
    expect(decodeErrorResult({ abi: parseAbi(["error Error(string)"]), data: keptReason }).args[0]).toBe("CH_NEXO");
    expect(await hasOrder(maker.account.address)).toBe(true);

    const cancelled = await dev.liquidatorCancelExcessOrders(operator, liquidator, m2.account.address, BTC);
    const names = decodePerpV2Events(cancelled.logs).map((e) => e.eventName);
    expect(names).toContain("LiquidityChanged");
    expect(names).not.toContain("CancelExcessOrdersFailed");
    expect(await hasOrder(m2.account.address)).toBe(false);

    const after = market(await dev.views(m2), BTC);
    expect(after.positionSize).toBe(market(before, BTC).positionSize);
    expect(after.liquidatablePositionSize).not.toBe(0n);
    const receipt = await dev.liquidateBatch(operator, liquidator, [
      { trader: m2.account.address, baseToken: btc, positionSize: 0n },
    ]);
    const liquidated = decodePerpV2Events(receipt.logs).filter((e) => e.eventName === "PositionLiquidated");
    expect(liquidated.map((e) => (e.args as { positionSize: bigint }).positionSize)).toEqual([
      after.liquidatablePositionSize,
    ]);
  });
});

describe("Perp v2 on Anvil with --block-time 1 and the protocol's mark-price config", () => {
  let anvil: Anvil | undefined;

  afterAll(async () => {
    await anvil?.stop();
  });

  it("deploys in a few blocks, trades several accounts in one block, and the mark follows a moved pool", async () => {
    anvil = await startAnvil({ accounts: 10, blockTime: 1 });
    const dev = await PerpV2Devnet.deploy(anvil.rpcUrl, {
      markPrice: "protocol",
      markets: [{ name: ETH, price: "2000" }],
    });
    // the deploy's ~70 transactions share a handful of 30M blocks (none dropped: the sender keeps a block's worth in flight)
    const head = await dev.publicClient.getBlockNumber({ cacheTime: 0 });
    expect(head).toBeLessThan(12n);
    expect(
      await dev.publicClient.readContract({
        address: dev.d.clearingHouseConfig,
        abi: abis.clearingHouseConfigAbi,
        functionName: "getMarkPriceConfig",
      }),
    ).toEqual([1800, 900]);

    const [maker, a, b] = [dev.account(1), dev.account(5), dev.account(6)];
    await dev.fundMany([
      { trader: maker, usdc: "5000000" },
      { trader: a, usdc: "1000" },
      { trader: b, usdc: "1000" },
    ]);
    await dev.addLiquidity(maker, ETH, "10000", "20000000");
    const trades = await dev.openPositions([
      { trader: a, base: ETH, args: { isBaseToQuote: false, isExactInput: true, amount: "8000" } },
      { trader: b, base: ETH, args: { isBaseToQuote: true, isExactInput: false, amount: "5000" } },
    ]);
    expect(trades[0]?.receipt.blockNumber).toBe(trades[1]?.receipt.blockNumber);

    // with the 30-minute market TWAP in the median, the mark holds on an index move, then follows the pool
    await dev.setIndexPrice(ETH, "1800");
    expect(fromX18(await dev.markPrice(ETH))).toBeGreaterThan(1990);
    await dev.movePoolTo(ETH, "1800");
    await dev.warp(60);
    const mark = fromX18(await dev.markPrice(ETH));
    expect(mark).toBeGreaterThan(1795);
    expect(mark).toBeLessThan(1810);
    const view = await dev.views(a);
    expect(view.liquidatable).toBe(true);
    expect((await dev.views(b)).liquidatable).toBe(false);
  });
});
