/**
 * `perp-keeper collateral status | deposit <amount> | withdraw <amount>`: the Perp v2 liquidator's collateral, for
 * the operator. The liquidator is the account that takes over liquidated positions and must hold the collateral for
 * them: the keeper's PerpV2Liquidator contract when one is configured, else the signer's own Vault account.
 *
 *   status    the Vault balance, free collateral (and what of it can be withdrawn), account value, positions per
 *             market at the mark, margin requirements and ratio, and the takeover notional the free collateral still
 *             covers at imRatio. Read-only, at one block.
 *   deposit   an EOA: approve the Vault, Vault.deposit. A PerpV2Liquidator: its owner approves the contract, then
 *             PerpV2Liquidator.deposit pulls from the owner into the Vault in the contract's name (owner only here:
 *             the tokens are the owner's).
 *   withdraw  Vault.withdraw (EOA), or PerpV2Liquidator.withdraw (owner or operator; the tokens go to the owner).
 *             More than the Vault lets go (getFreeCollateralByToken) is refused before anything is sent.
 *
 * Amounts are decimal strings of the settlement token (USDC): negative, zero, too many decimals or more than the
 * wallet holds are refused with a message saying which. Every transaction is simulated (eth_call) and estimated
 * first, sent with the estimate ×1.4 (Perp under-estimates: the notes' 63/64 and cacheTwap trap), and waited for;
 * the report gives the figures before and after. No key is ever printed or logged.
 */
import {
  type Abi,
  type Account,
  type Address,
  BaseError,
  type Chain,
  ContractFunctionRevertedError,
  createWalletClient,
  custom,
  encodeFunctionData,
  erc20Abi,
  formatUnits,
  isAddressEqual,
  type LocalAccount,
  type PublicClient,
  parseAbi,
  parseUnits,
  type TransactionReceipt,
  type Transport,
  type WalletClient,
} from "viem";
import { perpV2LiquidatorAbi } from "../../abi/PerpV2Liquidator.ts";
import { KeeperError, SetupError } from "../errors.ts";
import { accountBalanceAbi, clearingHouseAbi, exchangeAbi, vaultAbi } from "../protocol/perpV2/abi.ts";
import { type PerpV2Contracts, ratioPercent } from "../protocol/perpV2/discover.ts";
import { RATIO_ONE } from "../protocol/perpV2/math.ts";
import { opsAccountBalanceAbi, opsClearingHouseConfigAbi, opsVaultAbi } from "../protocol/perpV2/opsAbi.ts";
import type { Logger } from "./logger.ts";

/** A refused command (a bad amount, the wrong signer, more than there is): nothing was sent. Exit 2. */
export class CollateralError extends SetupError {
  override name = "CollateralError";
}

/** A transaction that was sent and reverted, or never got a receipt. Exit 1, not retried by itself. */
export class CollateralTxError extends KeeperError {
  override name = "CollateralTxError";
  readonly retryable = false;
  readonly exitCode = 1 as const;
}

export type CollateralAction = "status" | "deposit" | "withdraw";

export interface CollateralArgs {
  readonly action: CollateralAction;
  /** deposit / withdraw: a decimal amount of the settlement token ("1000", "250.5"). */
  readonly amount?: string;
  readonly contracts: PerpV2Contracts;
  /** The liquidator: the configured PerpV2Liquidator, else the signer's own address. */
  readonly account: Address;
  /** Signs deposits and withdrawals (a wallet client with an account, or a local account); not needed for status. */
  readonly signer?: WalletClient<Transport, Chain | undefined, Account> | LocalAccount;
  readonly client: PublicClient;
  readonly log: Logger;
  /** exchange.minFreeCollateral: status warns below it. */
  readonly minFreeCollateral?: string;
  /** Gas limit = estimate × this percentage (default 140). */
  readonly gasPercent?: bigint;
}

