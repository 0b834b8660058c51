/**
 * A head's prices for Perp v2, per market: the mark (AccountBalance.getMarkPrice), the index TWAP and the market TWAP
 * at the funding interval (BaseToken.getIndexPrice, Exchange.getSqrtMarketTwapX96), as the price ids of margin.ts.
 */
import type { Address, Hex } from "viem";
import { decodeFunctionResult, encodeFunctionData } from "viem";
import type { PriceView, ReadCall } from "../types.ts";
import { accountBalanceAbi, baseTokenAbi, exchangeAbi } from "./abi.ts";
import type { PerpV2Contracts as DiscoveredContracts } from "./discover.ts";
import type { PerpV2Contracts } from "./events.ts";
import { Q96, WAD } from "./math.ts";
import type { PerpV2Global, PerpV2Market } from "./records.ts";

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

/** A discovered deployment and the parameters its book starts from (no market listed: PoolAdded events list them). */
export interface PerpV2Deployment {
  readonly contracts: DiscoveredContracts;
  readonly global: PerpV2Global;
}

export function perpV2Deployment(contracts: DiscoveredContracts): PerpV2Deployment {
  const p = contracts.parameters;
  const lower = (a: Address): Address => a.toLowerCase() as Address;
  // the book keys every address in lower case (events decode them so)
  const low = Object.fromEntries(
    Object.entries(contracts).map(([k, v]) => [
      k,
      typeof v === "string" && /^0x[0-9a-fA-F]{40}$/.test(v) ? v.toLowerCase() : v,
    ]),
  ) as unknown as DiscoveredContracts;
  return {
    contracts: { ...low, baseTokens: contracts.baseTokens.map(lower) },
    global: {
      mmRatio: p.mmRatio,
      imRatio: p.imRatio,
      liquidationPenaltyRatio: p.liquidationPenaltyRatio,
      maxFundingRate: p.maxFundingRate,
      twapInterval: p.twapInterval,
      settlementToken: lower(contracts.settlementToken),
      settlementDecimals: contracts.settlementDecimals,
      insuranceFund: lower(contracts.insuranceFund),
      marketsByBase: new Map(),
    },
  };
}
