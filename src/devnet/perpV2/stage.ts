/**
 * Staging a Perp v2 devnet for a run of the keeper (the demo, the tests, the benchmark): a maker's liquidity in
 * every market, the keeper's PerpV2Liquidator (deployed, its operators set, collateral deposited), and traders opened
 * from specs: each funded, then every leg opened, a few blocks in all.
 */
import type { Address } from "viem";
import { perpV2LiquidatorAbi } from "../../../abi/PerpV2Liquidator.ts";
import type { PerpV2Devnet } from "./scenario.ts";
import type { Wallet } from "./tx.ts";

export interface Leg {
  readonly market: "vETH" | "vBTC";
  readonly side: "long" | "short";
  /** USD notional (long: quote in, short: quote out). */
  readonly notional: string;
}

export interface TraderSpec {
  readonly name: string;
  /** USDC deposited before the legs are opened. */
  readonly usdc: string;
  readonly legs: readonly Leg[];
}

export interface Trader extends TraderSpec {
  readonly wallet: Wallet;
  /** Lower case. */
  readonly address: Address;
}

export const long = (market: Leg["market"], notional: number): Leg => ({
  market,
  side: "long",
  notional: String(notional),
});
export const short = (market: Leg["market"], notional: number): Leg => ({
  market,
  side: "short",
  notional: String(notional),
});
export const spec = (name: string, usdc: number, ...legs: Leg[]): TraderSpec => ({ name, usdc: String(usdc), legs });

/**
 * A maker's full-range liquidity in vETH (10,000 ETH + $20M at 2000) and vBTC (400 BTC + $12M at 30000), and the
 * devnet's arbitrageur (who moves pools to a price) funded.
 */
export async function stageMarkets(dev: PerpV2Devnet, maker: Wallet): Promise<void> {
  await dev.fundMany([
    { trader: maker, usdc: "20000000" },
    { trader: dev.arb, usdc: "10000000" },
  ]);
  await dev.addLiquidity(maker, "vETH", "10000", "20000000");
  await dev.addLiquidity(maker, "vBTC", "400", "12000000");
}

/** The keeper's PerpV2Liquidator: deployed by `owner`, `operators` allowed to send through it, `usdc` deposited. */
export async function stageLiquidator(
  dev: PerpV2Devnet,
  owner: Wallet,
  operators: readonly Address[],
  usdc: string,
): Promise<Address> {
  const liquidator = await dev.deployLiquidator(owner);
  for (const operator of operators) {
    await dev.tx.call(owner, "PerpV2Liquidator.setOperator", {
      address: liquidator,
      abi: perpV2LiquidatorAbi,
      functionName: "setOperator",
      args: [operator, true],
      gas: 100_000n,
    });
  }
  await dev.fundLiquidator(owner, liquidator, usdc);
  return liquidator;
}

/** Funds the traders (accounts firstIndex, firstIndex + 1, ...) and opens every leg. */
export async function openTraders(
  dev: PerpV2Devnet,
  firstIndex: number,
  specs: readonly TraderSpec[],
): Promise<Trader[]> {
  const traders = specs.map((s, i) => {
    const wallet = dev.account(firstIndex + i);
    return { ...s, wallet, address: wallet.account.address.toLowerCase() as Address };
  });
  await dev.fundMany(traders.map((t) => ({ trader: t.wallet, usdc: t.usdc })));
  await dev.openPositions(
    traders.flatMap((t) =>
      t.legs.map((leg) => ({
        trader: t.wallet,
        base: leg.market,
        args:
          leg.side === "long"
            ? { isBaseToQuote: false, isExactInput: true, amount: leg.notional }
            : { isBaseToQuote: true, isExactInput: false, amount: leg.notional },
      })),
    ),
  );
  return traders;
}
