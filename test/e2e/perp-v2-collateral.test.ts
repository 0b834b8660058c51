/**
 * The keeper on Perp v2 (real Curie bytecode, Anvil with 1 s blocks) when its PerpV2Liquidator's collateral in the
 * Vault is too small to take over every liquidatable position: a crash of vETH makes several accounts liquidatable
 * at once, and the liquidator holds what it takes over (inventory mode hold, a large maxExposure: nothing is closed,
 * so every takeover keeps using its collateral). The keeper must plan within the liquidator's free collateral before
 * sending (ClearingHouse's CH_NEFCI never fails an item or a transaction), say so (liquidator_collateral_short,
 * liquidator_collateral_low under exchange.minFreeCollateral), take what fits (sizes cut to it), and leave the rest;
 * once the operator deposits more (PerpV2Liquidator.deposit, the path `perp-keeper collateral deposit` takes), the
 * rest are liquidated. Health is always the chain's own (getAccountValue < getMarginRequirementForLiquidation), and
 * every transaction of the keeper's signers is checked on chain.
 */
import { type Address, decodeFunctionData, type Hex, parseUnits } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { perpV2LiquidatorAbi } from "../../abi/PerpV2Liquidator.ts";
import { vaultAbi } from "../../src/devnet/perpV2/abis.ts";
import { PERP_V2_SCENARIO_GAS } from "../../src/devnet/perpV2/scenario.ts";
import {
  chainBetween,
  type HealthReader,
  healthReader,
  KEEPER_KEYS,
  type Leg,
  openTraders,
  type PerpV2Fixture,
  ROLE,
  settledKeeper,
  startPerpV2Fixture,
  startPerpV2Keeper,
  stopKeeper,
  type TestKeeper,
  type Trader,
  type TraderSpec,
  unexplained,
  waitHealthy,
  writeLogs,
} from "../helpers/perpV2.ts";
import { until } from "../helpers/wait.ts";

const ETH = "vETH";
/** USDC the liquidator keeps in the Vault for the crash: a fraction of what the takeovers need (~$3,700 at imRatio). */
const SHORT_STAKE = 1500;
/** exchange.minFreeCollateral: under the stake, crossed by the first takeover. */
const MIN_FREE = "1000";
/** The operator's deposit once the keeper has been short for a while: plenty for the rest. */
const TOP_UP = "50000";
/** Heads after the crash the keeper must have said it was short at before the deposit. */
const SHORT_HEADS = 5;
const long = (market: Leg["market"], notional: number): Leg => ({ market, side: "long", notional: String(notional) });
const spec = (name: string, usdc: number, ...legs: Leg[]): TraderSpec => ({ name, usdc: String(usdc), legs });

/**
 * After vETH 2000 -> 1800 (perp-v2-keeper.test.ts measured these): the four "full" accounts wholly liquidatable
 * (margin ratio < 3.125%, ~$8,000 taken over each, ~$800 of free collateral at imRatio 10%), the two "part" ones in
 * the partial regime, the safe ones healthy throughout.
 */
const TRADERS: TraderSpec[] = [
  ...[9000, 9000, 8500, 8500].map((n, i) => spec(`full${i}`, 1000, long(ETH, n))),
  ...[6500, 6900].map((n, i) => spec(`part${i}`, 1000, long(ETH, n))),
  spec("safe0", 2000, long(ETH, 6000)),
  spec("safe1", 3000, long(ETH, 8000)),
];

let fx: PerpV2Fixture | undefined;
let run: TestKeeper | undefined;
const traders: Trader[] = [];
const signers = KEEPER_KEYS.map((k) => privateKeyToAccount(k).address.toLowerCase() as Address);
const ready = () => fx as PerpV2Fixture;
const keeper = () => run as TestKeeper;
const lower = (a: string) => a.toLowerCase() as Address;
const nameOf = (a: Address) => traders.find((t) => t.address === a)?.name ?? a;
const usdc = (amount: string | number) => parseUnits(String(amount), 6);
let health: HealthReader;

/** The liquidator contract's free collateral in the Vault (USDC units, 6 decimals) at the head. */
const freeCollateral = () =>
  ready().client.readContract({
    address: ready().dev.d.vault,
    abi: vaultAbi,
    functionName: "getFreeCollateral",
    args: [ready().liquidator],
  }) as Promise<bigint>;

/** The batch items (trader, size asked) of a keeper transaction to our liquidator; none for another call. */
async function itemsOf(hash: Hex): Promise<{ trader: Address; positionSize: bigint }[]> {
  const tx = await ready().client.getTransaction({ hash });
  try {
    const call = decodeFunctionData({ abi: perpV2LiquidatorAbi, data: tx.input });
    if (call.functionName !== "cancelAndLiquidate" && call.functionName !== "liquidateAndClose") return [];
    const items = call.args[1] as readonly { trader: Address; positionSize: bigint }[];
    return items.map((i) => ({ trader: lower(i.trader), positionSize: i.positionSize }));
  } catch {
    return [];
  }
}

