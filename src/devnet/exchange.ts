/**
 * Deploys the reference exchange (collateral, Chainlink aggregators, PerpEngine) on a dev chain and drives it:
 * funding traders, opening positions, moving oracle prices. Used by the devnet script, the embedded demo, the
 * tests and the benchmarks; never by the keeper itself.
 */
import {
  type Account,
  type Address,
  type Chain,
  createPublicClient,
  createWalletClient,
  type Hex,
  http,
  type PublicClient,
  parseUnits,
  stringToHex,
  type Transport,
  type WalletClient,
} from "viem";
import { mnemonicToAccount, privateKeyToAccount } from "viem/accounts";
import { anvil } from "viem/chains";
import { createNonceManager, jsonRpc } from "viem/nonce";
import { eventfulAggregatorAbi, eventfulAggregatorBytecode } from "../../abi/EventfulAggregator.ts";
import { mockV3AggregatorAbi, mockV3AggregatorBytecode } from "../../abi/MockV3Aggregator.ts";
import { multicall3Bytecode } from "../../abi/Multicall3.ts";
import { perpEngineAbi, perpEngineBytecode } from "../../abi/PerpEngine.ts";
import { simpleAggregatorProxyAbi, simpleAggregatorProxyBytecode } from "../../abi/SimpleAggregatorProxy.ts";
import { testUSDCAbi, testUSDCBytecode } from "../../abi/TestUSDC.ts";
import { MULTICALL3_ADDRESS } from "../prices/chainlink/oracle.ts";
import { ANVIL_KEYS } from "./anvil.ts";

/**
 * Places a contract's code at an address on an Anvil chain, without a block and without its constructor's storage:
 * the runtime code is what the creation code (with its constructor arguments) returns, run in an eth_call.
 */
export async function placeCode(client: PublicClient, address: Address, creation: Hex): Promise<void> {
  const { data } = await client.call({ data: creation });
  if (!data) throw new Error(`the creation code for ${address} returned no runtime code`);
  await client.request({ method: "anvil_setCode", params: [address, data] } as never);
}

/**
 * Puts Multicall3 (contracts/Multicall3.sol) at its canonical address, as on a live chain: the keeper reads every
 * oracle through it.
 */
export async function installMulticall3(client: PublicClient): Promise<void> {
  const existing = await client.getCode({ address: MULTICALL3_ADDRESS });
  if (existing && existing !== "0x") return;
  await placeCode(client, MULTICALL3_ADDRESS, multicall3Bytecode);
}

export const ANVIL_MNEMONIC = "test test test test test test test test test test test junk";
export const ORACLE_DECIMALS = 8;
/** A dev chain mines at once: a transaction without a receipt after this long is lost, and says so. */
const RECEIPT_TIMEOUT_MS = 30_000;
export const COLLATERAL_DECIMALS = 6;

export interface MarketSpec {
  readonly name: string;
  /** Initial oracle price, in whole dollars or a decimal string. */
  readonly price: string;
  /** Ratios as decimal strings, e.g. "0.05". */
  readonly initialMarginRatio: string;
  readonly maintenanceMarginRatio: string;
  readonly liquidationFeeRatio: string;
  readonly tradingFeeRatio: string;
  readonly maxOracleAge: number;
  /** Funding rate per second as a fraction of the mark price (decimal string). */
  readonly fundingRatePerSecond?: string;
  /**
   * The oracle: Chainlink's MockV3Aggregator (default, emits no events), an aggregator that emits AnswerUpdated as
   * production ones do, or that one behind a proxy (the market reads the proxy; the events come from behind it).
   */
  readonly oracleKind?: "mock" | "eventful" | "eventful-proxy";
}

/** The devnet's markets: BTC and ETH at up to 20x. */
export const DEVNET_MARKETS: readonly MarketSpec[] = [
  {
    name: "BTC-USD",
    price: "60000",
    initialMarginRatio: "0.05",
    maintenanceMarginRatio: "0.025",
    liquidationFeeRatio: "0.005",
    tradingFeeRatio: "0.0005",
    maxOracleAge: 3600,
    fundingRatePerSecond: "0.00000001",
  },
  {
    name: "ETH-USD",
    price: "2500",
    initialMarginRatio: "0.05",
    maintenanceMarginRatio: "0.03",
    liquidationFeeRatio: "0.005",
    tradingFeeRatio: "0.0005",
    maxOracleAge: 3600,
    fundingRatePerSecond: "-0.000000005",
  },
];

export interface DeployedMarket {
  readonly id: number;
  readonly name: string;
  /** What the market reads (latestRoundData). */
  readonly oracle: Address;
  /** The aggregator that takes updateAnswer: the oracle itself, or the one behind its proxy. */
  readonly aggregator: Address;
}

