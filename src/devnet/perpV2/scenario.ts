/**
 * Drives a Perp v2 devnet (./deploy.ts): funds traders, adds maker liquidity, opens positions, moves the index and
 * the pool, and reads what decides liquidations. For the keeper's tests, demo and benchmarks; never the keeper itself.
 *
 * Accounts are Anvil's dev accounts from its mnemonic (`account(i)`): start Anvil with enough `accounts` for the
 * scenario (by default 0 is the deployer, 2 the arbitrageur that moves pools). Transactions go through a TxSender:
 * explicit gas limits, local nonces, receipts checked with the failing step named.
 */
import {
  type Address,
  type Chain,
  createPublicClient,
  createWalletClient,
  encodeDeployData,
  getContractAddress,
  type Hex,
  http,
  type Log,
  maxUint256,
  type PublicClient,
  parseEventLogs,
  parseUnits,
  type TransactionReceipt,
  type Transport,
} from "viem";
import { mnemonicToAccount, privateKeyToAccount } from "viem/accounts";
import { anvil } from "viem/chains";
import { mockV3AggregatorAbi } from "../../../abi/MockV3Aggregator.ts";
import { perpV2LiquidatorAbi, perpV2LiquidatorBytecode } from "../../../abi/PerpV2Liquidator.ts";
import { testUSDCAbi } from "../../../abi/TestUSDC.ts";
import { ANVIL_KEYS } from "../anvil.ts";
import { ANVIL_MNEMONIC } from "../exchange.ts";
import {
  accountBalanceAbi,
  baseTokenAbi,
  clearingHouseAbi,
  perpV2EventsAbi,
  uniswapV3PoolAbi,
  vaultAbi,
} from "./abis.ts";
import {
  advanceTime,
  deployPerpV2,
  ORACLE_DECIMALS,
  type PerpV2Deployment,
  type PerpV2DeployOptions,
  type PerpV2MarketDeployment,
  USDC_DECIMALS,
} from "./deploy.ts";
import {
  FULL_RANGE_LOWER_TICK,
  FULL_RANGE_UPPER_TICK,
  isqrt,
  priceToSqrtPriceX96,
  sqrtPriceX96ToPrice,
  toDecimalString,
} from "./math.ts";
import { type StepRecord, TxSender, type Wallet } from "./tx.ts";

/**
 * Gas limits of the scenario's transactions: about 1.4x the most each used on Anvil 1.7.1 (gasUsed in the comments,
 * automine and `--block-time 1`, both mark-price configs). Trades and liquidations cost more the more markets the
 * trader and the liquidator hold (every account-value read loops over them): pass `gas` for bigger accounts.
 */
export const PERP_V2_SCENARIO_GAS = {
  mint: 100_000n, // 53,154
  approve: 80_000n, // 46,269
  deposit: 200_000n, // Vault.deposit 80,972 .. 98,096
  withdraw: 400_000n, // 154,226 (through PerpV2Liquidator)
  addLiquidity: 2_200_000n, // 1,069,030 (first market) .. 1,362,255 (second)
  openPosition: 1_500_000n, // 622,937 .. 967,831 (a second market, interval mining)
  closePosition: 1_000_000n, // 467,125 .. 603,366
  liquidate: 2_900_000n, // 1,063,854 .. 1,508,413 (one market); 2,018,729 for a two-market trader in a batch
  /** Per item of PerpV2Liquidator.liquidateBatch (plus 150k for the call itself). */
  liquidateBatchItem: 2_900_000n,
  updateAnswer: 150_000n, // 103,300
  cancelExcessOrders: 1_500_000n,
  deployLiquidator: 2_500_000n, // about 1.5M with liquidateAndClose
  liquidatorCall: 400_000n, // deposit 117,889
} as const;