beforeAll(async () => {
  fx = await startPerpV2Fixture();
  const { dev } = fx;
  health = healthReader(fx);
  // the fixture deposits 2M USDC for the liquidator: the operator takes all but SHORT_STAKE back
  const owner = dev.account(ROLE.owner);
  const staged = await freeCollateral();
  await dev.tx.call(owner, "PerpV2Liquidator.withdraw", {
    address: fx.liquidator,
    abi: perpV2LiquidatorAbi,
    functionName: "withdraw",
    args: [dev.d.usdc, staged - usdc(SHORT_STAKE)],
    gas: PERP_V2_SCENARIO_GAS.liquidatorCall,
  });
  traders.push(...(await openTraders(dev, 10, TRADERS)));
  run = await startPerpV2Keeper(fx, {
    exchange: { inventory: { mode: "hold", maxExposure: "10000000" }, minFreeCollateral: MIN_FREE },
  });
  const logs = run.logs;
  await until("backfill_completed", () => logs.events("backfill_completed").length > 0, 60_000);
}, 240_000);

afterAll(async () => {
  try {
    const dir = process.env.PV2_E2E_LOGS; // a directory: the keeper's log and who is who, for a diagnosis
    if (dir && fx && run) {
      const names = Object.fromEntries(traders.map((t) => [t.address, t.name]));
      writeLogs(dir, [run], { names, liquidator: fx.liquidator, d: fx.dev.d });
    }
    await stopKeeper(run?.keeper);
  } finally {
    await fx?.stop();
  }
});