export interface Deployment {
  readonly chainId: number;
  readonly engine: Address;
  readonly collateral: Address;
  readonly deployBlock: bigint;
  readonly markets: readonly DeployedMarket[];
}

type Wallet = WalletClient<Transport, Chain, Account>;

/** Clients for one dev chain: the deployer (owner of everything) and helpers for traders. */
export class DevExchange {
  readonly publicClient: PublicClient<Transport, Chain>;
  readonly owner: Wallet;
  private readonly wallets = new Map<string, Wallet>();
  /** Nonces of this chain's accounts: one manager per exchange, as viem's shared one outlives a restarted chain. */
  private readonly nonceManager = createNonceManager({ source: jsonRpc() });
  /** Per account, the last transaction sent: the next waits for it. */
  private readonly lanes = new Map<string, Promise<void>>();

  constructor(
    readonly rpcUrl: string,
    readonly deployment?: Deployment,
    ownerKey: Hex = ANVIL_KEYS[0],
  ) {
    const transport = http(rpcUrl, { timeout: 30_000, retryCount: 0 });
    this.publicClient = createPublicClient({ chain: anvil, transport, pollingInterval: 50 });
    this.owner = createWalletClient({
      chain: anvil,
      transport,
      account: privateKeyToAccount(ownerKey, { nonceManager: this.nonceManager }),
    });
  }

  /** A funded dev trader: account `index` of Anvil's mnemonic (start Anvil with enough --accounts). */
  trader(index: number): Wallet {
    const key = `trader:${index}`;
    let wallet = this.wallets.get(key);
    if (!wallet) {
      wallet = createWalletClient({
        chain: anvil,
        transport: http(this.rpcUrl, { timeout: 30_000, retryCount: 0 }),
        account: mnemonicToAccount(ANVIL_MNEMONIC, { addressIndex: index, nonceManager: this.nonceManager }),
      });
      this.wallets.set(key, wallet);
    }
    return wallet;
  }

  get d(): Deployment {
    if (!this.deployment) throw new Error("exchange not deployed");
    return this.deployment;
  }

  /** Deploys collateral, one aggregator per market and the engine; lists the markets; funds the pool. */
  static async deploy(rpcUrl: string, markets: readonly MarketSpec[] = DEVNET_MARKETS): Promise<DevExchange> {
    const bare = new DevExchange(rpcUrl);
    const { owner, publicClient } = bare;
    await installMulticall3(publicClient);
    const deployBlock = (await publicClient.getBlockNumber({ cacheTime: 0 })) + 1n;
    const deploy = async (abi: readonly unknown[], bytecode: Hex, args: readonly unknown[]) => {
      const hash = await owner.deployContract({ abi, bytecode, args } as Parameters<Wallet["deployContract"]>[0]);
      const receipt = await publicClient.waitForTransactionReceipt({ hash, timeout: RECEIPT_TIMEOUT_MS });
      if (!receipt.contractAddress) throw new Error("deployment produced no contract address");
      return receipt.contractAddress;
    };
    const collateral = await deploy(testUSDCAbi, testUSDCBytecode, []);
    const engine = await deploy(perpEngineAbi, perpEngineBytecode, [collateral, COLLATERAL_DECIMALS]);
    const deployed: DeployedMarket[] = [];
    for (const spec of markets) {
      const kind = spec.oracleKind ?? "mock";
      const aggregator = await deploy(
        kind === "mock" ? mockV3AggregatorAbi : eventfulAggregatorAbi,
        kind === "mock" ? mockV3AggregatorBytecode : eventfulAggregatorBytecode,
        [ORACLE_DECIMALS, parseUnits(spec.price, ORACLE_DECIMALS)],
      );
      const oracle =
        kind === "eventful-proxy"
          ? await deploy(simpleAggregatorProxyAbi, simpleAggregatorProxyBytecode, [aggregator])
          : aggregator;
      await bare.send(owner, {
        address: engine,
        abi: perpEngineAbi,
        functionName: "listMarket",
        args: [
          stringToHex(spec.name, { size: 32 }),
          oracle,
          parseUnits(spec.initialMarginRatio, 18),
          parseUnits(spec.maintenanceMarginRatio, 18),
          parseUnits(spec.liquidationFeeRatio, 18),
          parseUnits(spec.tradingFeeRatio, 18),
          spec.maxOracleAge,
        ],
      });
      const id = deployed.length;
      if (spec.fundingRatePerSecond) {
        await bare.send(owner, {
          address: engine,
          abi: perpEngineAbi,
          functionName: "setFundingRate",
          args: [BigInt(id), parseUnits(spec.fundingRatePerSecond, 18)],
        });
      }
      deployed.push({ id, name: spec.name, oracle, aggregator });
    }
    const ex = new DevExchange(rpcUrl, {
      chainId: await publicClient.getChainId(),
      engine,
      collateral,
      deployBlock,
      markets: deployed,
    });
    // The pool that pays traders' profits and keepers' rewards.
    await ex.send(ex.owner, {
      address: collateral,
      abi: testUSDCAbi,
      functionName: "mint",
      args: [engine, parseUnits("100000000", COLLATERAL_DECIMALS)],
    });
    return ex;
  }

