/**
 * The reference exchange's trading rules on Anvil, and the promise its events make: a keeper rebuilds every
 * position from logs alone, whatever sequence of trades, margin changes, funding and liquidations produced it.
 */
import { type Address, BaseError, ContractFunctionRevertedError, parseUnits } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { perpEngineAbi } from "../../abi/PerpEngine.ts";
import { testUSDCAbi } from "../../abi/TestUSDC.ts";
import { ORACLE_DECIMALS } from "../../src/devnet/exchange.ts";
import { BTC, ETH } from "../../src/devnet/positions.ts";
import { Book, positionKey } from "../../src/protocol/perpEngine/book.ts";
import { health, WAD } from "../../src/protocol/perpEngine/math.ts";
import { decodePerpEngineLogs } from "../../src/protocol/perpEngine/protocol.ts";
import { fetchLogRanges } from "../../src/watcher/logs.ts";
import { type DevnetFixture, startDevnet } from "../helpers/devnet.ts";

let net: DevnetFixture;
const wad = (x: string) => parseUnits(x, 18);
const usdc = (x: string) => parseUnits(x, 6);

beforeAll(async () => {
  net = await startDevnet({ accounts: 12 });
  for (let i = 2; i < 12; i++) await net.ex.fund(net.ex.trader(i), usdc("1000000"));
});

afterAll(async () => {
  await net?.stop();
});

const engine = () => net.ex.d.engine;
const addr = (i: number): Address => net.ex.trader(i).account.address;
const position = (i: number, m: number) => net.ex.position(addr(i), m);
const read = <T>(functionName: string, args: readonly unknown[]) =>
  net.ex.publicClient.readContract({
    address: engine(),
    abi: perpEngineAbi,
    functionName,
    args,
  } as never) as Promise<T>;
const call = (i: number, functionName: string, args: readonly unknown[]) =>
  net.ex.send(net.ex.trader(i), { address: engine(), abi: perpEngineAbi, functionName, args });
const balance = (i: number) =>
  net.ex.publicClient.readContract({
    address: net.ex.d.collateral,
    abi: testUSDCAbi,
    functionName: "balanceOf",
    args: [addr(i)],
  });

/** The custom error a call reverts with (simulated, nothing sent). */
async function revertOf(i: number, functionName: string, args: readonly unknown[]): Promise<string | undefined> {
  try {
    await net.ex.publicClient.simulateContract({
      address: engine(),
      abi: perpEngineAbi,
      functionName,
      args,
      account: net.ex.trader(i).account,
    } as never);
    return undefined;
  } catch (error) {
    const revert = error instanceof BaseError ? error.walk((e) => e instanceof ContractFunctionRevertedError) : null;
    return revert instanceof ContractFunctionRevertedError ? revert.data?.errorName : "other";
  }
}

/** Signed division rounded toward +infinity (the contract's funding rounding). */
function ceilDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return q * b === a || a < 0n ? q : q + 1n;
}

