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
  isAddressEqual,
  type LocalAccount,
  type PublicClient,
  parseAbi,
  parseUnits,
  type TransactionReceipt,
  type Transport,
  type WalletClient,
} from "viem";
import { perpV2LiquidatorAbi } from "../../../abi/PerpV2Liquidator.ts";
import { KeeperError } from "../../errors.ts";
import type { Logger } from "../../ops/logger.ts";
import {
  CollateralError,
  liquidatorViewsAbi,
  quote,
  readCollateral,
  renderCollateral,
  token,
} from "./collateralFigures.ts";
import type { PerpV2Contracts } from "./discover.ts";
import { opsClearingHouseConfigAbi, opsVaultAbi } from "./opsAbi.ts";

export type { CollateralFigures, CollateralPosition } from "./collateralFigures.ts";
export { CollateralError, readCollateral, renderCollateral };

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