/** Long or short a market: Perp's OpenPositionParams without the fields the devnet fixes. */
export interface OpenPositionArgs {
  /** true: sell base (short / reduce a long); false: buy base. */
  readonly isBaseToQuote: boolean;
  /** true: `amount` is what goes in (base when selling, quote when buying); false: what comes out. */
  readonly isExactInput: boolean;
  /** 18 decimals (raw) when a bigint, whole units when a string. */
  readonly amount: bigint | string;
  /** The price the pool stops at (0: none): B2Q no lower than it, Q2B no higher. The swap fills up to it. */
  readonly sqrtPriceLimitX96?: bigint;
  readonly oppositeAmountBound?: bigint;
  readonly gas?: bigint;
}

/** ClearingHouse.PositionChanged, decoded. */
export interface PositionChange {
  readonly trader: Address;
  readonly baseToken: Address;
  readonly exchangedPositionSize: bigint;
  readonly exchangedPositionNotional: bigint;
  readonly fee: bigint;
  readonly openNotional: bigint;
  readonly realizedPnl: bigint;
  readonly sqrtPriceAfterX96: bigint;
}

export interface TradeResult {
  readonly receipt: TransactionReceipt;
  /** The trader's PositionChanged in this transaction (undefined if the trade filled nothing). */
  readonly change: PositionChange | undefined;
}

export interface PerpV2MarketView {
  readonly name: string;
  readonly baseToken: Address;
  /** AccountBalance.getTotalPositionSize (taker + maker), 18 decimals, signed. */
  readonly positionSize: bigint;
  /** AccountBalance.getTakerOpenNotional, 18 decimals (< 0 for a long). */
  readonly takerOpenNotional: bigint;
  /** AccountBalance.getTotalPositionValue at the mark price, 18 decimals, signed. */
  readonly positionValue: bigint;
  /** AccountBalance.getLiquidatablePositionSize(trader, base, accountValue): what liquidate(…, 0) would take. */
  readonly liquidatablePositionSize: bigint;
  /** AccountBalance.getMarkPrice, 18 decimals. */
  readonly markPrice: bigint;
}

export interface PerpV2AccountView {
  readonly trader: Address;
  /** The block all of it was read at. */
  readonly blockNumber: bigint;
  /** ClearingHouse.getAccountValue, 18 decimals. */
  readonly accountValue: bigint;
  /** AccountBalance.getMarginRequirementForLiquidation (total abs position value × mmRatio), 18 decimals. */
  readonly marginRequirement: bigint;
  /** AccountBalance.getTotalAbsPositionValue, 18 decimals. */
  readonly totalAbsPositionValue: bigint;
  /** Vault.getFreeCollateral, USDC units (6 decimals). */
  readonly freeCollateral: bigint;
  /** ClearingHouse's own condition: accountValue < marginRequirement. */
  readonly liquidatable: boolean;
  /** accountValue / totalAbsPositionValue (Infinity with no position). */
  readonly marginRatio: number;
  readonly markets: readonly PerpV2MarketView[];
}

/** One item of PerpV2Liquidator.liquidateBatch. */
export interface LiquidationItem {
  readonly trader: Address;
  readonly baseToken: Address;
  /** Same sign as the position; 0 takes the most allowed. */
  readonly positionSize: bigint;
}

export interface PerpV2DevnetOptions {
  /** The deployer's key (owner of every contract, minter of USDC); default Anvil's first. */
  readonly ownerKey?: Hex;
  /** The mnemonic of account(i) (default Anvil's). */
  readonly mnemonic?: string;
  /** The account that trades pools to a price (default 2). */
  readonly arbIndex?: number;
  /** USDC the arbitrageur deposits on its first move (default 10,000,000). */
  readonly arbUsdc?: string;
  /** Each confirmed transaction with its gas. */
  readonly onStep?: (record: StepRecord) => void;
}

const USDC = (amount: bigint | string) => (typeof amount === "bigint" ? amount : parseUnits(amount, USDC_DECIMALS));
const WAD = (amount: bigint | string) => (typeof amount === "bigint" ? amount : parseUnits(amount, 18));
/** An amount that no pool here can fill: trades given it stop at their price limit. */
const UNBOUNDED_AMOUNT = 10n ** 36n;