  /** Sends a contract call and waits for a successful receipt. */
  async send(wallet: Wallet, call: Parameters<Wallet["writeContract"]>[0] | Record<string, unknown>): Promise<Hex> {
    // one account's transactions one after another: concurrent sends from one key race for nonces under load
    const key = wallet.account.address;
    const previous = this.lanes.get(key) ?? Promise.resolve();
    const sent = previous.catch(() => {}).then(() => this.sendNow(wallet, call));
    this.lanes.set(
      key,
      sent.then(
        () => {},
        () => {},
      ),
    );
    return sent;
  }

  private async sendNow(
    wallet: Wallet,
    call: Parameters<Wallet["writeContract"]>[0] | Record<string, unknown>,
  ): Promise<Hex> {
    // A fixed, generous limit: an estimate taken a block early misses the funding settlement's storage writes.
    let hash: Hex;
    try {
      hash = await wallet.writeContract({ gas: 1_000_000n, ...call } as Parameters<Wallet["writeContract"]>[0]);
    } catch (error) {
      // the nonce it took may never have reached the node: read it from the chain again rather than leave a gap
      this.nonceManager.reset({ address: wallet.account.address, chainId: this.publicClient.chain.id });
      throw error;
    }
    const receipt = await this.publicClient.waitForTransactionReceipt({ hash, timeout: RECEIPT_TIMEOUT_MS });
    if (receipt.status !== "success") {
      // replay it a block early to name the revert
      const replay = {
        ...(call as Record<string, unknown>),
        account: wallet.account,
        blockNumber: receipt.blockNumber - 1n,
      };
      await this.publicClient
        .simulateContract(replay as unknown as Parameters<PublicClient["simulateContract"]>[0])
        .catch((error: Error) => {
          throw new Error(`transaction ${hash} reverted: ${error.message.split("\n")[0]}`);
        });
      throw new Error(`transaction ${hash} reverted`);
    }
    return hash;
  }

  /** Forgets every account's local nonce (after a reorganisation removed some of their transactions). */
  forgetNonces(): void {
    const chainId = this.publicClient.chain.id;
    for (const wallet of [this.owner, ...this.wallets.values()]) {
      this.nonceManager.reset({ address: wallet.account.address, chainId });
    }
  }

  /** Mints collateral to a trader and approves the engine for it. */
  async fund(wallet: Wallet, amount: bigint): Promise<void> {
    await this.send(this.owner, {
      address: this.d.collateral,
      abi: testUSDCAbi,
      functionName: "mint",
      args: [wallet.account.address, amount],
    });
    await this.send(wallet, {
      address: this.d.collateral,
      abi: testUSDCAbi,
      functionName: "approve",
      args: [this.d.engine, 2n ** 256n - 1n],
    });
  }

  /** Trades `sizeDelta` (WAD base) depositing `marginDeposit` (collateral units). */
  async trade(wallet: Wallet, marketId: number, sizeDelta: bigint, marginDeposit: bigint): Promise<Hex> {
    return this.send(wallet, {
      address: this.d.engine,
      abi: perpEngineAbi,
      functionName: "trade",
      args: [BigInt(marketId), sizeDelta, marginDeposit],
    });
  }

  /** Sets a market's oracle answer (8 decimals) through its aggregator's updateAnswer (Chainlink's mock's). */
  async setPrice(marketId: number, answer: bigint): Promise<Hex> {
    const market = this.d.markets[marketId];
    if (!market) throw new Error(`unknown market ${marketId}`);
    return this.send(this.owner, {
      address: market.aggregator,
      abi: mockV3AggregatorAbi,
      functionName: "updateAnswer",
      args: [answer],
    });
  }

  async price(marketId: number): Promise<bigint> {
    const market = this.d.markets[marketId];
    if (!market) throw new Error(`unknown market ${marketId}`);
    return this.publicClient.readContract({
      address: market.aggregator,
      abi: mockV3AggregatorAbi,
      functionName: "latestAnswer",
    });
  }

  async isLiquidatable(trader: Address, marketId: number): Promise<boolean> {
    return this.publicClient.readContract({
      address: this.d.engine,
      abi: perpEngineAbi,
      functionName: "isLiquidatable",
      args: [trader, BigInt(marketId)],
    });
  }

  async position(trader: Address, marketId: number) {
    return this.publicClient.readContract({
      address: this.d.engine,
      abi: perpEngineAbi,
      functionName: "getPosition",
      args: [trader, BigInt(marketId)],
    });
  }
}