/** One market the liquidator holds a position in (18-decimal figures, signed as the contracts give them). */
export interface CollateralPosition {
  readonly baseToken: Address;
  readonly name: string;
  /** AccountBalance.getTotalPositionSize: > 0 long. */
  readonly size: bigint;
  /** AccountBalance.getTakerOpenNotional (< 0 for a long). */
  readonly openNotional: bigint;
  /** AccountBalance.getTotalPositionValue: size at the mark. */
  readonly value: bigint;
  readonly markPrice: bigint;
}

/** The liquidator's collateral figures at one block. Settlement-token units unless said to be 18 decimals. */
export interface CollateralFigures {
  readonly account: Address;
  readonly kind: "eoa" | "contract";
  /** The PerpV2Liquidator's owner (where deposits come from and withdrawals go). */
  readonly owner: Address | undefined;
  readonly blockNumber: bigint;
  /** The wallet deposits are paid from: the EOA itself, or the contract's owner. */
  readonly wallet: Address;
  readonly walletBalance: bigint;
  /** Vault.getBalance. */
  readonly vaultBalance: bigint;
  /** Vault.getFreeCollateral. */
  readonly freeCollateral: bigint;
  /** Vault.getFreeCollateralByToken(settlement): the most a withdrawal can take now. */
  readonly withdrawable: bigint;
  /** ClearingHouse.getAccountValue, 18 decimals. */
  readonly accountValue: bigint;
  /** AccountBalance.getTotalAbsPositionValue, 18 decimals. */
  readonly totalAbsPositionValue: bigint;
  /** AccountBalance.getMarginRequirementForLiquidation (mmRatio), 18 decimals. */
  readonly maintenanceRequirement: bigint;
  /** totalAbsPositionValue × imRatio, 18 decimals: what takes free collateral. */
  readonly initialRequirement: bigint;
  /** Exchange.getAllPendingFundingPayment (> 0: the account pays), 18 decimals. */
  readonly pendingFunding: bigint;
  readonly positions: readonly CollateralPosition[];
  /** AccountBalance.hasOrder: a liquidator should never have maker orders. */
  readonly hasOrders: boolean;
  /** Notional (18 decimals) the free collateral still covers at imRatio: freeCollateral / imRatio. */
  readonly takeoverCapacity: bigint;
}

const liquidatorViewsAbi = parseAbi([
  "function owner() view returns (address)",
  "function clearingHouse() view returns (address)",
  "function vault() view returns (address)",
  "function isOperator(address) view returns (bool)",
]);

const ERROR_ABI = [
  ...parseAbi(["error Error(string)", "error Panic(uint256)"]),
  ...perpV2LiquidatorAbi.filter((i) => i.type === "error"),
] as Abi;

/** What the Perp and liquidator revert codes a collateral transaction can meet mean. */
const REVERTS: Readonly<Record<string, string>> = {
  V_NEFC: "not enough free collateral",
  V_GTSTBC: "the Vault's settlement token balance cap would be exceeded",
  V_GTDC: "above the deposit cap",
  V_ZA: "zero amount",
  V_OSCT: "not the settlement token or a collateral token",
  NotOwner: "only the PerpV2Liquidator's owner may call it",
  NotOperator: "only the PerpV2Liquidator's owner or an operator may call it",
  "ERC20: transfer amount exceeds balance": "the wallet holds less than that",
  "ERC20: transfer amount exceeds allowance": "the allowance is below the amount",
  "Pausable: paused": "the Vault is paused",
};

/**
 * A human amount of the settlement token, in its units: refuses anything that is not a plain positive decimal with
 * at most `decimals` places, saying which.
 */
export function parseAmount(text: string | undefined, decimals: number, symbol: string, action: string): bigint {
  const raw = text?.trim() ?? "";
  if (raw === "") throw new CollateralError(`${action} needs an amount of ${symbol}, e.g. "1000" or "250.5"`);
  if (raw.startsWith("-")) throw new CollateralError(`the amount must be positive: "${raw}"`);
  if (!/^\d+(\.\d+)?$/.test(raw)) {
    throw new CollateralError(`not a decimal amount of ${symbol}: "${raw}" (write it like 1000 or 250.5)`);
  }
  const places = raw.split(".")[1]?.length ?? 0;
  if (places > decimals) {
    throw new CollateralError(`${symbol} has ${decimals} decimals: "${raw}" has ${places}`);
  }
  const units = parseUnits(raw, decimals);
  if (units === 0n) throw new CollateralError(`the amount must be above 0: "${raw}"`);
  return units;
}