export class PerpV2Devnet {
  readonly publicClient: PublicClient<Transport, Chain>;
  readonly owner: Wallet;
  readonly tx: TxSender;
  private readonly chain: Chain;
  private readonly transport: Transport;
  private readonly wallets = new Map<number, Wallet>();
  private readonly approved = new Set<string>();
  private arbFunded = false;

  constructor(
    readonly rpcUrl: string,
    readonly d: PerpV2Deployment,
    private readonly options: PerpV2DevnetOptions = {},
  ) {
    this.transport = http(rpcUrl, { timeout: 60_000, retryCount: 0, batch: { wait: 0 } });
    this.chain = { ...anvil, id: d.chainId };
    this.publicClient = createPublicClient({ chain: this.chain, transport: this.transport, pollingInterval: 50 });
    this.owner = createWalletClient({
      chain: this.chain,
      transport: this.transport,
      account: privateKeyToAccount(options.ownerKey ?? ANVIL_KEYS[0]),
    });
    this.tx = new TxSender(this.publicClient, { onStep: options.onStep });
  }

  /** Deploys Perp v2 (deployPerpV2) and returns a devnet that drives it. */
  static async deploy(rpcUrl: string, options: PerpV2DeployOptions & PerpV2DevnetOptions = {}): Promise<PerpV2Devnet> {
    const ownerKey = options.ownerKey ?? options.deployerKey;
    const deployment = await deployPerpV2(rpcUrl, { ...options, deployerKey: ownerKey });
    return new PerpV2Devnet(rpcUrl, deployment, { ...options, ownerKey });
  }

  /** Dev account `index` of the mnemonic (0 is the deployer with Anvil's defaults). */
  account(index: number): Wallet {
    let wallet = this.wallets.get(index);
    if (!wallet) {
      wallet = createWalletClient({
        chain: this.chain,
        transport: this.transport,
        account: mnemonicToAccount(this.options.mnemonic ?? ANVIL_MNEMONIC, { addressIndex: index }),
      });
      this.wallets.set(index, wallet);
    }
    return wallet;
  }

  /** The arbitrageur that movePoolTo trades from. */
  get arb(): Wallet {
    return this.account(this.options.arbIndex ?? 2);
  }

  /** A market by base token address or name ("vETH"). */
  market(base: Address | string): PerpV2MarketDeployment {
    const key = base.toLowerCase();
    const market = this.d.markets.find((m) => m.baseToken.toLowerCase() === key || m.name.toLowerCase() === key);
    if (!market) throw new Error(`unknown Perp v2 market ${base}`);
    return market;
  }

  // ---- collateral -------------------------------------------------------------------------------------------

  /** Mints USDC to the trader, approves the Vault and deposits it: whole USDC as a string, raw units as a bigint. */
  async fund(trader: Wallet, usdc: bigint | string): Promise<void> {
    await this.fundMany([{ trader, usdc }]);
  }

  /** fund() for many traders at once: a block for the mints and approvals, one for the deposits. */
  async fundMany(entries: readonly { trader: Wallet; usdc: bigint | string }[]): Promise<void> {
    const G = PERP_V2_SCENARIO_GAS;
    const first = [];
    for (const { trader, usdc } of entries) {
      const who = trader.account.address;
      first.push(
        await this.tx.submitCall(this.owner, `USDC.mint(${who})`, {
          address: this.d.usdc,
          abi: testUSDCAbi,
          functionName: "mint",
          args: [who, USDC(usdc)],
          gas: G.mint,
        }),
      );
      const key = `${who}:${this.d.vault}`;
      if (!this.approved.has(key)) {
        first.push(
          await this.tx.submitCall(trader, `USDC.approve(Vault) by ${who}`, {
            address: this.d.usdc,
            abi: testUSDCAbi,
            functionName: "approve",
            args: [this.d.vault, maxUint256],
            gas: G.approve,
          }),
        );
        this.approved.add(key);
      }
    }
    await this.tx.confirm(first);
    const deposits = [];
    for (const { trader, usdc } of entries) {
      deposits.push(
        await this.tx.submitCall(trader, `Vault.deposit by ${trader.account.address}`, {
          address: this.d.vault,
          abi: vaultAbi,
          functionName: "deposit",
          args: [this.d.usdc, USDC(usdc)],
          gas: G.deposit,
        }),
      );
    }
    await this.tx.confirm(deposits);
  }

