/**
 * discoverPerpV2 against Perp v2 deployed from its npm bytecode on Anvil: everything is found from the ClearingHouse
 * and matches the deployment record, a market added after the deploy is found (and not at a block before it), a
 * wrong address or a broken cross-reference is a ConfigError naming what is wrong. Also: the fragments of opsAbi.ts
 * against the artifacts.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  type Abi,
  type AbiFunction,
  type AbiParameter,
  type Address,
  encodeDeployData,
  getContractAddress,
  type Hex,
  parseUnits,
  zeroAddress,
} from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mockV3AggregatorAbi, mockV3AggregatorBytecode } from "../../../abi/MockV3Aggregator.ts";
import { ConfigError } from "../../../src/config/load.ts";
import { type Anvil, startAnvil } from "../../../src/devnet/anvil.ts";
import * as abis from "../../../src/devnet/perpV2/abis.ts";
import { perpV2Artifact } from "../../../src/devnet/perpV2/artifacts.ts";
import { ORACLE_DECIMALS, PERP_V2_DEPLOY_GAS, UNISWAP_FEE_TIER } from "../../../src/devnet/perpV2/deploy.ts";
import { priceToSqrtPriceX96 } from "../../../src/devnet/perpV2/math.ts";
import { PerpV2Devnet } from "../../../src/devnet/perpV2/scenario.ts";
import { describePerpV2, discoverPerpV2, type PerpV2Contracts } from "../../../src/protocol/perpV2/discover.ts";
import { PERP_V2_OPS_ABIS } from "../../../src/protocol/perpV2/opsAbi.ts";

const ARTIFACTS = join(process.cwd(), "node_modules", "@perp", "curie-contract", "artifacts", "contracts");

function typeOf(p: AbiParameter): string {
  if (p.type.startsWith("tuple")) {
    const components = (p as { components: readonly AbiParameter[] }).components;
    return `(${components.map(typeOf).join(",")})${p.type.slice(5)}`;
  }
  return p.type;
}
const shape = (f: AbiFunction) =>
  `${f.name}(${f.inputs.map(typeOf).join(",")}) ${f.stateMutability} returns (${f.outputs.map(typeOf).join(",")})`;

describe("opsAbi.ts fragments", () => {
  it("every one is in the npm artifact it stands for, with the same types and mutability", () => {
    const missing: string[] = [];
    for (const [contract, fragments] of Object.entries(PERP_V2_OPS_ABIS)) {
      const real = JSON.parse(readFileSync(join(ARTIFACTS, `${contract}.sol`, `${contract}.json`), "utf8")).abi as Abi;
      const shapes = new Set(real.filter((i): i is AbiFunction => i.type === "function").map(shape));
      for (const item of fragments as Abi) {
        if (item.type !== "function") missing.push(`${contract}: a ${item.type}`);
        else if (!shapes.has(shape(item))) missing.push(`${contract}: ${shape(item)}`);
      }
    }
    expect(missing).toEqual([]);
  });
});

/** Adds a market to a running deployment the way deployPerpV2 does (oracle, BaseToken below the quote, pool, registry). */
async function addMarket(
  dev: PerpV2Devnet,
  name: string,
  price: string,
): Promise<{ baseToken: Address; pool: Address }> {
  const G = PERP_V2_DEPLOY_GAS;
  const owner = dev.owner;
  const from = owner.account.address;
  const next = async () => getContractAddress({ from, nonce: BigInt(await dev.tx.nextNonce(from)) });
  const deploy = async (step: string, artifact: { abi: Abi; bytecode: Hex }, args: readonly unknown[], gas: bigint) => {
    const address = await next();
    const data = encodeDeployData({ abi: artifact.abi, bytecode: artifact.bytecode, args } as Parameters<
      typeof encodeDeployData
    >[0]);
    await dev.tx.send(owner, step, { data, gas });
    return address;
  };
  const call = (
    step: string,
    address: Address,
    abi: Abi,
    functionName: string,
    args: readonly unknown[],
    gas: bigint = G.setter,
  ) => dev.tx.call(owner, step, { address, abi, functionName, args, gas } as never);

  const aggregator = await deploy(
    "MockV3Aggregator",
    { abi: mockV3AggregatorAbi as Abi, bytecode: mockV3AggregatorBytecode },
    [ORACLE_DECIMALS, parseUnits(price, ORACLE_DECIMALS)],
    G.aggregator,
  );
  const feed = await deploy(
    "ChainlinkPriceFeedV3",
    perpV2Artifact("ChainlinkPriceFeedV3"),
    [aggregator, 86_400n, 900n],
    G.chainlinkPriceFeedV3,
  );
  const dispatcher = await deploy(
    "PriceFeedDispatcher",
    perpV2Artifact("PriceFeedDispatcher"),
    [feed],
    G.priceFeedDispatcher,
  );
  while (BigInt(await next()) >= BigInt(dev.d.quoteToken)) {
    await dev.tx.send(owner, "skip nonce", { to: from, data: "0x", gas: G.skipNonce });
  }
  const baseToken = await deploy("BaseToken", perpV2Artifact("BaseToken"), [], G.contracts.BaseToken);
  await call(
    "BaseToken.initialize",
    baseToken,
    abis.baseTokenAbi,
    "initialize",
    [`Perp Virtual ${name.slice(1)}`, name, dispatcher],
    G.initialize,
  );
  await call(
    "createPool",
    dev.d.uniswapV3Factory,
    abis.uniswapV3FactoryAbi,
    "createPool",
    [baseToken, dev.d.quoteToken, UNISWAP_FEE_TIER],
    G.createPool,
  );
  const pool = await dev.publicClient.readContract({
    address: dev.d.uniswapV3Factory,
    abi: abis.uniswapV3FactoryAbi,
    functionName: "getPool",
    args: [baseToken, dev.d.quoteToken, UNISWAP_FEE_TIER],
  });
  await call("BaseToken.addWhitelist(pool)", baseToken, abis.baseTokenAbi, "addWhitelist", [pool]);
  await call("QuoteToken.addWhitelist(pool)", dev.d.quoteToken, abis.virtualTokenAbi, "addWhitelist", [pool]);
  await call(
    "BaseToken.mintMaximumTo(CH)",
    baseToken,
    abis.baseTokenAbi,
    "mintMaximumTo",
    [dev.d.clearingHouse],
    G.mintMaximumTo,
  );
  await call("BaseToken.addWhitelist(CH)", baseToken, abis.baseTokenAbi, "addWhitelist", [dev.d.clearingHouse]);
  await call(
    "pool.initialize",
    pool,
    abis.uniswapV3PoolAbi,
    "initialize",
    [priceToSqrtPriceX96(price)],
    G.poolInitialize,
  );
  await call(
    "addPool",
    dev.d.marketRegistry,
    abis.marketRegistryAbi,
    "addPool",
    [baseToken, UNISWAP_FEE_TIER],
    G.addPool,
  );
  await call("setFeeRatio", dev.d.marketRegistry, abis.marketRegistryAbi, "setFeeRatio", [baseToken, 500]);
  await call("setInsuranceFundFeeRatio", dev.d.marketRegistry, abis.marketRegistryAbi, "setInsuranceFundFeeRatio", [
    baseToken,
    50_000,
  ]);
  await call("setMaxTickCrossedWithinBlock", dev.d.exchange, abis.exchangeAbi, "setMaxTickCrossedWithinBlock", [
    baseToken,
    800,
  ]);
  return { baseToken, pool };
}

