/**
 * Perp v2 log decoding: every event the book uses, built with viem's encoders, decodes to its typed event; events of
 * a known contract the keeper does not use are skipped, logs of other addresses are not ours, and a log carrying a
 * used event's selector that does not decode throws.
 */
import { encodeAbiParameters, type Hex, pad, parseAbi, toHex } from "viem";
import { describe, expect, it } from "vitest";
import {
  accountBalanceAbi,
  baseTokenAbi,
  clearingHouseAbi,
  clearingHouseConfigAbi,
  exchangeAbi,
  marketRegistryAbi,
  vaultAbi,
} from "../../../src/protocol/perpV2/abi.ts";
import { PerpV2DecodeError, perpV2Decoder } from "../../../src/protocol/perpV2/events.ts";
import { CONTRACTS, ETH, IF, logOf, QUOTE, trader, USDC, WAD } from "./helpers.ts";

const decoder = perpV2Decoder(CONTRACTS);
const t1 = trader(1);
const t2 = trader(2);

describe("perp-v2 events", () => {
  it("decodes every used event with its fields, lower-case addresses, block position and timestamp", () => {
    const logs = [
      logOf(CONTRACTS.clearingHouse, clearingHouseAbi, "PositionChanged", {
        trader: t1,
        baseToken: ETH,
        exchangedPositionSize: -4n * WAD,
        exchangedPositionNotional: 8000n * WAD,
        fee: 8n * WAD,
        openNotional: -123n,
        realizedPnl: -5n,
        sqrtPriceAfterX96: 1n << 100n,
      }),
      logOf(CONTRACTS.clearingHouse, clearingHouseAbi, "PositionLiquidated", {
        trader: t1,
        baseToken: ETH,
        positionNotional: 7000n * WAD,
        positionSize: 3n * WAD,
        liquidationFee: 175n * WAD,
        liquidator: t2,
      }),
      logOf(CONTRACTS.clearingHouse, clearingHouseAbi, "LiquidityChanged", {
        maker: t2,
        baseToken: ETH,
        quoteToken: QUOTE,
        lowerTick: -887220,
        upperTick: 887220,
        base: -10n * WAD,
        quote: -20000n * WAD,
        liquidity: -(10n ** 20n),
        quoteFee: 3n,
      }),
      logOf(CONTRACTS.clearingHouse, clearingHouseAbi, "PositionClosed", {
        trader: t1,
        baseToken: ETH,
        closedPositionSize: 1n,
        closedPositionNotional: -2n,
        openNotional: 3n,
        realizedPnl: -4n,
        closedPrice: 5n,
      }),
      logOf(CONTRACTS.clearingHouse, clearingHouseAbi, "FundingPaymentSettled", {
        trader: t1,
        baseToken: ETH,
        fundingPayment: -77n,
      }),
      logOf(CONTRACTS.accountBalance, accountBalanceAbi, "PnlRealized", { trader: IF, amount: -(2n ** 200n) }),
      logOf(CONTRACTS.vault, vaultAbi, "Deposited", { collateralToken: USDC, trader: t1, amount: 1000n }),
      logOf(CONTRACTS.vault, vaultAbi, "Withdrawn", { collateralToken: USDC, trader: t1, amount: 10n }),
      logOf(CONTRACTS.vault, vaultAbi, "BadDebtSettled", { trader: t1, amount: 26_851_181n }),
      logOf(CONTRACTS.vault, vaultAbi, "CollateralLiquidated", {
        trader: t1,
        collateralToken: ETH,
        liquidator: t2,
        collateral: 1n,
        repaidSettlementWithoutInsuranceFundFeeX10_S: 2n,
        insuranceFundFeeX10_S: 3n,
        discountRatio: 50_000,
      }),
      logOf(CONTRACTS.exchange, exchangeAbi, "FundingUpdated", { baseToken: ETH, marketTwap: 1n, indexTwap: 2n }),
      logOf(CONTRACTS.marketRegistry, marketRegistryAbi, "PoolAdded", { baseToken: ETH, feeRatio: 3000, pool: t2 }),
      logOf(CONTRACTS.clearingHouseConfig, clearingHouseConfigAbi, "LiquidationPenaltyRatioChanged", {
        liquidationPenaltyRatio: 30_000,
      }),
      logOf(CONTRACTS.clearingHouseConfig, clearingHouseConfigAbi, "MaxFundingRateChanged", { rate: 50_000 }),
      logOf(CONTRACTS.clearingHouseConfig, clearingHouseConfigAbi, "TwapIntervalChanged", { twapInterval: 60n }),
      logOf(ETH, baseTokenAbi, "StatusUpdated", { status: 1 }),
    ].map((l, i) => ({ ...l, logIndex: toHex(i) }));
    const events = decoder.decode(logs);
    expect(events.map((e) => e.kind)).toEqual([
      "positionChanged",
      "positionLiquidated",
      "liquidityChanged",
      "positionClosed",
      "fundingPaymentSettled",
      "pnlRealized",
      "deposited",
      "withdrawn",
      "badDebtSettled",
      "collateralLiquidated",
      "fundingUpdated",
      "poolAdded",
      "liquidationPenaltyRatioChanged",
      "maxFundingRateChanged",
      "twapIntervalChanged",
      "statusUpdated",
    ]);
    expect(events[0]).toMatchObject({
      trader: t1.toLowerCase(),
      baseToken: ETH.toLowerCase(),
      exchangedPositionSize: -4n * WAD,
      exchangedPositionNotional: 8000n * WAD,
      fee: 8n * WAD,
      openNotional: -123n,
      realizedPnl: -5n,
      sqrtPriceAfterX96: 1n << 100n,
      ref: { blockNumber: 10n, logIndex: 0 },
      timestamp: 1_000_010n,
    });
    expect(events[1]).toMatchObject({
      liquidator: t2.toLowerCase(),
      liquidationFee: 175n * WAD,
      positionSize: 3n * WAD,
    });
    expect(events[2]).toMatchObject({
      lowerTick: -887220,
      upperTick: 887220,
      liquidity: -(10n ** 20n),
      base: -10n * WAD,
      quoteToken: QUOTE.toLowerCase(),
    });
    expect(events[4]).toMatchObject({ fundingPayment: -77n });
    expect(events[5]).toMatchObject({ trader: IF.toLowerCase(), amount: -(2n ** 200n) });
    expect(events[9]).toMatchObject({ repaidSettlement: 2n, insuranceFundFee: 3n, discountRatio: 50_000 });
    expect(events[12]).toMatchObject({ ratio: 30_000 });
    expect(events[15]).toMatchObject({ status: 1, baseToken: ETH.toLowerCase() });
  });

  it("skips unused events of known contracts and logs of other addresses", () => {
    const ownership = parseAbi(["event OwnershipTransferred(address indexed previousOwner, address indexed newOwner)"]);
    const fee = parseAbi(["event FeeRatioChanged(address baseToken, uint24 feeRatio)"]);
    const pnl = logOf(CONTRACTS.accountBalance, accountBalanceAbi, "PnlRealized", { trader: t1, amount: 5n });
    const logs = [
      logOf(CONTRACTS.clearingHouse, ownership, "OwnershipTransferred", { previousOwner: t1, newOwner: t2 }),
      logOf(CONTRACTS.marketRegistry, fee, "FeeRatioChanged", { baseToken: ETH, feeRatio: 1000 }),
      // PnlRealized's signature from an address that is not AccountBalance: not ours
      logOf(CONTRACTS.vault, accountBalanceAbi, "PnlRealized", { trader: t1, amount: 5n }),
      { ...pnl, address: pad(toHex(0xdead), { size: 20 }) },
      pnl,
    ];
    const events = decoder.decode(logs);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ kind: "pnlRealized", amount: 5n });
    // a base token not known at start: its status is not followed
    const other = perpV2Decoder({ ...CONTRACTS, baseTokens: [] });
    expect(other.decode([logOf(ETH, baseTokenAbi, "StatusUpdated", { status: 2 })])).toEqual([]);
  });

  it("throws on a used event's selector that does not decode", () => {
    const good = logOf(CONTRACTS.vault, vaultAbi, "Deposited", { collateralToken: USDC, trader: t1, amount: 1n });
    const cases = [
      { ...good, topics: good.topics.slice(0, 2) as [Hex, ...Hex[]] }, // a topic missing
      { ...good, data: "0x" as Hex }, // no data
      { ...good, data: `${good.data}00` as Hex }, // one byte too many
      { ...good, topics: [good.topics[0], `0x${"ff".repeat(32)}`, good.topics[2]] as [Hex, ...Hex[]] }, // dirty address
      // uint24 out of range
      {
        ...logOf(CONTRACTS.clearingHouseConfig, clearingHouseConfigAbi, "MaxFundingRateChanged", { rate: 1 }),
        data: encodeAbiParameters([{ type: "uint256" }], [1n << 30n]),
      },
      // int24 not sign-extended: 0x00...ffffff is 2^24 − 1, outside int24
      (() => {
        const l = logOf(CONTRACTS.clearingHouse, clearingHouseAbi, "LiquidityChanged", {
          maker: t1,
          baseToken: ETH,
          quoteToken: QUOTE,
          lowerTick: -1,
          upperTick: 1,
          base: 1n,
          quote: 1n,
          liquidity: 1n,
          quoteFee: 0n,
        });
        return { ...l, data: `0x${"0".repeat(58)}ffffff${l.data.slice(66)}` as Hex };
      })(),
    ];
    for (const log of cases) expect(() => decoder.decodeLog(log)).toThrow(PerpV2DecodeError);
  });

  it("needs the block's timestamp: from the log, or from timestampOf", () => {
    const log = logOf(
      CONTRACTS.vault,
      vaultAbi,
      "Deposited",
      { collateralToken: USDC, trader: t1, amount: 1n },
      {
        timestamp: null,
      },
    );
    expect(() => decoder.decodeLog(log)).toThrow(/blockTimestamp/);
    expect(decoder.decodeLog(log, { timestampOf: (b) => b * 12n })?.timestamp).toBe(120n);
  });

  it("lists the addresses to fetch logs of, lower case", () => {
    expect(decoder.addresses).toHaveLength(8);
    for (const a of decoder.addresses) expect(a).toBe(a.toLowerCase());
  });
});