  /** Vault.withdraw of USDC (whole USDC as a string). */
  async withdraw(trader: Wallet, usdc: bigint | string): Promise<TransactionReceipt> {
    return this.tx.call(trader, `Vault.withdraw by ${trader.account.address}`, {
      address: this.d.vault,
      abi: vaultAbi,
      functionName: "withdraw",
      args: [this.d.usdc, USDC(usdc)],
      gas: PERP_V2_SCENARIO_GAS.withdraw,
    });
  }

  // ---- trading ----------------------------------------------------------------------------------------------

  /**
   * Adds maker liquidity (whole units as strings, raw 18-decimal as bigints) between two ticks, by default the full
   * range (±887220, multiples of the 60 tick spacing). The maker must have deposited collateral.
   */
  async addLiquidity(
    maker: Wallet,
    base: Address | string,
    baseAmount: bigint | string,
    quoteAmount: bigint | string,
    lowerTick = FULL_RANGE_LOWER_TICK,
    upperTick = FULL_RANGE_UPPER_TICK,
  ): Promise<TransactionReceipt> {
    const market = this.market(base);
    return this.tx.call(maker, `addLiquidity ${market.name} by ${maker.account.address}`, {
      address: this.d.clearingHouse,
      abi: clearingHouseAbi,
      functionName: "addLiquidity",
      args: [
        {
          baseToken: market.baseToken,
          base: WAD(baseAmount),
          quote: WAD(quoteAmount),
          lowerTick,
          upperTick,
          minBase: 0n,
          minQuote: 0n,
          useTakerBalance: false,
          deadline: maxUint256,
        },
      ],
      gas: PERP_V2_SCENARIO_GAS.addLiquidity,
    });
  }

  /** ClearingHouse.openPosition, sent and confirmed. */
  async openPosition(trader: Wallet, base: Address | string, args: OpenPositionArgs): Promise<TradeResult> {
    const [result] = await this.openPositions([{ trader, base, args }]);
    return result as TradeResult;
  }

  /** Many openPosition calls in flight at once (different traders: one block under interval mining). */
  async openPositions(
    trades: readonly { trader: Wallet; base: Address | string; args: OpenPositionArgs }[],
  ): Promise<TradeResult[]> {
    const pending = [];
    for (const { trader, base, args } of trades) {
      const market = this.market(base);
      const side = args.isBaseToQuote ? "short" : "long";
      pending.push(
        await this.tx.submitCall(trader, `openPosition ${side} ${market.name} by ${trader.account.address}`, {
          address: this.d.clearingHouse,
          abi: clearingHouseAbi,
          functionName: "openPosition",
          args: [
            {
              baseToken: market.baseToken,
              isBaseToQuote: args.isBaseToQuote,
              isExactInput: args.isExactInput,
              amount: WAD(args.amount),
              oppositeAmountBound: args.oppositeAmountBound ?? 0n,
              deadline: maxUint256,
              sqrtPriceLimitX96: args.sqrtPriceLimitX96 ?? 0n,
              referralCode: `0x${"0".repeat(64)}`,
            },
          ],
          gas: args.gas ?? PERP_V2_SCENARIO_GAS.openPosition,
        }),
      );
    }
    const receipts = await this.tx.confirm(pending);
    return receipts.map((receipt, i) => ({
      receipt,
      change: positionChanges(receipt).find(
        (c) => c.trader.toLowerCase() === trades[i]?.trader.account.address.toLowerCase(),
      ),
    }));
  }