/** Whether the liquidator is a contract, and if so that it is a PerpV2Liquidator of this ClearingHouse. */
async function liquidatorKind(
  client: PublicClient,
  c: PerpV2Contracts,
  account: Address,
): Promise<{ kind: "eoa" } | { kind: "contract"; owner: Address }> {
  const code = await client.getCode({ address: account });
  if (code === undefined || code === "0x") return { kind: "eoa" };
  const view = async (functionName: "owner" | "clearingHouse" | "vault") => {
    try {
      return await client.readContract({ address: account, abi: liquidatorViewsAbi, functionName });
    } catch (error) {
      if (error instanceof BaseError && error.walk((e) => e instanceof ContractFunctionRevertedError)) {
        throw new CollateralError(
          `the liquidator ${account} is a contract but not a PerpV2Liquidator (${functionName}() reverted)`,
        );
      }
      throw error;
    }
  };
  const ch = await view("clearingHouse");
  const [owner, vault] = await Promise.all([view("owner"), view("vault")]);
  if (!isAddressEqual(ch, c.clearingHouse)) {
    throw new CollateralError(
      `the liquidator ${account} is a PerpV2Liquidator of ClearingHouse ${ch}, not of ${c.clearingHouse}`,
    );
  }
  if (!isAddressEqual(vault, c.vault)) {
    throw new CollateralError(`the liquidator ${account} deposits into Vault ${vault}, not ${c.vault}`);
  }
  return { kind: "contract", owner };
}

/** The liquidator's figures, every read at one block. */
export async function readCollateral(
  client: PublicClient,
  c: PerpV2Contracts,
  account: Address,
): Promise<CollateralFigures> {
  const who = await liquidatorKind(client, c, account);
  const wallet = who.kind === "contract" ? who.owner : account;
  const blockNumber = await client.getBlockNumber({ cacheTime: 0 });
  const at = { blockNumber } as const;
  const [
    walletBalance,
    vaultBalance,
    freeCollateral,
    withdrawable,
    accountValue,
    totalAbsPositionValue,
    maintenanceRequirement,
    pendingFunding,
    baseTokens,
    hasOrders,
  ] = await Promise.all([
    client.readContract({
      ...at,
      address: c.settlementToken,
      abi: erc20Abi,
      functionName: "balanceOf",
      args: [wallet],
    }),
    client.readContract({ ...at, address: c.vault, abi: vaultAbi, functionName: "getBalance", args: [account] }),
    client.readContract({ ...at, address: c.vault, abi: vaultAbi, functionName: "getFreeCollateral", args: [account] }),
    client.readContract({
      ...at,
      address: c.vault,
      abi: opsVaultAbi,
      functionName: "getFreeCollateralByToken",
      args: [account, c.settlementToken],
    }),
    client.readContract({
      ...at,
      address: c.clearingHouse,
      abi: clearingHouseAbi,
      functionName: "getAccountValue",
      args: [account],
    }),
    client.readContract({
      ...at,
      address: c.accountBalance,
      abi: accountBalanceAbi,
      functionName: "getTotalAbsPositionValue",
      args: [account],
    }),
    client.readContract({
      ...at,
      address: c.accountBalance,
      abi: accountBalanceAbi,
      functionName: "getMarginRequirementForLiquidation",
      args: [account],
    }),
    client.readContract({
      ...at,
      address: c.exchange,
      abi: exchangeAbi,
      functionName: "getAllPendingFundingPayment",
      args: [account],
    }),
    client.readContract({
      ...at,
      address: c.accountBalance,
      abi: accountBalanceAbi,
      functionName: "getBaseTokens",
      args: [account],
    }),
    client.readContract({
      ...at,
      address: c.accountBalance,
      abi: accountBalanceAbi,
      functionName: "hasOrder",
      args: [account],
    }),
  ]);
  const positions = await Promise.all(
    baseTokens.map(async (baseToken): Promise<CollateralPosition> => {
      const ab = { ...at, address: c.accountBalance } as const;
      const [size, openNotional, value, markPrice] = await Promise.all([
        client.readContract({
          ...ab,
          abi: accountBalanceAbi,
          functionName: "getTotalPositionSize",
          args: [account, baseToken],
        }),
        client.readContract({
          ...ab,
          abi: accountBalanceAbi,
          functionName: "getTakerOpenNotional",
          args: [account, baseToken],
        }),
        client.readContract({
          ...ab,
          abi: opsAccountBalanceAbi,
          functionName: "getTotalPositionValue",
          args: [account, baseToken],
        }),
        client.readContract({ ...ab, abi: accountBalanceAbi, functionName: "getMarkPrice", args: [baseToken] }),
      ]);
      const market = c.markets.find((m) => isAddressEqual(m.baseToken, baseToken));
      return { baseToken, name: market?.name ?? baseToken, size, openNotional, value, markPrice };
    }),
  );
  const scale = 10n ** BigInt(18 - c.settlementDecimals);
  const imRatio = c.parameters.imRatio;
  return {
    account,
    kind: who.kind,
    owner: who.kind === "contract" ? who.owner : undefined,
    blockNumber,
    wallet,
    walletBalance,
    vaultBalance,
    freeCollateral,
    withdrawable,
    accountValue,
    totalAbsPositionValue,
    maintenanceRequirement,
    initialRequirement: (totalAbsPositionValue * imRatio) / RATIO_ONE,
    pendingFunding,
    positions: positions.filter((p) => p.size !== 0n || p.openNotional !== 0n),
    hasOrders,
    takeoverCapacity: (freeCollateral * scale * RATIO_ONE) / imRatio,
  };
}