/** The ConfigError a promise rejects with. */
async function configError(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error("expected a ConfigError, got a result");
}

describe("discoverPerpV2 on Anvil", () => {
  let anvil: Anvil | undefined;
  let dev: PerpV2Devnet;
  let first: PerpV2Contracts;
  let added: { baseToken: Address; pool: Address };

  beforeAll(async () => {
    anvil = await startAnvil({ accounts: 4 });
    dev = await PerpV2Devnet.deploy(anvil.rpcUrl, { markets: [{ name: "vETH", price: "2000" }] });
  }, 120_000);

  afterAll(async () => {
    await anvil?.stop();
  });

  const discover = (address: Address, options: Parameters<typeof discoverPerpV2>[2] = {}) =>
    discoverPerpV2(dev.publicClient, address, { deployBlock: dev.d.deployBlock, ...options });

  it("finds every contract, the settlement token, the market and the parameters from the ClearingHouse", async () => {
    const d = dev.d;
    first = await discover(d.clearingHouse);
    expect(first).toMatchObject({
      clearingHouse: d.clearingHouse,
      clearingHouseConfig: d.clearingHouseConfig,
      vault: d.vault,
      accountBalance: d.accountBalance,
      exchange: d.exchange,
      orderBook: d.orderBook,
      marketRegistry: d.marketRegistry,
      insuranceFund: d.insuranceFund,
      collateralManager: d.collateralManager,
      quoteToken: d.quoteToken,
      uniswapV3Factory: d.uniswapV3Factory,
      settlementToken: d.usdc,
      settlementDecimals: 6,
      settlementSymbol: "USDC",
      baseTokens: [d.markets[0]?.baseToken],
      deployBlock: d.deployBlock,
    });
    const eth = d.markets[0];
    expect(first.markets).toEqual([
      {
        baseToken: eth?.baseToken,
        pool: eth?.pool,
        name: "vETH",
        priceFeed: eth?.priceFeed,
        feeRatio: 1000,
        uniswapFeeRatio: UNISWAP_FEE_TIER,
        insuranceFundFeeRatio: 100_000,
        maxTickCrossedWithinBlock: 1000,
        status: "open",
        addedAtBlock: expect.any(BigInt),
      },
    ]);
    expect(first.markets[0]?.addedAtBlock).toBeGreaterThanOrEqual(d.deployBlock);
    expect(first.parameters).toEqual({
      mmRatio: 62_500n,
      imRatio: 100_000n,
      liquidationPenaltyRatio: 25_000n,
      maxFundingRate: 100_000n,
      twapInterval: 900n,
      maxMarketsPerAccount: 255,
      settlementTokenBalanceCap: 2n ** 256n - 1n,
      markPrice: { marketTwapInterval: 1n, premiumInterval: 1n },
    });
    const head = await dev.publicClient.getBlock({ blockTag: "latest" });
    expect(first.block).toEqual({ number: head.number, hash: head.hash });
    expect(describePerpV2(first)).toBe(
      `a Perp v2 ClearingHouse with 1 market (vETH), Vault ${d.vault}, settlement USDC (6 decimals), ` +
        "mmRatio 6.25%, imRatio 10%, penalty 2.5%",
    );
  });

  it("takes the address in any case, and reads in ranges of any size", async () => {
    const lower = await discover(dev.d.clearingHouse.toLowerCase() as Address, { maxLogRange: 1, logConcurrency: 2 });
    expect(lower).toEqual(first);
  });

  it("finds a market added after the deploy; at a block before it, only the first", async () => {
    added = await addMarket(dev, "vBTC", "30000");
    const now = await discover(dev.d.clearingHouse, { maxLogRange: 3 });
    expect(now.markets.map((m) => m.name)).toEqual(["vETH", "vBTC"]);
    expect(now.baseTokens).toEqual([dev.d.markets[0]?.baseToken, added.baseToken]);
    expect(now.markets[1]).toMatchObject({
      baseToken: added.baseToken,
      pool: added.pool,
      feeRatio: 500,
      insuranceFundFeeRatio: 50_000,
      maxTickCrossedWithinBlock: 800,
      status: "open",
    });
    expect(describePerpV2(now)).toContain("with 2 markets (vETH, vBTC)");

    // pinned to the first discovery's block (by hash, or by number), the later market is not there yet
    const before = await discover(dev.d.clearingHouse, { blockHash: first.block.hash });
    expect(before).toEqual(first);
    expect((await discover(dev.d.clearingHouse, { blockNumber: first.block.number })).markets).toHaveLength(1);

    // from a deploy block after the first market's addPool, only the later one is found
    const later = await discover(dev.d.clearingHouse, { deployBlock: (first.markets[0]?.addedAtBlock ?? 0n) + 1n });
    expect(later.markets.map((m) => m.name)).toEqual(["vBTC"]);
  });

  it("reports a paused market", async () => {
    await dev.tx.call(dev.owner, "pause vBTC", {
      address: added.baseToken,
      abi: [{ type: "function", name: "pause", inputs: [], outputs: [], stateMutability: "nonpayable" }] as const,
      functionName: "pause",
      args: [],
      gas: 300_000n,
    });
    const now = await discover(dev.d.clearingHouse);
    expect(now.markets[1]?.status).toBe("paused");
    expect(describePerpV2(now)).toContain("with 2 markets (vETH, vBTC paused)");
  });

  it("names a wrong address: another Perp contract, an EOA, a contract that is not Perp", async () => {
    expect(await configError(discover(dev.d.vault))).toBe(
      `exchange.address ${dev.d.vault} does not answer as a Perp v2 ClearingHouse (getVault reverted)`,
    );
    const eoa = dev.account(3).account.address;
    expect(await configError(discover(eoa))).toMatch(
      new RegExp(`^exchange\\.address ${eoa} has no code at block \\d+$`),
    );
    expect(await configError(discover(dev.d.usdc))).toBe(
      `exchange.address ${dev.d.usdc} does not answer as a Perp v2 ClearingHouse (getVault reverted)`,
    );
    // the keeper's own liquidator contract has a vault() but no getVault()
    const liquidator = await dev.deployLiquidator(dev.account(1));
    expect(await configError(discover(liquidator))).toBe(
      `exchange.address ${liquidator} does not answer as a Perp v2 ClearingHouse (getVault reverted)`,
    );
    expect(await configError(discover(zeroAddress))).toBe("exchange.address is the zero address (not set up?)");
    expect(
      await configError(discover(dev.d.clearingHouse, { addressName: "exchanges[1].address", deployBlock: 10n ** 9n })),
    ).toMatch(/^the deployBlock 1000000000 is above block \d+: wrong chain or config$/);
  });

  it("names a cross-reference that disagrees: the Vault pointing at another ClearingHouse", async () => {
    const setClearingHouse = (to: Address) =>
      dev.tx.call(dev.owner, "Vault.setClearingHouse", {
        address: dev.d.vault,
        abi: abis.vaultAbi,
        functionName: "setClearingHouse",
        args: [to],
        gas: 100_000n,
      });
    await setClearingHouse(dev.d.usdc);
    try {
      expect(await configError(discover(dev.d.clearingHouse))).toBe(
        `the Vault's ClearingHouse is ${dev.d.usdc}, not ${dev.d.clearingHouse} (exchange.address)`,
      );
    } finally {
      await setClearingHouse(dev.d.clearingHouse);
    }
    expect((await discover(dev.d.clearingHouse)).vault).toBe(dev.d.vault);
  });

  it("names a contract without code", async () => {
    const setCode = async (address: Address, code: Hex) => {
      await dev.publicClient.request({ method: "anvil_setCode", params: [address, code] } as never);
      await dev.warp(0);
    };
    const code = await dev.publicClient.getCode({ address: dev.d.exchange });
    await setCode(dev.d.exchange, "0x");
    try {
      expect(await configError(discover(dev.d.clearingHouse))).toMatch(
        new RegExp(`^the ClearingHouse's Exchange ${dev.d.exchange} has no code at block \\d+$`),
      );
    } finally {
      await setCode(dev.d.exchange, code ?? "0x");
    }
    expect((await discover(dev.d.clearingHouse)).exchange).toBe(dev.d.exchange);
  });
});