  /** A long of `quoteNotional` USD (exact quote in). */
  openLong(trader: Wallet, base: Address | string, quoteNotional: bigint | string): Promise<TradeResult> {
    return this.openPosition(trader, base, { isBaseToQuote: false, isExactInput: true, amount: quoteNotional });
  }

  /** A short of `quoteNotional` USD (exact quote out). */
  openShort(trader: Wallet, base: Address | string, quoteNotional: bigint | string): Promise<TradeResult> {
    return this.openPosition(trader, base, { isBaseToQuote: true, isExactInput: false, amount: quoteNotional });
  }

  /** ClearingHouse.closePosition of the sender's taker position (no price limit). */
  async closePosition(trader: Wallet, base: Address | string, oppositeAmountBound = 0n): Promise<TradeResult> {
    const market = this.market(base);
    const receipt = await this.tx.call(trader, `closePosition ${market.name} by ${trader.account.address}`, {
      address: this.d.clearingHouse,
      abi: clearingHouseAbi,
      functionName: "closePosition",
      args: [
        {
          baseToken: market.baseToken,
          sqrtPriceLimitX96: 0n,
          oppositeAmountBound,
          deadline: maxUint256,
          referralCode: `0x${"0".repeat(64)}`,
        },
      ],
      gas: PERP_V2_SCENARIO_GAS.closePosition,
    });
    const who = trader.account.address.toLowerCase();
    return { receipt, change: positionChanges(receipt).find((c) => c.trader.toLowerCase() === who) };
  }

  // ---- prices -----------------------------------------------------------------------------------------------

  /**
   * Sets the index: the market's MockV3Aggregator.updateAnswer (updatedAt = the block's time). The feed ignores a
   * round whose updatedAt equals the one it cached (a trade in the same second as an earlier update caches it), so
   * the index is read back, and on a miss the clock moves a second and the answer is set again.
   * The index alone does not move the mark price (it is a median with two pool TWAPs): movePoolTo does.
   */
  async setIndexPrice(base: Address | string, price: string | number): Promise<void> {
    const market = this.market(base);
    const answer = parseUnits(typeof price === "number" ? toDecimalString(price, 8) : price, ORACLE_DECIMALS);
    const expected = answer * 10n ** BigInt(18 - ORACLE_DECIMALS);
    for (let attempt = 0; attempt < 2; attempt++) {
      await this.tx.call(this.owner, `updateAnswer ${market.name} ${answer}`, {
        address: market.aggregator,
        abi: mockV3AggregatorAbi,
        functionName: "updateAnswer",
        args: [answer],
        gas: PERP_V2_SCENARIO_GAS.updateAnswer,
      });
      if ((await this.indexPrice(market.baseToken)) === expected) return;
      await this.warp(1);
    }
    throw new Error(`setIndexPrice ${market.name}: the feed still reports ${await this.indexPrice(market.baseToken)}`);
  }

  /** BaseToken.getIndexPrice(0), 18 decimals. */
  indexPrice(base: Address | string, interval = 0n): Promise<bigint> {
    return this.publicClient.readContract({
      address: this.market(base).baseToken,
      abi: baseTokenAbi,
      functionName: "getIndexPrice",
      args: [interval],
    });
  }

  /** AccountBalance.getMarkPrice, 18 decimals. */
  markPrice(base: Address | string): Promise<bigint> {
    return this.publicClient.readContract({
      address: this.d.accountBalance,
      abi: accountBalanceAbi,
      functionName: "getMarkPrice",
      args: [this.market(base).baseToken],
    });
  }

  /** The pool's spot price (quote per base) and sqrtPriceX96. */
  async poolPrice(base: Address | string): Promise<{ price: number; sqrtPriceX96: bigint; tick: number }> {
    const [sqrtPriceX96, tick] = await this.publicClient.readContract({
      address: this.market(base).pool,
      abi: uniswapV3PoolAbi,
      functionName: "slot0",
    });
    return { price: sqrtPriceX96ToPrice(sqrtPriceX96), sqrtPriceX96, tick };
  }