/** A settlement-token amount: "1234.5 USDC". */
function token(units: bigint, c: PerpV2Contracts): string {
  return `${formatUnits(units, c.settlementDecimals)} ${c.settlementSymbol}`;
}

/** An 18-decimal quote figure shown at the settlement token's precision (truncated toward zero). */
function quote(x18: bigint, c: PerpV2Contracts): string {
  const scale = 10n ** BigInt(18 - c.settlementDecimals);
  return formatUnits(x18 / scale, c.settlementDecimals);
}

function signed(text: string): string {
  return text.startsWith("-") ? text : `+${text}`;
}

/** The status text. */
export function renderCollateral(f: CollateralFigures, c: PerpV2Contracts, minFreeCollateral?: string): string {
  const p = c.parameters;
  const lines = [
    f.kind === "contract"
      ? `liquidator ${f.account} (PerpV2Liquidator, owner ${f.owner}) at block ${f.blockNumber}`
      : `liquidator ${f.account} (its own Vault account) at block ${f.blockNumber}`,
    `  wallet ${f.wallet}${f.kind === "contract" ? " (the owner's)" : ""}: ${token(f.walletBalance, c)}`,
    `  Vault balance: ${token(f.vaultBalance, c)}`,
    `  free collateral: ${token(f.freeCollateral, c)}` +
      (f.withdrawable === f.freeCollateral ? "" : ` (withdrawable now: ${token(f.withdrawable, c)})`),
    `  account value: ${quote(f.accountValue, c)} ${c.settlementSymbol}` +
      (f.pendingFunding === 0n ? "" : ` (pending funding ${signed(quote(-f.pendingFunding, c))})`),
  ];
  if (f.positions.length === 0) lines.push("  positions: none");
  else {
    lines.push(`  positions (${f.positions.length}):`);
    for (const q of f.positions) {
      const side = q.size > 0n ? "long" : q.size < 0n ? "short" : "flat";
      const abs = q.size < 0n ? -q.size : q.size;
      lines.push(
        `    ${q.name} ${side} ${formatUnits(abs, 18)} at mark ${quote(q.markPrice, c)}: value ${quote(q.value, c)}, ` +
          `open notional ${quote(q.openNotional, c)}, unrealized ${signed(quote(q.value + q.openNotional, c))}`,
      );
    }
  }
  if (f.hasOrders) lines.push("  maker orders: yes (a liquidator should have none)");
  if (f.totalAbsPositionValue > 0n) {
    const ratio = (f.accountValue * RATIO_ONE) / f.totalAbsPositionValue;
    lines.push(
      `  margin: maintenance ${quote(f.maintenanceRequirement, c)} (mmRatio ${ratioPercent(p.mmRatio)}), ` +
        `initial ${quote(f.initialRequirement, c)} (imRatio ${ratioPercent(p.imRatio)}) of ` +
        `${quote(f.totalAbsPositionValue, c)} in positions; margin ratio ${ratioPercent(ratio)}`,
    );
  }
  lines.push(
    `  can take over ${quote(f.takeoverCapacity, c)} ${c.settlementSymbol} more notional ` +
      `(free collateral / imRatio ${ratioPercent(p.imRatio)}, before the liquidation discount)`,
  );
  if (minFreeCollateral !== undefined) {
    const floor = parseUnits(minFreeCollateral, c.settlementDecimals);
    if (f.freeCollateral < floor) {
      lines.push(
        `  ALERT: free collateral ${token(f.freeCollateral, c)} is below exchange.minFreeCollateral ${token(floor, c)}`,
      );
    }
  }
  return lines.join("\n");
}

