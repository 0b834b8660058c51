/**
 * The Perp v2 liquidator's collateral as the operator sees it (`perp-keeper collateral status`, and the figures
 * deposit and withdraw are checked against): whether the liquidator is an EOA or a PerpV2Liquidator of this
 * ClearingHouse, its Vault balance, free collateral, account value, positions at the mark, margin requirements, and
 * the takeover notional the free collateral still covers; read at one block, and rendered. The transactions are
 * collateral.ts's.
 */
import {
  type Address,
  BaseError,
  ContractFunctionRevertedError,
  erc20Abi,
  formatUnits,
  isAddressEqual,
  type PublicClient,
  parseAbi,
  parseUnits,
} from "viem";
import { SetupError } from "../../errors.ts";
import { accountBalanceAbi, clearingHouseAbi, exchangeAbi, vaultAbi } from "./abi.ts";
import { type PerpV2Contracts, ratioPercent } from "./discover.ts";
import { RATIO_ONE } from "./math.ts";
import { opsAccountBalanceAbi, opsVaultAbi } from "./opsAbi.ts";

/** A refused command (a bad amount, the wrong signer, more than there is): nothing was sent. Exit 2. */
export class CollateralError extends SetupError {
  override name = "CollateralError";
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

export const liquidatorViewsAbi = parseAbi([
  "function owner() view returns (address)",
  "function clearingHouse() view returns (address)",
  "function vault() view returns (address)",
  "function isOperator(address) view returns (bool)",
]);

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

/** The liquidator's figures, every read at one block: `atBlock`, or the latest. */
export async function readCollateral(
  client: PublicClient,
  c: PerpV2Contracts,
  account: Address,
  atBlock?: bigint,
): Promise<CollateralFigures> {
  const who = await liquidatorKind(client, c, account);
  const wallet = who.kind === "contract" ? who.owner : account;
  const blockNumber = atBlock ?? (await client.getBlockNumber({ cacheTime: 0 }));
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
export function token(units: bigint, c: PerpV2Contracts): string {
  return `${formatUnits(units, c.settlementDecimals)} ${c.settlementSymbol}`;
}

/** An 18-decimal quote figure shown at the settlement token's precision (truncated toward zero). */
export function quote(x18: bigint, c: PerpV2Contracts): string {
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
