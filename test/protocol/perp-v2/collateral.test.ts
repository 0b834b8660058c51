/**
 * The collateral command (src/protocol/perpV2/collateral.ts) on Perp v2 from its npm bytecode on Anvil: status, deposit and
 * withdraw for an EOA liquidator and for a PerpV2Liquidator contract (whose takeover then shows in its status); the
 * figures move by exactly the amount; bad amounts, the wrong signer and a withdrawal above the free collateral are
 * refused with their own messages and nothing is sent (the nonce does not move); no key reaches the logs.
 */
import { type Address, formatUnits, type LocalAccount, parseAbi, parseUnits, toHex } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { perpV2LiquidatorAbi } from "../../../abi/PerpV2Liquidator.ts";
import { testUSDCAbi } from "../../../abi/TestUSDC.ts";
import { type Anvil, startAnvil } from "../../../src/devnet/anvil.ts";
import { PerpV2Devnet } from "../../../src/devnet/perpV2/scenario.ts";
import type { Wallet } from "../../../src/devnet/perpV2/tx.ts";
import { createLogger } from "../../../src/ops/logger.ts";
import {
  type CollateralArgs,
  CollateralError,
  type CollateralFigures,
  collateralCommand,
  parseAmount,
  readCollateral,
} from "../../../src/protocol/perpV2/collateral.ts";
import { discoverPerpV2, type PerpV2Contracts } from "../../../src/protocol/perpV2/discover.ts";

const usdc = (amount: string) => parseUnits(amount, 6);

describe("parseAmount", () => {
  const parse = (text: string | undefined) => parseAmount(text, 6, "USDC", "deposit");
  it("takes plain decimals up to the token's decimals", () => {
    expect(parse("1000")).toBe(1_000_000_000n);
    expect(parse(" 250.5 ")).toBe(250_500_000n);
    expect(parse("0.000001")).toBe(1n);
    expect(parse("007.100000")).toBe(7_100_000n);
  });
  it("refuses each bad amount with its own message", () => {
    const refused = (text: string | undefined) => {
      try {
        parse(text);
      } catch (error) {
        expect(error).toBeInstanceOf(CollateralError);
        return (error as Error).message;
      }
      throw new Error(`"${text}" was taken`);
    };
    expect(refused(undefined)).toBe('deposit needs an amount of USDC, e.g. "1000" or "250.5"');
    expect(refused("  ")).toBe('deposit needs an amount of USDC, e.g. "1000" or "250.5"');
    expect(refused("-5")).toBe('the amount must be positive: "-5"');
    expect(refused("0")).toBe('the amount must be above 0: "0"');
    expect(refused("0.000000")).toBe('the amount must be above 0: "0.000000"');
    expect(refused("1.0000001")).toBe('USDC has 6 decimals: "1.0000001" has 7');
    expect(refused("1e3")).toBe('not a decimal amount of USDC: "1e3" (write it like 1000 or 250.5)');
    expect(refused("1,000")).toBe('not a decimal amount of USDC: "1,000" (write it like 1000 or 250.5)');
    expect(refused(".5")).toBe('not a decimal amount of USDC: ".5" (write it like 1000 or 250.5)');
    expect(refused("abc")).toBe('not a decimal amount of USDC: "abc" (write it like 1000 or 250.5)');
  });
});