/** The signer as a wallet client on the public client's transport. */
function walletOf(
  signer: NonNullable<CollateralArgs["signer"]>,
  client: PublicClient,
): WalletClient<Transport, Chain | undefined, Account> {
  if ("type" in signer && (signer.type === "local" || signer.type === "json-rpc")) {
    return createWalletClient({
      account: signer as LocalAccount,
      chain: client.chain,
      transport: custom({ request: (args) => client.request(args as never) }),
    });
  }
  return signer as WalletClient<Transport, Chain | undefined, Account>;
}

/** The revert behind a failed simulation, in words: the code (Error(string) or a custom error) and its meaning. */
function revertText(error: unknown): string {
  if (!(error instanceof BaseError)) return error instanceof Error ? error.message : String(error);
  const reverted = error.walk(
    (e) => e instanceof ContractFunctionRevertedError,
  ) as ContractFunctionRevertedError | null;
  const code = reverted?.reason ?? reverted?.data?.errorName ?? reverted?.signature;
  if (code === undefined) return error.shortMessage;
  const meaning = REVERTS[code];
  return meaning ? `${code} (${meaning})` : code;
}

interface Step {
  readonly name: string;
  readonly to: Address;
  readonly abi: Abi;
  readonly functionName: string;
  readonly args: readonly unknown[];
}

