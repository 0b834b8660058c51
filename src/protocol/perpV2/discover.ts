/**
 * Discovery of a Perp v2 deployment from its ClearingHouse, and the reads a head needs: the contracts (ClearingHouse
 * getters), the parameters the book starts from (read at the start block: ClearingHouseConfig has no event for
 * mmRatio and imRatio, which have no setter, and the others' events only tell later changes), the markets listed
 * (MarketRegistry.PoolAdded), and per market the three prices of a PriceView (margin.ts).
 */
import type { Address, Hex, PublicClient } from "viem";
import { decodeFunctionResult, encodeFunctionData } from "viem";
import type { PriceView, ReadCall } from "../types.ts";
import {
  accountBalanceAbi,
  baseTokenAbi,
  clearingHouseAbi,
  clearingHouseConfigAbi,
  exchangeAbi,
  marketRegistryAbi,
  vaultAbi,
} from "./abi.ts";
import type { PerpV2Contracts } from "./events.ts";
import { Q96, WAD } from "./math.ts";
import type { PerpV2Global, PerpV2Market } from "./records.ts";

export interface PerpV2Deployment {
  readonly contracts: PerpV2Contracts & {
    readonly orderBook: Address;
    readonly insuranceFund: Address;
    readonly quoteToken: Address;
  };
  /** The parameters at the block read, with no market listed yet (PoolAdded events list them). */
  readonly global: PerpV2Global;
}

const lower = (a: Address): Address => a.toLowerCase() as Address;

/** Reads the deployment behind a ClearingHouse at `blockNumber`; `fromBlock` bounds the PoolAdded scan of base tokens. */
export async function discoverPerpV2(
  client: PublicClient,
  clearingHouse: Address,
  options: { readonly blockNumber: bigint; readonly fromBlock?: bigint },
): Promise<PerpV2Deployment> {
  const { blockNumber } = options;
  const ch = <
    N extends
      | "getVault"
      | "getExchange"
      | "getAccountBalance"
      | "getOrderBook"
      | "getClearingHouseConfig"
      | "getInsuranceFund"
      | "getQuoteToken",
  >(
    functionName: N,
  ) =>
    client.readContract({
      address: clearingHouse,
      abi: clearingHouseAbi,
      functionName,
      blockNumber,
    }) as Promise<Address>;
  const [vault, exchange, accountBalance, orderBook, clearingHouseConfig, insuranceFund, quoteToken] =
    await Promise.all([
      ch("getVault"),
      ch("getExchange"),
      ch("getAccountBalance"),
      ch("getOrderBook"),
      ch("getClearingHouseConfig"),
      ch("getInsuranceFund"),
      ch("getQuoteToken"),
    ]);
  const config = <
    N extends "getMmRatio" | "getImRatio" | "getLiquidationPenaltyRatio" | "getMaxFundingRate" | "getTwapInterval",
  >(
    functionName: N,
  ) => client.readContract({ address: clearingHouseConfig, abi: clearingHouseConfigAbi, functionName, blockNumber });
  const [marketRegistry, settlementToken, decimals, mm, im, penalty, maxFunding, twap] = await Promise.all([
    client.readContract({ address: exchange, abi: exchangeAbi, functionName: "getMarketRegistry", blockNumber }),
    client.readContract({ address: vault, abi: vaultAbi, functionName: "getSettlementToken", blockNumber }),
    client.readContract({ address: vault, abi: vaultAbi, functionName: "decimals", blockNumber }),
    config("getMmRatio"),
    config("getImRatio"),
    config("getLiquidationPenaltyRatio"),
    config("getMaxFundingRate"),
    config("getTwapInterval"),
  ]);
  const poolAdded = marketRegistryAbi.find(
    (i): i is Extract<(typeof marketRegistryAbi)[number], { type: "event" }> => i.type === "event",
  );
  const pools = await client.getLogs({
    address: marketRegistry,
    event: poolAdded,
    fromBlock: options.fromBlock ?? 0n,
    toBlock: blockNumber,
  });
  const baseTokens = pools.map((l) => lower(`0x${(l.topics[1] as Hex).slice(26)}` as Address));
  return {
    contracts: {
      clearingHouse: lower(clearingHouse),
      accountBalance: lower(accountBalance),
      vault: lower(vault),
      exchange: lower(exchange),
      marketRegistry: lower(marketRegistry),
      clearingHouseConfig: lower(clearingHouseConfig),
      orderBook: lower(orderBook),
      insuranceFund: lower(insuranceFund),
      quoteToken: lower(quoteToken),
      baseTokens,
    },
    global: {
      mmRatio: BigInt(mm as number),
      imRatio: BigInt(im as number),
      liquidationPenaltyRatio: BigInt(penalty as number),
      maxFundingRate: BigInt(maxFunding as number),
      twapInterval: BigInt(twap as number),
      settlementToken: lower(settlementToken),
      settlementDecimals: decimals,
      insuranceFund: lower(insuranceFund),
      marketsByBase: new Map(),
    },
  };
}