  /**
   * Trades the pool to `price` from the arbitrageur (a taker position to sqrtPriceLimitX96 = sqrt(price)·2^96), in
   * steps of at most `maxStep` (default 9%: Exchange allows 1000 ticks ≈ 10.5% from the tick it snapshots every
   * 15 s), each after `stepSeconds` (default 15) on the clock so that the snapshot is the current tick. A step must
   * also leave the pool within ±10% of the index (or no further from it than it was): set the index first.
   * @returns the trades, one per step
   */
  async movePoolTo(
    base: Address | string,
    price: string | number,
    options: { maxStep?: number; stepSeconds?: number; gas?: bigint } = {},
  ): Promise<TradeResult[]> {
    const market = this.market(base);
    const maxStep = options.maxStep ?? 0.09;
    if (!(maxStep > 0 && maxStep < 0.105)) throw new Error("movePoolTo: maxStep must be in (0, 0.105)");
    await this.ensureArbFunded();
    const target = priceToSqrtPriceX96(price);
    // sqrt(1 ± maxStep), 1e18-scaled
    const stepMicro = BigInt(Math.round(maxStep * 1e6));
    const down = isqrt((1_000_000n - stepMicro) * 10n ** 30n);
    const up = isqrt((1_000_000n + stepMicro) * 10n ** 30n);
    const trades: TradeResult[] = [];
    for (let step = 0; ; step++) {
      const { sqrtPriceX96: current } = await this.poolPrice(market.baseToken);
      const gap = current > target ? current - target : target - current;
      if (gap * 1_000_000_000n <= target) return trades; // within 1e-9 in sqrt price
      if (step >= 100) throw new Error(`movePoolTo ${market.name}: not at ${price} after 100 steps`);
      const isBaseToQuote = target < current;
      const limit = isBaseToQuote
        ? bigMax(target, (current * down) / 10n ** 18n)
        : bigMin(target, (current * up) / 10n ** 18n);
      await this.warp(options.stepSeconds ?? 15);
      const trade = await this.openPosition(this.arb, market.baseToken, {
        isBaseToQuote,
        isExactInput: true,
        amount: UNBOUNDED_AMOUNT,
        sqrtPriceLimitX96: limit,
        gas: options.gas,
      });
      trades.push(trade);
      const after = (await this.poolPrice(market.baseToken)).sqrtPriceX96;
      if (after === current) throw new Error(`movePoolTo ${market.name}: the pool did not move (no liquidity?)`);
    }
  }

  /** The index, then the pool, to `price`: what an oracle move plus the arbitrage that follows it do. */
  async crash(base: Address | string, price: string | number): Promise<TradeResult[]> {
    await this.setIndexPrice(base, price);
    return this.movePoolTo(base, price);
  }

  /** Moves the chain's clock `seconds` forward and mines a block. */
  warp(seconds: number): Promise<void> {
    return advanceTime(this.publicClient, seconds);
  }

  private async ensureArbFunded(): Promise<void> {
    if (this.arbFunded) return;
    const free = await this.publicClient.readContract({
      address: this.d.vault,
      abi: vaultAbi,
      functionName: "getFreeCollateral",
      args: [this.arb.account.address],
    });
    if (free < USDC("1000000")) await this.fund(this.arb, this.options.arbUsdc ?? "10000000");
    this.arbFunded = true;
  }

  // ---- views ------------------------------------------------------------------------------------------------