/** Simulates, estimates, sends with the padded gas, and waits for a successful receipt. */
async function send(
  step: Step,
  wallet: WalletClient<Transport, Chain | undefined, Account>,
  client: PublicClient,
  log: Logger,
  gasPercent: bigint,
): Promise<TransactionReceipt> {
  const from = wallet.account.address;
  const data = encodeFunctionData({ abi: step.abi, functionName: step.functionName, args: step.args } as Parameters<
    typeof encodeFunctionData
  >[0]);
  try {
    await client.simulateContract({
      account: from,
      address: step.to,
      abi: [...step.abi, ...ERROR_ABI],
      functionName: step.functionName,
      args: step.args,
    } as never);
  } catch (error) {
    if (error instanceof BaseError && error.walk((e) => e instanceof ContractFunctionRevertedError)) {
      throw new CollateralError(`${step.name} would revert, so it was not sent: ${revertText(error)}`);
    }
    throw error; // the RPC, not the call: nothing was sent either
  }
  const estimate = await client.estimateGas({ account: from, to: step.to, data });
  const gas = (estimate * gasPercent + 99n) / 100n;
  const hash = await wallet.sendTransaction({
    account: wallet.account,
    chain: wallet.chain ?? client.chain ?? null,
    to: step.to,
    data,
    gas,
  } as Parameters<typeof wallet.sendTransaction>[0]);
  log.info({ event: "collateral_tx_sent", step: step.name, from, to: step.to, hash, gas: gas.toString() });
  let receipt: TransactionReceipt;
  try {
    receipt = await client.waitForTransactionReceipt({ hash });
  } catch (error) {
    throw new CollateralTxError(
      `${step.name}: no receipt for ${hash} (${error instanceof BaseError ? error.shortMessage : String(error)}); ` +
        "check it before trying again",
    );
  }
  if (receipt.status !== "success") {
    throw new CollateralTxError(
      `${step.name} reverted on chain (tx ${hash}, block ${receipt.blockNumber}, gas ${receipt.gasUsed} of ${gas})`,
    );
  }
  log.info({
    event: "collateral_tx_confirmed",
    step: step.name,
    hash,
    block: receipt.blockNumber.toString(),
    gasUsed: receipt.gasUsed.toString(),
  });
  return receipt;
}

function change(before: bigint, after: bigint, c: PerpV2Contracts): string {
  return `${token(before, c)} -> ${token(after, c)}`;
}

/**
 * The collateral command: status, deposit or withdraw for the liquidator account. Returns the text to print;
 * a refusal is a CollateralError (nothing sent), a failed transaction a CollateralTxError.
 */