/**
 * Per market, the three reads of a head's PriceView: AccountBalance.getMarkPrice(base), BaseToken.getIndexPrice(interval)
 * and Exchange.getSqrtMarketTwapX96(base, interval), where `interval(market)` is the one the Exchange's funding uses:
 * ClearingHouseConfig.twapInterval, or the seconds since the market's first swap when fewer, 0 before it
 * (Exchange.sol:559-567).
 */
export function priceReads(
  markets: readonly PerpV2Market[],
  contracts: Pick<PerpV2Contracts, "accountBalance" | "exchange">,
  interval: (market: PerpV2Market) => bigint,
): ReadCall[] {
  return markets.flatMap((m) => [
    {
      to: contracts.accountBalance,
      data: encodeFunctionData({ abi: accountBalanceAbi, functionName: "getMarkPrice", args: [m.baseToken] }),
    },
    {
      to: m.baseToken,
      data: encodeFunctionData({ abi: baseTokenAbi, functionName: "getIndexPrice", args: [interval(m)] }),
    },
    {
      to: contracts.exchange,
      data: encodeFunctionData({
        abi: exchangeAbi,
        functionName: "getSqrtMarketTwapX96",
        args: [m.baseToken, Number(interval(m))],
      }),
    },
  ]);
}

/** PerpMath.formatSqrtPriceX96ToPriceX96 then formatX96ToX10_18. */
export function sqrtPriceX96ToWad(sqrtPriceX96: bigint): bigint {
  return (((sqrtPriceX96 * sqrtPriceX96) / Q96) * WAD) / Q96;
}

/** The PriceView of priceReads' results (a failed read: that price is absent). */
export function priceViewOf(
  markets: readonly PerpV2Market[],
  results: readonly (Hex | undefined)[],
  head: { readonly timestamp: bigint; readonly blockNumber: bigint },
): PriceView {
  const prices = new Map<number, bigint>();
  markets.forEach((m, i) => {
    const [mark, index, twap] = [results[3 * i], results[3 * i + 1], results[3 * i + 2]];
    if (mark)
      prices.set(m.priceId, decodeFunctionResult({ abi: accountBalanceAbi, functionName: "getMarkPrice", data: mark }));
    if (index)
      prices.set(
        m.indexTwapId,
        decodeFunctionResult({ abi: baseTokenAbi, functionName: "getIndexPrice", data: index }),
      );
    if (twap) {
      const sqrt = decodeFunctionResult({ abi: exchangeAbi, functionName: "getSqrtMarketTwapX96", data: twap });
      prices.set(m.marketTwapId, sqrtPriceX96ToWad(sqrt));
    }
  });
  return { prices, timestamp: head.timestamp, blockNumber: head.blockNumber };
}