  /** What decides a trader's liquidation, all read at one block. */
  async views(trader: Address | Wallet): Promise<PerpV2AccountView> {
    const who = typeof trader === "string" ? trader : trader.account.address;
    const blockNumber = await this.publicClient.getBlockNumber({ cacheTime: 0 });
    const read = <T>(address: Address, abi: unknown, functionName: string, args: readonly unknown[]) =>
      this.publicClient.readContract({ address, abi, functionName, args, blockNumber } as never) as Promise<T>;
    const ab = this.d.accountBalance;
    const [accountValue, marginRequirement, totalAbsPositionValue, freeCollateral] = await Promise.all([
      read<bigint>(this.d.clearingHouse, clearingHouseAbi, "getAccountValue", [who]),
      read<bigint>(ab, accountBalanceAbi, "getMarginRequirementForLiquidation", [who]),
      read<bigint>(ab, accountBalanceAbi, "getTotalAbsPositionValue", [who]),
      read<bigint>(this.d.vault, vaultAbi, "getFreeCollateral", [who]),
    ]);
    const markets = await Promise.all(
      this.d.markets.map(async (m): Promise<PerpV2MarketView> => {
        const [positionSize, takerOpenNotional, positionValue, liquidatablePositionSize, markPrice] = await Promise.all(
          [
            read<bigint>(ab, accountBalanceAbi, "getTotalPositionSize", [who, m.baseToken]),
            read<bigint>(ab, accountBalanceAbi, "getTakerOpenNotional", [who, m.baseToken]),
            read<bigint>(ab, accountBalanceAbi, "getTotalPositionValue", [who, m.baseToken]),
            read<bigint>(ab, accountBalanceAbi, "getLiquidatablePositionSize", [who, m.baseToken, accountValue]),
            read<bigint>(ab, accountBalanceAbi, "getMarkPrice", [m.baseToken]),
          ],
        );
        return {
          name: m.name,
          baseToken: m.baseToken,
          positionSize,
          takerOpenNotional,
          positionValue,
          liquidatablePositionSize,
          markPrice,
        };
      }),
    );
    return {
      trader: who,
      blockNumber,
      accountValue,
      marginRequirement,
      totalAbsPositionValue,
      freeCollateral,
      liquidatable: accountValue < marginRequirement,
      marginRatio:
        totalAbsPositionValue === 0n ? Number.POSITIVE_INFINITY : Number(accountValue) / Number(totalAbsPositionValue),
      markets,
    };
  }

  // ---- liquidation ------------------------------------------------------------------------------------------

  /** ClearingHouse.liquidate(trader, base, positionSize) from an EOA (which needs a Vault deposit: fund it). */
  liquidate(
    liquidator: Wallet,
    trader: Address,
    base: Address | string,
    positionSize = 0n,
    gas: bigint = PERP_V2_SCENARIO_GAS.liquidate,
  ): Promise<TransactionReceipt> {
    const market = this.market(base);
    return this.tx.call(liquidator, `liquidate ${trader} ${market.name} by ${liquidator.account.address}`, {
      address: this.d.clearingHouse,
      abi: clearingHouseAbi,
      functionName: "liquidate",
      args: [trader, market.baseToken, positionSize],
      gas,
    });
  }

  /** Deploys a PerpV2Liquidator (contracts/PerpV2Liquidator.sol) owned by `owner`. */
  async deployLiquidator(owner: Wallet): Promise<Address> {
    const address = getContractAddress({
      from: owner.account.address,
      nonce: BigInt(await this.tx.nextNonce(owner.account.address)),
    });
    await this.tx.send(owner, "deploy PerpV2Liquidator", {
      data: encodeDeployData({
        abi: perpV2LiquidatorAbi,
        bytecode: perpV2LiquidatorBytecode,
        args: [this.d.clearingHouse],
      }),
      gas: PERP_V2_SCENARIO_GAS.deployLiquidator,
    });
    return address;
  }