describe("PerpEngine trading rules", () => {
  it("opens at the mark price with the fee taken from margin, and refuses more than the maximum leverage", async () => {
    // 21x on a 20x market: rejected
    expect(await revertOf(2, "trade", [BigInt(ETH), wad("4.2"), usdc("500")])).toBe("InsufficientMargin");
    await net.ex.trade(net.ex.trader(2), ETH, wad("4"), usdc("600")); // 10,000 of ETH at 2,500
    const p = await position(2, ETH);
    expect(p.size).toBe(wad("4"));
    expect(p.openNotional).toBe(wad("10000"));
    expect(p.margin).toBe(wad("600") - wad("5")); // 0.05% fee on 10,000
  });

  it("increases at the new price and reduces with realized PnL, rounded against the trader", async () => {
    await net.ex.setPrice(ETH, parseUnits("2600", ORACLE_DECIMALS));
    await net.ex.trade(net.ex.trader(2), ETH, wad("1"), 0n);
    let p = await position(2, ETH);
    expect(p.openNotional).toBe(wad("12600"));
    const marginBefore = p.margin;
    const indexBefore = p.lastFundingIndex;
    await net.ex.trade(net.ex.trader(2), ETH, -wad("2.5"), 0n); // close half at 2,600
    p = await position(2, ETH);
    expect(p.size).toBe(wad("2.5"));
    expect(p.openNotional).toBe(wad("6300"));
    // realized: 2.5 x 2,600 - 6,300 = 200, fee 0.05% of 6,500 = 3.25; and the funding the 5 ETH owed since the last
    // settlement (however many seconds passed between the two trades: it is read back, not assumed), rounded up
    const owed = ceilDiv(wad("5") * (p.lastFundingIndex - indexBefore), 10n ** 18n);
    expect(p.margin - marginBefore).toBe(wad("196.75") - owed);
  });

  it("lets margin be added, and removed only down to the initial requirement", async () => {
    const before = (await position(2, ETH)).margin;
    await call(2, "addMargin", [BigInt(ETH), usdc("100")]);
    expect((await position(2, ETH)).margin).toBeGreaterThan(before + wad("99.9"));
    // 2.5 ETH at 2,600 = 6,500 notional, initial 5% = 325; margin ~890 plus 200 of unrealized PnL
    expect(await revertOf(2, "removeMargin", [BigInt(ETH), usdc("800")])).toBe("InsufficientMargin");
    await call(2, "removeMargin", [BigInt(ETH), usdc("400")]);
    expect((await position(2, ETH)).margin).toBeLessThan(before - wad("299"));
  });

  it("flips a long into a short at the mark price", async () => {
    await net.ex.trade(net.ex.trader(2), ETH, -wad("3.5"), usdc("200"));
    const p = await position(2, ETH);
    expect(p.size).toBe(-wad("1"));
    expect(p.openNotional).toBe(wad("2600"));
  });

  it("closes a position and pays out its margin balance, rounded down to collateral units", async () => {
    await net.ex.trade(net.ex.trader(3), BTC, wad("0.1"), usdc("1000"));
    const p = await position(3, BTC);
    const before = await balance(3);
    await net.ex.trade(net.ex.trader(3), BTC, -wad("0.1"), 0n);
    expect((await position(3, BTC)).size).toBe(0n);
    const paid = (await balance(3)) - before;
    // margin minus the closing fee (0.05% of 6,000 = 3), give or take funding over a block or two
    const expected = (p.margin - wad("3")) / 10n ** 12n;
    expect(paid).toBeLessThanOrEqual(expected);
    expect(expected - paid).toBeLessThan(usdc("0.01"));
  });

  it("charges longs funding when the rate is positive, with time", async () => {
    await net.ex.trade(net.ex.trader(4), BTC, wad("1"), usdc("10000"));
    await net.ex.publicClient.request({ method: "evm_increaseTime" as never, params: [86_400] as never });
    await net.ex.setPrice(BTC, parseUnits("60000", ORACLE_DECIMALS)); // mines a block a day later, fresh oracle
    const p = await position(4, BTC);
    const index = await read<bigint>("currentFundingIndex", [BigInt(BTC)]);
    const owed = (p.size * (index - p.lastFundingIndex)) / WAD;
    // 1e-8 per second of 60,000 for a day: about 51.84 per BTC
    expect(Number(owed) / 1e18).toBeCloseTo(51.84, 0);
    const onChain = await read<bigint>("marginBalance", [addr(4), BigInt(BTC)]);
    const market = await read<{ maintenanceMarginRatio: bigint }>("market", [BigInt(BTC)]);
    expect(onChain).toBe(health(p, market.maintenanceMarginRatio, wad("60000"), index).marginBalance);
  });

  it("refuses to liquidate a healthy position, and books bad debt when it liquidates an underwater one", async () => {
    // a day passed since ETH's last answer: older than maxOracleAge, nothing trades on it
    expect(await revertOf(5, "trade", [BigInt(ETH), wad("1"), usdc("1000")])).toBe("StalePrice");
    await net.ex.setPrice(ETH, parseUnits("2600", ORACLE_DECIMALS));
    await net.ex.trade(net.ex.trader(5), ETH, wad("8"), usdc("1100")); // 20x at 2,600
    expect(await revertOf(6, "liquidate", [addr(5), BigInt(ETH)])).toBe("NotLiquidatable");
    await net.ex.setPrice(ETH, parseUnits("2400", ORACLE_DECIMALS)); // -7.7%: 8 x 200 = 1,600 lost on ~1,090
    const p = await position(5, ETH);
    const badDebtBefore = await read<bigint>("totalBadDebt", []);
    const keeperBefore = await balance(6);
    const hash = await call(6, "liquidate", [addr(5), BigInt(ETH)]);
    const receipt = await net.ex.publicClient.getTransactionReceipt({ hash });
    const block = await net.ex.publicClient.getBlock({ blockNumber: receipt.blockNumber });
    const m = await read<{
      maintenanceMarginRatio: bigint;
      liquidationFeeRatio: bigint;
      cumulativeFundingIndex: bigint;
      fundingRatePerSecond: bigint;
      lastFundingTime: bigint;
    }>("market", [BigInt(ETH)]);
    const index = m.cumulativeFundingIndex; // settled in the liquidation's own block
    expect(m.lastFundingTime).toBe(block.timestamp);
    const h = health(p, m.maintenanceMarginRatio, wad("2400"), index);
    const reward = (wad("19200") * m.liquidationFeeRatio) / WAD;
    expect(h.marginBalance).toBeLessThan(0n);
    expect((await read<bigint>("totalBadDebt", [])) - badDebtBefore).toBe(reward - h.marginBalance);
    expect((await balance(6)) - keeperBefore).toBe(reward / 10n ** 12n);
    expect((await position(5, ETH)).size).toBe(0n);
  });
});

describe("rebuilding from logs alone", () => {
  it("a book fed only the engine's events holds exactly the positions the contract holds", async () => {
    const book = new Book();
    await fetchLogRanges(net.ex.publicClient, {
      addresses: [engine()],
      fromBlock: net.ex.d.deployBlock,
      toBlock: await net.ex.publicClient.getBlockNumber({ cacheTime: 0 }),
      maxRange: 7n, // many small ranges on purpose
      onRange: (logs) => {
        for (const e of decodePerpEngineLogs(logs)) book.apply(e);
      },
    });
    let open = 0;
    for (let i = 2; i < 12; i++) {
      for (const m of [BTC, ETH]) {
        const onChain = await position(i, m);
        const local = book.positions.get(positionKey(m, addr(i)));
        if (onChain.size === 0n) {
          expect(local, `trader ${i} market ${m}`).toBeUndefined();
          continue;
        }
        open++;
        expect(local).toMatchObject({
          size: onChain.size,
          openNotional: onChain.openNotional,
          margin: onChain.margin,
          lastFundingIndex: onChain.lastFundingIndex,
        });
      }
    }
    expect(open).toBeGreaterThanOrEqual(2);
    for (const m of [BTC, ETH]) {
      const onChain = await read<{
        cumulativeFundingIndex: bigint;
        fundingRatePerSecond: bigint;
        lastFundingTime: bigint;
      }>("market", [BigInt(m)]);
      expect(book.markets.get(m)?.funding).toEqual({
        cumulativeFundingIndex: onChain.cumulativeFundingIndex,
        fundingRatePerSecond: onChain.fundingRatePerSecond,
        lastFundingTime: onChain.lastFundingTime,
      });
    }
  });
});