export async function collateralCommand(a: CollateralArgs): Promise<string> {
  const c = a.contracts;
  const { client, log } = a;
  const before = await readCollateral(client, c, a.account);
  if (a.action === "status") {
    if (a.minFreeCollateral !== undefined) {
      const floor = parseUnits(a.minFreeCollateral, c.settlementDecimals);
      if (before.freeCollateral < floor) {
        log.warn({
          event: "collateral_below_minimum",
          account: a.account,
          freeCollateral: before.freeCollateral.toString(),
          minimum: floor.toString(),
        });
      }
    }
    return renderCollateral(before, c, a.minFreeCollateral);
  }

  const amount = parseAmount(a.amount, c.settlementDecimals, c.settlementSymbol, a.action);
  if (!a.signer) throw new CollateralError(`${a.action} needs a signer key (KEEPER_PRIVATE_KEY)`);
  const wallet = walletOf(a.signer, client);
  const signer = wallet.account.address;
  const gasPercent = a.gasPercent ?? 140n;
  const steps: Step[] = [];

  if (a.action === "deposit") {
    if (before.kind === "eoa" && !isAddressEqual(signer, a.account)) {
      throw new CollateralError(
        `the liquidator ${a.account} is an account of its own: only its key can deposit, not ${signer}'s`,
      );
    }
    if (before.kind === "contract" && !isAddressEqual(signer, before.owner as Address)) {
      throw new CollateralError(
        `only the PerpV2Liquidator's owner ${before.owner} can deposit (the tokens are pulled from it), not ${signer}`,
      );
    }
    if (amount > before.walletBalance) {
      throw new CollateralError(
        `cannot deposit ${token(amount, c)}: the wallet ${before.wallet} holds ${token(before.walletBalance, c)}`,
      );
    }
    const [paused, cap, inVault] = await Promise.all([
      client.readContract({ address: c.vault, abi: opsVaultAbi, functionName: "paused" }),
      client.readContract({
        address: c.clearingHouseConfig,
        abi: opsClearingHouseConfigAbi,
        functionName: "getSettlementTokenBalanceCap",
      }),
      client.readContract({ address: c.settlementToken, abi: erc20Abi, functionName: "balanceOf", args: [c.vault] }),
    ]);
    if (paused) throw new CollateralError(`cannot deposit: the Vault ${c.vault} is paused`);
    if (inVault + amount > cap) {
      throw new CollateralError(
        `cannot deposit ${token(amount, c)}: the Vault holds ${token(inVault, c)} of its cap ${token(cap, c)} (V_GTSTBC)`,
      );
    }
    const spender = before.kind === "contract" ? a.account : c.vault;
    const allowance = await client.readContract({
      address: c.settlementToken,
      abi: erc20Abi,
      functionName: "allowance",
      args: [signer, spender],
    });
    if (allowance < amount) {
      steps.push({
        name: `approve ${token(amount, c)} to the ${before.kind === "contract" ? "PerpV2Liquidator" : "Vault"}`,
        to: c.settlementToken,
        abi: erc20Abi,
        functionName: "approve",
        args: [spender, amount],
      });
    }
    steps.push(
      before.kind === "contract"
        ? {
            name: `PerpV2Liquidator.deposit ${token(amount, c)}`,
            to: a.account,
            abi: perpV2LiquidatorAbi as Abi,
            functionName: "deposit",
            args: [c.settlementToken, amount],
          }
        : {
            name: `Vault.deposit ${token(amount, c)}`,
            to: c.vault,
            abi: opsVaultAbi,
            functionName: "deposit",
            args: [c.settlementToken, amount],
          },
    );
  } else {
    if (before.kind === "eoa" && !isAddressEqual(signer, a.account)) {
      throw new CollateralError(
        `the liquidator ${a.account} is an account of its own: only its key can withdraw, not ${signer}'s`,
      );
    }
    if (before.kind === "contract" && !isAddressEqual(signer, before.owner as Address)) {
      const operator = await client.readContract({
        address: a.account,
        abi: liquidatorViewsAbi,
        functionName: "isOperator",
        args: [signer],
      });
      if (!operator) {
        throw new CollateralError(
          `${signer} is neither the PerpV2Liquidator's owner ${before.owner} nor one of its operators: it cannot withdraw`,
        );
      }
    }
    if (amount > before.withdrawable) {
      const limit =
        before.withdrawable < before.freeCollateral
          ? `the Vault lets ${token(before.withdrawable, c)} go (its free collateral is ${token(before.freeCollateral, c)}, its settlement balance less)`
          : `its free collateral is ${token(before.freeCollateral, c)}`;
      throw new CollateralError(`cannot withdraw ${token(amount, c)} from ${a.account}: ${limit}`);
    }
    steps.push(
      before.kind === "contract"
        ? {
            name: `PerpV2Liquidator.withdraw ${token(amount, c)}`,
            to: a.account,
            abi: perpV2LiquidatorAbi as Abi,
            functionName: "withdraw",
            args: [c.settlementToken, amount],
          }
        : {
            name: `Vault.withdraw ${token(amount, c)}`,
            to: c.vault,
            abi: opsVaultAbi,
            functionName: "withdraw",
            args: [c.settlementToken, amount],
          },
    );
  }

  const receipts: { name: string; receipt: TransactionReceipt }[] = [];
  for (const step of steps)
    receipts.push({ name: step.name, receipt: await send(step, wallet, client, log, gasPercent) });
  const after = await readCollateral(client, c, a.account);
  const verb = a.action === "deposit" ? "deposited" : "withdrew";
  const where =
    a.action === "deposit"
      ? `from ${before.wallet} into the Vault for ${a.account}`
      : `from the Vault account ${a.account} to ${before.wallet}`;
  return [
    `${verb} ${token(amount, c)} ${where}`,
    ...receipts.map(
      ({ name, receipt }) =>
        `  ${name}: tx ${receipt.transactionHash} in block ${receipt.blockNumber}, gas ${receipt.gasUsed}`,
    ),
    `  Vault balance: ${change(before.vaultBalance, after.vaultBalance, c)}`,
    `  free collateral: ${change(before.freeCollateral, after.freeCollateral, c)}`,
    `  wallet ${before.wallet}: ${change(before.walletBalance, after.walletBalance, c)}`,
    `  can take over ${quote(after.takeoverCapacity, c)} ${c.settlementSymbol} more notional`,
  ].join("\n");
}