describe("collateral on Anvil", () => {
  let anvil: Anvil | undefined;
  let dev: PerpV2Devnet;
  let contracts: PerpV2Contracts;
  // 1 maker, 2 arbitrageur, 3 EOA liquidator, 4 PerpV2Liquidator owner, 5 its operator, 6 trader, 7 stranger
  let eoa: Wallet;
  let owner: Wallet;
  let operator: Wallet;
  let stranger: Wallet;
  let liquidator: Address;
  const logLines: string[] = [];
  const log = createLogger({ level: "debug", destination: { write: (line: string) => void logLines.push(line) } });

  beforeAll(async () => {
    anvil = await startAnvil({ accounts: 8 });
    dev = await PerpV2Devnet.deploy(anvil.rpcUrl);
    contracts = await discoverPerpV2(dev.publicClient, dev.d.clearingHouse, { deployBlock: dev.d.deployBlock });
    [eoa, owner, operator, stranger] = [dev.account(3), dev.account(4), dev.account(5), dev.account(7)];
    for (const [who, amount] of [
      [eoa, "10000"],
      [owner, "200000"],
    ] as const) {
      await dev.tx.call(dev.owner, "mint", {
        address: dev.d.usdc,
        abi: testUSDCAbi,
        functionName: "mint",
        args: [who.account.address, usdc(amount)],
        gas: 100_000n,
      });
    }
  }, 120_000);

  afterAll(async () => {
    await anvil?.stop();
  });

  const run = (args: Omit<CollateralArgs, "client" | "contracts" | "log">) =>
    collateralCommand({ client: dev.publicClient, contracts, log, ...args });
  const figures = (account: Address) => readCollateral(dev.publicClient, contracts, account);
  const nonce = (who: Wallet) => dev.publicClient.getTransactionCount({ address: who.account.address });
  const refusal = async (promise: Promise<unknown>) => {
    try {
      await promise;
    } catch (error) {
      expect(error).toBeInstanceOf(CollateralError);
      return (error as Error).message;
    }
    throw new Error("expected a refusal");
  };
  /** The figures a deposit or withdrawal moves, after - before. */
  const moved = (before: CollateralFigures, after: CollateralFigures) => ({
    vault: after.vaultBalance - before.vaultBalance,
    free: after.freeCollateral - before.freeCollateral,
    wallet: after.walletBalance - before.walletBalance,
  });

  it("status of an EOA liquidator with nothing deposited", async () => {
    const text = await run({ action: "status", account: eoa.account.address });
    const a = eoa.account.address;
    expect(text).toMatch(new RegExp(`^liquidator ${a} \\(its own Vault account\\) at block \\d+\\n`));
    expect(text).toContain(`  wallet ${a}: 10000 USDC\n  Vault balance: 0 USDC\n  free collateral: 0 USDC\n`);
    expect(text).toContain("  positions: none\n");
    expect(text).toContain("  can take over 0 USDC more notional (free collateral / imRatio 10%");
    expect(text).not.toContain("ALERT");
  });

  it("EOA: a deposit approves and deposits, and moves the figures by exactly the amount", async () => {
    const a = eoa.account.address;
    const before = await figures(a);
    const text = await run({ action: "deposit", amount: "1000.5", account: a, signer: eoa });
    const after = await figures(a);
    expect(moved(before, after)).toEqual({ vault: usdc("1000.5"), free: usdc("1000.5"), wallet: -usdc("1000.5") });
    expect(after.withdrawable).toBe(usdc("1000.5"));
    expect(after.takeoverCapacity).toBe(usdc("1000.5") * 10n ** 12n * 10n); // free collateral / 10%
    const lines = text.split("\n");
    expect(lines[0]).toBe(`deposited 1000.5 USDC from ${a} into the Vault for ${a}`);
    expect(lines[1]).toMatch(/^ {2}approve 1000\.5 USDC to the Vault: tx 0x[0-9a-f]{64} in block \d+, gas \d+$/);
    expect(lines[2]).toMatch(/^ {2}Vault\.deposit 1000\.5 USDC: tx 0x[0-9a-f]{64} in block \d+, gas \d+$/);
    expect(lines.slice(3)).toEqual([
      "  Vault balance: 0 USDC -> 1000.5 USDC",
      "  free collateral: 0 USDC -> 1000.5 USDC",
      `  wallet ${a}: 10000 USDC -> 8999.5 USDC`,
      "  can take over 10005 USDC more notional",
    ]);
  });

  it("EOA: a withdrawal moves the figures by exactly the amount", async () => {
    const a = eoa.account.address;
    const before = await figures(a);
    const text = await run({ action: "withdraw", amount: "250.25", account: a, signer: eoa });
    const after = await figures(a);
    expect(moved(before, after)).toEqual({ vault: -usdc("250.25"), free: -usdc("250.25"), wallet: usdc("250.25") });
    expect(text.split("\n")[0]).toBe(`withdrew 250.25 USDC from the Vault account ${a} to ${a}`);
    expect(text).toContain("  Vault balance: 1000.5 USDC -> 750.25 USDC");
  });

  it("EOA: bad amounts, more than the wallet or the free collateral, the wrong signer: refused, nothing sent", async () => {
    const a = eoa.account.address;
    const sent = await nonce(eoa);
    const deposit = (amount: string | undefined) => run({ action: "deposit", amount, account: a, signer: eoa });
    expect(await refusal(deposit("-5"))).toBe('the amount must be positive: "-5"');
    expect(await refusal(deposit("0"))).toBe('the amount must be above 0: "0"');
    expect(await refusal(deposit("1.0000001"))).toBe('USDC has 6 decimals: "1.0000001" has 7');
    expect(await refusal(deposit("ten"))).toBe('not a decimal amount of USDC: "ten" (write it like 1000 or 250.5)');
    expect(await refusal(deposit(undefined))).toBe('deposit needs an amount of USDC, e.g. "1000" or "250.5"');
    expect(await refusal(deposit("9249.750001"))).toBe(
      `cannot deposit 9249.750001 USDC: the wallet ${a} holds 9249.75 USDC`,
    );
    expect(await refusal(run({ action: "withdraw", amount: "750.250001", account: a, signer: eoa }))).toBe(
      `cannot withdraw 750.250001 USDC from ${a}: its free collateral is 750.25 USDC`,
    );
    expect(await refusal(run({ action: "withdraw", amount: "1", account: a }))).toBe(
      "withdraw needs a signer key (KEEPER_PRIVATE_KEY)",
    );
    expect(await nonce(eoa)).toBe(sent);

    const other = await nonce(stranger);
    expect(await refusal(run({ action: "withdraw", amount: "1", account: a, signer: stranger }))).toBe(
      `the liquidator ${a} is an account of its own: only its key can withdraw, not ${stranger.account.address}'s`,
    );
    expect(await nonce(stranger)).toBe(other);
  });

  it("status warns below exchange.minFreeCollateral", async () => {
    const text = await run({ action: "status", account: eoa.account.address, minFreeCollateral: "5000" });
    expect(text).toContain("  ALERT: free collateral 750.25 USDC is below exchange.minFreeCollateral 5000 USDC");
    expect(logLines.some((l) => l.includes('"event":"collateral_below_minimum"'))).toBe(true);
    expect(await run({ action: "status", account: eoa.account.address, minFreeCollateral: "750.25" })).not.toContain(
      "ALERT",
    );
  });

  it("a paused Vault: a deposit is refused before any approval, a withdrawal by its simulation; nothing sent", async () => {
    const a = eoa.account.address;
    const pausable = parseAbi(["function pause()", "function unpause()"]);
    const set = (functionName: "pause" | "unpause") =>
      dev.tx.call(dev.owner, `Vault.${functionName}`, {
        address: dev.d.vault,
        abi: pausable,
        functionName,
        args: [],
        gas: 100_000n,
      });
    await set("pause");
    try {
      const sent = await nonce(eoa);
      expect(await refusal(run({ action: "deposit", amount: "10", account: a, signer: eoa }))).toBe(
        `cannot deposit: the Vault ${dev.d.vault} is paused`,
      );
      expect(await refusal(run({ action: "withdraw", amount: "10", account: a, signer: eoa }))).toBe(
        "Vault.withdraw 10 USDC would revert, so it was not sent: Pausable: paused (the Vault is paused)",
      );
      expect(await nonce(eoa)).toBe(sent);
    } finally {
      await set("unpause");
    }
  });

  it("refuses a liquidator address that is a contract but not a PerpV2Liquidator", async () => {
    expect(await refusal(run({ action: "status", account: dev.d.usdc }))).toBe(
      `the liquidator ${dev.d.usdc} is a contract but not a PerpV2Liquidator (clearingHouse() reverted)`,
    );
  });

  it("PerpV2Liquidator: only its owner deposits (a local account here), pulled from the owner's wallet", async () => {
    liquidator = await dev.deployLiquidator(owner);
    await dev.tx.call(owner, "setOperator", {
      address: liquidator,
      abi: perpV2LiquidatorAbi,
      functionName: "setOperator",
      args: [operator.account.address, true],
      gas: 100_000n,
    });
    const sent = await nonce(operator);
    expect(await refusal(run({ action: "deposit", amount: "50000", account: liquidator, signer: operator }))).toBe(
      `only the PerpV2Liquidator's owner ${owner.account.address} can deposit (the tokens are pulled from it), ` +
        `not ${operator.account.address}`,
    );
    expect(await nonce(operator)).toBe(sent);

    const before = await figures(liquidator);
    expect(before).toMatchObject({ kind: "contract", owner: owner.account.address, wallet: owner.account.address });
    const text = await run({
      action: "deposit",
      amount: "50000",
      account: liquidator,
      signer: owner.account as LocalAccount,
    });
    const after = await figures(liquidator);
    expect(moved(before, after)).toEqual({ vault: usdc("50000"), free: usdc("50000"), wallet: -usdc("50000") });
    expect(text).toContain("approve 50000 USDC to the PerpV2Liquidator: tx");
    expect(text).toContain("PerpV2Liquidator.deposit 50000 USDC: tx");
    expect(text).toContain(`  wallet ${owner.account.address}: 200000 USDC -> 150000 USDC`);
  });

  it("PerpV2Liquidator: an operator withdraws to the owner, exactly", async () => {
    const before = await figures(liquidator);
    const text = await run({ action: "withdraw", amount: "1234.567891", account: liquidator, signer: operator });
    const after = await figures(liquidator);
    expect(moved(before, after)).toEqual({
      vault: -usdc("1234.567891"),
      free: -usdc("1234.567891"),
      wallet: usdc("1234.567891"),
    });
    expect(text.split("\n")[0]).toBe(
      `withdrew 1234.567891 USDC from the Vault account ${liquidator} to ${owner.account.address}`,
    );
    const sent = await nonce(stranger);
    expect(await refusal(run({ action: "withdraw", amount: "1", account: liquidator, signer: stranger }))).toBe(
      `${stranger.account.address} is neither the PerpV2Liquidator's owner ${owner.account.address} nor one of its ` +
        "operators: it cannot withdraw",
    );
    expect(await nonce(stranger)).toBe(sent);
  });

  it("PerpV2Liquidator: after a takeover its status shows the position, and what it can still take", async () => {
    const [maker, trader] = [dev.account(1), dev.account(6)];
    await dev.fundMany([
      { trader: maker, usdc: "10000000" },
      { trader, usdc: "1000" },
    ]);
    await dev.addLiquidity(maker, "vETH", "10000", "20000000");
    await dev.openLong(trader, "vETH", "9000");
    await dev.crash("vETH", "1800");
    expect((await dev.views(trader)).liquidatable).toBe(true);
    await dev.liquidateBatch(operator, liquidator, [
      { trader: trader.account.address, baseToken: dev.market("vETH").baseToken, positionSize: 0n },
    ]);

    const view = await dev.views(liquidator);
    const f = await figures(liquidator);
    expect(f.blockNumber).toBe(view.blockNumber);
    const eth = view.markets.find((m) => m.name === "vETH");
    expect(eth?.positionSize).toBeGreaterThan(0n);
    expect(f.positions).toEqual([
      {
        baseToken: dev.market("vETH").baseToken,
        name: "vETH",
        size: eth?.positionSize,
        openNotional: eth?.takerOpenNotional,
        value: eth?.positionValue,
        markPrice: eth?.markPrice,
      },
    ]);
    expect(f.accountValue).toBe(view.accountValue);
    expect(f.maintenanceRequirement).toBe(view.marginRequirement);
    expect(f.totalAbsPositionValue).toBe(view.totalAbsPositionValue);
    expect(f.freeCollateral).toBe(view.freeCollateral);
    expect(f.initialRequirement).toBe((view.totalAbsPositionValue * 100_000n) / 1_000_000n);
    expect(f.takeoverCapacity).toBe(f.freeCollateral * 10n ** 12n * 10n);
    expect(f.hasOrders).toBe(false);

    const text = await run({ action: "status", account: liquidator });
    expect(text).toMatch(
      new RegExp(`^liquidator ${liquidator} \\(PerpV2Liquidator, owner ${owner.account.address}\\) at block \\d+\\n`),
    );
    expect(text).toContain("  positions (1):\n    vETH long ");
    expect(text).toMatch(
      / {4}vETH long [\d.]+ at mark 1[78]\d\d\.\d+: value [\d.]+, open notional -[\d.]+, unrealized [+-]/,
    );
    expect(text).toMatch(/ {2}margin: maintenance [\d.]+ \(mmRatio 6\.25%\), initial [\d.]+ \(imRatio 10%\) of [\d.]+/);
    expect(text).toContain(`  can take over ${formatUnits(f.takeoverCapacity / 10n ** 12n, 6)} USDC more notional`);
  });

  it("PerpV2Liquidator: a withdrawal above what the Vault lets go is refused without sending anything", async () => {
    const f = await figures(liquidator);
    const sent = await nonce(operator);
    const tooMuch = formatUnits(f.withdrawable + 1n, 6);
    expect(await refusal(run({ action: "withdraw", amount: tooMuch, account: liquidator, signer: operator }))).toBe(
      `cannot withdraw ${tooMuch} USDC from ${liquidator}: its free collateral is ${formatUnits(f.freeCollateral, 6)} USDC`,
    );
    expect(await nonce(operator)).toBe(sent);
    // a part of it goes, to the owner's wallet exactly
    const before = await figures(liquidator);
    await run({ action: "withdraw", amount: "100", account: liquidator, signer: operator });
    const after = await figures(liquidator);
    expect(after.walletBalance - before.walletBalance).toBe(usdc("100"));
    expect(after.freeCollateral).toBeLessThan(before.freeCollateral);
  });

  it("never logs or prints a key", () => {
    const keys = [eoa, owner, operator].map((w) => {
      const hd = (w.account as { getHdKey?: () => { privateKey: Uint8Array | null } }).getHdKey?.();
      return toHex(hd?.privateKey ?? new Uint8Array()).slice(2);
    });
    expect(keys.every((k) => k.length === 64)).toBe(true);
    const all = logLines.join("\n");
    expect(all).toContain('"event":"collateral_tx_sent"');
    expect(all).toContain('"event":"collateral_tx_confirmed"');
    for (const k of keys) expect(all.toLowerCase()).not.toContain(k);
  });
});