  /** Mints USDC to the liquidator contract's owner, approves the contract, and deposits it to the Vault through it. */
  async fundLiquidator(owner: Wallet, liquidator: Address, usdc: bigint | string): Promise<void> {
    const who = owner.account.address;
    await this.tx.confirm([
      await this.tx.submitCall(this.owner, `USDC.mint(${who})`, {
        address: this.d.usdc,
        abi: testUSDCAbi,
        functionName: "mint",
        args: [who, USDC(usdc)],
        gas: PERP_V2_SCENARIO_GAS.mint,
      }),
      await this.tx.submitCall(owner, "USDC.approve(PerpV2Liquidator)", {
        address: this.d.usdc,
        abi: testUSDCAbi,
        functionName: "approve",
        args: [liquidator, USDC(usdc)],
        gas: PERP_V2_SCENARIO_GAS.approve,
      }),
    ]);
    await this.tx.call(owner, "PerpV2Liquidator.deposit", {
      address: liquidator,
      abi: perpV2LiquidatorAbi,
      functionName: "deposit",
      args: [this.d.usdc, USDC(usdc)],
      gas: PERP_V2_SCENARIO_GAS.liquidatorCall,
    });
  }

  /** PerpV2Liquidator.liquidateBatch from its owner or an operator. */
  liquidateBatch(
    sender: Wallet,
    liquidator: Address,
    items: readonly LiquidationItem[],
    gas: bigint = 150_000n + BigInt(items.length) * PERP_V2_SCENARIO_GAS.liquidateBatchItem,
  ): Promise<TransactionReceipt> {
    return this.tx.call(sender, `PerpV2Liquidator.liquidateBatch(${items.length})`, {
      address: liquidator,
      abi: perpV2LiquidatorAbi,
      functionName: "liquidateBatch",
      args: [items.map((i) => ({ trader: i.trader, baseToken: i.baseToken, positionSize: i.positionSize }))],
      gas,
    });
  }

  /** PerpV2Liquidator.cancelExcessOrders: removes a liquidatable maker's orders (liquidate reverts CH_CLWTISO before). */
  liquidatorCancelExcessOrders(
    sender: Wallet,
    liquidator: Address,
    maker: Address,
    base: Address | string,
  ): Promise<TransactionReceipt> {
    return this.tx.call(sender, `PerpV2Liquidator.cancelExcessOrders ${maker} ${this.market(base).name}`, {
      address: liquidator,
      abi: perpV2LiquidatorAbi,
      functionName: "cancelExcessOrders",
      args: [maker, this.market(base).baseToken],
      gas: PERP_V2_SCENARIO_GAS.cancelExcessOrders,
    });
  }

  /** PerpV2Liquidator.closePosition: closes the contract's inherited position through the pool. */
  liquidatorClosePosition(
    sender: Wallet,
    liquidator: Address,
    base: Address | string,
    oppositeAmountBound = 0n,
  ): Promise<TransactionReceipt> {
    return this.tx.call(sender, `PerpV2Liquidator.closePosition ${this.market(base).name}`, {
      address: liquidator,
      abi: perpV2LiquidatorAbi,
      functionName: "closePosition",
      args: [this.market(base).baseToken, oppositeAmountBound, maxUint256],
      gas: PERP_V2_SCENARIO_GAS.closePosition + 100_000n,
    });
  }

  /** PerpV2Liquidator.withdraw to its owner. */
  liquidatorWithdraw(sender: Wallet, liquidator: Address, usdc: bigint | string): Promise<TransactionReceipt> {
    return this.tx.call(sender, "PerpV2Liquidator.withdraw", {
      address: liquidator,
      abi: perpV2LiquidatorAbi,
      functionName: "withdraw",
      args: [this.d.usdc, USDC(usdc)],
      gas: PERP_V2_SCENARIO_GAS.withdraw,
    });
  }
}

/** Perp v2's events (ClearingHouse, AccountBalance, Vault, Exchange) and PerpV2Liquidator's, decoded from logs. */
export function decodePerpV2Events(logs: readonly Log[]) {
  return parseEventLogs({
    abi: [...perpV2EventsAbi, ...perpV2LiquidatorAbi.filter((item) => item.type === "event")],
    logs: logs as Log[],
  });
}

/** The PositionChanged events of a receipt. */
export function positionChanges(receipt: TransactionReceipt): PositionChange[] {
  return parseEventLogs({ abi: clearingHouseAbi, eventName: "PositionChanged", logs: receipt.logs }).map((e) => e.args);
}

function bigMax(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}

function bigMin(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}