describe("the keeper on Perp v2 with too little collateral for every takeover", () => {
  let crashStart = 0n;
  let shortAt = 0n;
  let leftBeforeDeposit: Address[] = [];
  let liquidatableAfterCrash: Address[] = [];

  it("takes what fits, says the collateral is short, and sends nothing the liquidator's collateral cannot take", async () => {
    const { dev } = ready();
    const { logs } = keeper();
    const who = traders.map((t) => t.address);
    const liquidator = lower(ready().liquidator);
    expect(await freeCollateral()).toBe(usdc(SHORT_STAKE));
    expect([...(await health(who)).liquidatable.values()].some(Boolean)).toBe(false);
    expect(logs.events("liquidator_collateral_low")).toEqual([]);

    crashStart = await ready().head();
    await dev.crash(ETH, "1800");
    const crashEnd = await ready().head();
    liquidatableAfterCrash = [...(await health(who)).liquidatable].filter(([, x]) => x).map(([a]) => a);

    // short for a while: said at SHORT_HEADS heads after the crash, something taken, something still left
    await until(
      "the keeper short of collateral",
      async () => {
        const heads = new Set(
          logs
            .events("liquidator_collateral_short")
            .filter((l) => BigInt(String(l.blockNumber)) > crashEnd)
            .map((l) => l.blockNumber),
        );
        if (heads.size < SHORT_HEADS) return false;
        const { ours } = await chainBetween(ready(), [], crashStart, await ready().head());
        return ours.length > 0 && [...(await health(who)).liquidatable.values()].some(Boolean);
      },
      60_000,
    );
    await settledKeeper(keeper().keeper).catch(() => {});
    shortAt = await ready().head();
    leftBeforeDeposit = [...(await health(who)).liquidatable].filter(([, x]) => x).map(([a]) => a);
    const chain = await chainBetween(ready(), signers, crashStart, shortAt);
    const items = (await Promise.all(chain.txs.map((t) => itemsOf(t.hash)))).flat();
    const cut = items.filter((i) => i.positionSize !== 0n);
    const short = logs.events("liquidator_collateral_short");
    const low = logs.events("liquidator_collateral_low");
    const free = await freeCollateral();
    const nefci = chain.failed.filter((f) => f.reason.includes("CH_NEFCI"));
    console.log(
      `[perp-v2 collateral e2e] crash blocks ${crashStart}..${crashEnd}: ${liquidatableAfterCrash.length} accounts liquidatable (${liquidatableAfterCrash.map(nameOf).join(", ")}); with ${SHORT_STAKE} USDC: ${chain.ours.length} liquidations of ${new Set(chain.ours.map((l) => l.trader)).size} accounts in ${chain.txs.length} transactions (${cut.length} items sized to fit, ${chain.reverted.length} reverted, ${chain.failed.length} items failed, ${nefci.length} CH_NEFCI); at block ${shortAt} ${leftBeforeDeposit.length} left (${leftBeforeDeposit.map(nameOf).join(", ")}), free collateral ${free} (USDC units); ${short.length} liquidator_collateral_short, ${low.length} liquidator_collateral_low`,
    );

    // the crash made more liquidatable than the stake covers: some taken, some left, the safe ones never touched
    const hit = new Set([...liquidatableAfterCrash, ...chain.ours.map((l) => l.trader)]);
    expect(hit.size).toBeGreaterThanOrEqual(4);
    expect.soft(chain.ours.length).toBeGreaterThanOrEqual(1);
    expect.soft(leftBeforeDeposit.length).toBeGreaterThanOrEqual(1);
    expect.soft(leftBeforeDeposit.filter((a) => nameOf(a).startsWith("safe"))).toEqual([]);
    // said: short at the heads it could not take everything, and low once the free collateral crossed the minimum
    expect.soft(short.length).toBeGreaterThanOrEqual(1);
    expect.soft(short.every((l) => typeof l.budgetLeft === "string" && typeof l.account === "string")).toBe(true);
    expect.soft(low).toHaveLength(1);
    expect.soft(low[0]).toMatchObject({ liquidator: ready().liquidator, minFreeCollateral: MIN_FREE });
    expect.soft(free).toBeLessThan(usdc(MIN_FREE));
    // taken what fits: at least one item asked for a size cut to the free collateral, not the contract's maximum
    expect.soft(cut.length).toBeGreaterThanOrEqual(1);
    // planned within the collateral: no item failed for it (CH_NEFCI) or for anything unexplained, nothing reverted
    expect.soft(nefci).toEqual([]);
    expect.soft(unexplained(chain.failed, chain.liquidated).map((f) => ({ ...f, who: nameOf(f.trader) }))).toEqual([]);
    expect.soft(chain.reverted).toEqual([]);
    expect.soft(chain.calls(liquidator)).toEqual([]);
    expect.soft(chain.liquidated.filter((l) => l.liquidator !== liquidator)).toEqual([]);
  }, 180_000);

  it("liquidates the rest once the operator deposits more: none left liquidatable, nothing reverted", async () => {
    const { dev } = ready();
    const { logs } = keeper();
    expect(leftBeforeDeposit.length).toBeGreaterThanOrEqual(1);
    const who = traders.map((t) => t.address);
    const liquidator = lower(ready().liquidator);
    const before = await freeCollateral();
    await dev.fundLiquidator(dev.account(ROLE.owner), ready().liquidator, TOP_UP);
    // the block of the deposit (the Vault's Deposited for our liquidator): the keeper's takeovers follow it
    const [deposit] = await ready().client.getContractEvents({
      address: dev.d.vault,
      abi: vaultAbi,
      eventName: "Deposited",
      args: { trader: ready().liquidator },
      fromBlock: shortAt,
    });
    expect(deposit).toBeDefined();
    const deposited = deposit?.blockNumber ?? 0n;
    expect(deposit?.args.amount).toBe(usdc(TOP_UP));
    expect(await freeCollateral()).toBeGreaterThan(before + usdc(TOP_UP) / 2n);

    const waited = await waitHealthy(health, who, "no account liquidatable after the deposit", nameOf, 60_000);
    await settledKeeper(keeper().keeper).catch(() => {});
    const end = await ready().head();
    await until("two more blocks", async () => (await ready().head()) >= end + 2n, 10_000);
    const all = await chainBetween(ready(), signers, crashStart, await ready().head());
    const after = await chainBetween(ready(), signers, deposited, await ready().head());
    const nefci = all.failed.filter((f) => f.reason.includes("CH_NEFCI"));
    console.log(
      `[perp-v2 collateral e2e] deposit of ${TOP_UP} USDC at block ${deposited}: ${after.ours.length} liquidations of ${new Set(after.ours.map((l) => l.trader)).size} accounts after it, healthy at ${waited.at ?? "never"}; in all ${all.ours.length} liquidations in ${all.txs.length} transactions (${all.reverted.length} reverted, ${all.failed.length} items failed, ${nefci.length} CH_NEFCI)${waited.error ? `; ${waited.error}` : ""}`,
    );

    // every account the chain said was liquidatable is healthy, the ones left before the deposit liquidated after it
    expect.soft(waited.error).toBeUndefined();
    for (const a of leftBeforeDeposit)
      expect.soft(after.calls(a).length, `${nameOf(a)} after the deposit`).toBeGreaterThan(0);
    for (const a of liquidatableAfterCrash)
      expect.soft(all.calls(a).length, `${nameOf(a)} liquidated`).toBeGreaterThan(0);
    expect.soft(all.ours.filter((l) => nameOf(l.trader).startsWith("safe"))).toEqual([]);
    // no keeper transaction reverted, no item failed for lack of collateral or anything unexplained
    expect.soft(all.reverted).toEqual([]);
    expect.soft(nefci).toEqual([]);
    expect.soft(unexplained(all.failed, all.liquidated).map((f) => ({ ...f, who: nameOf(f.trader) }))).toEqual([]);
    expect.soft(all.liquidated.filter((l) => l.liquidator !== liquidator)).toEqual([]);
    expect.soft(logs.events("liquidation_reverted")).toEqual([]);
  }, 120_000);
});
