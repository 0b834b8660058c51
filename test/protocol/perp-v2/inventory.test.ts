/**
 * The liquidator's inventory (src/protocol/perpV2/inventory.ts): what it holds after takeovers, which closes a
 * transaction carries (bounded by the mark, refused while the pool is beyond the bound or still moving against it),
 * the close on its own (upkeep), hold mode's exposure limit, the alerts, and how the liquidator contract's close
 * events become outcomes for the executor.
 */
import {
  type Address,
  decodeFunctionData,
  encodeAbiParameters,
  encodeEventTopics,
  getAddress,
  type Hex,
  type Log,
  type PublicClient,
} from "viem";
import { describe, expect, it } from "vitest";
import { perpV2LiquidatorAbi } from "../../../abi/PerpV2Liquidator.ts";
import { perpV2Accounts, perpV2Protocol } from "../../../src/protocol/perpV2/adapter.ts";
import type { PerpV2Book } from "../../../src/protocol/perpV2/book.ts";
import { parsePerpV2ExchangeConfig } from "../../../src/protocol/perpV2/config.ts";
import { perpV2Decoder } from "../../../src/protocol/perpV2/events.ts";
import { PerpV2Inventory } from "../../../src/protocol/perpV2/inventory.ts";
import { perpV2Margin } from "../../../src/protocol/perpV2/margin.ts";
import type { PriceView } from "../../../src/protocol/types.ts";
import { captureLogs } from "../../helpers/logs.ts";
import { BTC, bookWithMarkets, CONTRACTS, depositUsdc, ETH, takerTrade, trader, WAD } from "./helpers.ts";

const LIQUIDATOR = "0x00000000000000000000000000000000000c0ffe" as Address;
const holder = LIQUIDATOR.toLowerCase() as Address;
const eth = ETH.toLowerCase() as Address;
const btc = BTC.toLowerCase() as Address;
const Q96 = 2n ** 96n;

/** sqrtPriceX96 of a WAD price (to a few units in 1e18: enough for these checks). */
function sqrtX96(priceWad: bigint): bigint {
  const target = (priceWad * Q96 * Q96) / WAD;
  let x = BigInt(Math.floor(Math.sqrt(Number(target))));
  for (let i = 0; i < 8; i++) x = (x + target / x) / 2n;
  return x;
}

/** A client whose pool reads answer `spot` (by pool address), counted. */
function poolClient(spot: Map<string, bigint>) {
  let reads = 0;
  const client = {
    readContract: async ({ address }: { address: Address }) => {
      reads++;
      const price = spot.get(address.toLowerCase());
      if (price === undefined) throw new Error("no pool");
      return [sqrtX96(price), 0, 0, 0, 0, 0, true] as const;
    },
  } as unknown as PublicClient;
  return { client, reads: () => reads };
}

const flush = () => new Promise((r) => setImmediate(r));

const deposit = depositUsdc;
const position = (book: PerpV2Book, who: Address, base: Address, size: bigint, openNotional: bigint) =>
  takerTrade(book, who, base, size, openNotional);

const at = (block: bigint, eth = 2000n, btc = 30_000n): PriceView => ({
  // mark and index TWAP of each market (ids 3k, 3k+1): the index bounds the funding accrued since the last update
  prices: new Map([
    [0, eth * WAD],
    [1, eth * WAD],
    [3, btc * WAD],
    [4, btc * WAD],
  ]),
  timestamp: 1_000n + block,
  blockNumber: block,
});

function setup(inventory: Record<string, unknown> = {}, spot = new Map<string, bigint>()) {
  const book = bookWithMarkets();
  const logs = captureLogs();
  const pools = poolClient(spot);
  const settings = parsePerpV2ExchangeConfig({
    adapter: "perp-v2",
    address: CONTRACTS.clearingHouse,
    deployBlock: 0,
    liquidator: LIQUIDATOR,
    inventory,
  }).inventory;
  const inv = new PerpV2Inventory({
    holder: LIQUIDATOR,
    book,
    settings,
    canClose: true,
    client: pools.client,
    log: logs.log,
  });
  const ethPool = book.markets.get(0)?.pool as Address;
  const btcPool = book.markets.get(3)?.pool as Address;
  return { book, logs, inv, pools, ethPool, btcPool };
}

describe("perp-v2 inventory", () => {
  it("follows what the liquidator holds: said when taken over, closed when the book shows it flat", async () => {
    const { book, logs, inv, pools } = setup();
    deposit(book, holder, 10_000_000_000n);
    inv.onTick(at(10n));
    await flush();
    expect(inv.held()).toEqual([]);
    expect(pools.reads()).toBe(0); // nothing held, nothing being liquidated: no pool read
    position(book, holder, eth, 2n * WAD, -3950n * WAD);
    inv.onTick(at(11n));
    expect(inv.held()).toEqual([
      expect.objectContaining({ priceId: 0, size: 2n * WAD, notional: 4000n * WAD, since: 11n }),
    ]);
    expect(inv.exposure()).toBe(4000n * WAD);
    expect(logs.events("inventory_held")).toHaveLength(1);
    inv.onTick(at(12n));
    expect(logs.events("inventory_held")).toHaveLength(1); // said once
    position(book, holder, eth, -2n * WAD, 0n);
    inv.onTick(at(13n));
    expect(inv.held()).toEqual([]);
    expect(logs.events("inventory_closed")).toEqual([expect.objectContaining({ blockNumber: "13" })]);
  });

  it("closes every market held and every market a takeover fills, each bounded by its mark", () => {
    const { book, inv } = setup();
    position(book, holder, btc, -(WAD / 10n), 3000n * WAD);
    inv.onTick(at(20n, 1900n, 29_000n));
    const closes = inv.closesFor([{ baseToken: ETH, side: 1n }]);
    expect(closes).toEqual([
      { baseToken: btc, refPriceX18: 29_000n * WAD },
      { baseToken: ETH, refPriceX18: 1900n * WAD },
    ]);
    expect(inv.closesAtMost([ETH])).toBe(2);
    expect(inv.closesAtMost([BTC])).toBe(1);
  });

  it("sends no close the pool cannot fill within maxSlippageBps (after its fee), nor while the pool moves against it", async () => {
    const spot = new Map<string, bigint>();
    const { book, inv, ethPool, pools } = setup({ maxSlippageBps: 100 }, spot);
    position(book, holder, eth, 2n * WAD, -3950n * WAD);
    // the pool at the mark: a sale nets 0.3% under it, within 1%
    spot.set(ethPool.toLowerCase(), 2000n * WAD);
    inv.onTick(at(30n));
    await flush();
    expect(pools.reads()).toBeGreaterThan(0);
    expect(inv.closesFor([]).map((c) => c.baseToken)).toEqual([eth]);
    // the pool 1% under the mark: with the fee, beyond the bound, and it fell 1% since the last head
    spot.set(ethPool.toLowerCase(), 1980n * WAD);
    inv.onTick(at(31n));
    await flush();
    expect(inv.closesFor([])).toEqual([]);
    expect(inv.upkeep()).toBeUndefined();
    // the pool falls 1% more and the mark follows it: within the bound, but the pool is still falling (a crash
    // under way, whose next step lands ahead of our transaction): deferred
    spot.set(ethPool.toLowerCase(), 1960n * WAD);
    inv.onTick(at(32n, 1960n));
    await flush();
    expect(inv.closesFor([])).toEqual([]);
    // a calm head: closed, bounded by the mark
    inv.onTick(at(33n, 1960n));
    await flush();
    expect(inv.closesFor([]).map((c) => c.refPriceX18)).toEqual([1960n * WAD]);
    // a short held is bought back: a pool above the mark by more than the bound refuses it
    position(book, holder, eth, -4n * WAD, 3950n * WAD);
    spot.set(ethPool.toLowerCase(), 2000n * WAD);
    inv.onTick(at(34n, 1960n));
    await flush();
    expect(inv.held()[0]?.size).toBe(-2n * WAD);
    expect(inv.closesFor([])).toEqual([]);
  });

  it("hands the executor one close on its own for everything held, keyed on the largest market", async () => {
    const { book, inv } = setup({ maxSlippageBps: 50 });
    position(book, holder, eth, WAD, -2000n * WAD);
    position(book, holder, btc, WAD / 10n, -3000n * WAD);
    expect(inv.upkeep()).toBeUndefined(); // no head yet
    inv.onTick(at(40n));
    const finding = inv.upkeep();
    expect(finding?.target).toEqual({ key: `${holder}/3`, account: holder, trader: LIQUIDATOR, marketId: 3 });
    // the "reward": the loss accepted on the close, notional x maxSlippageBps
    expect(finding?.expectedReward).toBe((5000n * WAD * 50n) / 10_000n);
    expect(inv.owns(`${holder}/0`)).toBe(true);
    expect(inv.owns(`${trader(1).toLowerCase()}/0`)).toBe(false);
    expect(inv.wanted()).toBe(true);
    expect(inv.current(`${holder}/3`)).toBe(book.accounts.get(holder));
    // a new state at every head: a refused close is tried again at the next
    inv.onTick(at(41n));
    expect(inv.upkeep()?.state).not.toEqual(finding?.state);
  });

  it("says a position still held closeWithinBlocks after its takeover is overdue, once", () => {
    const { book, logs, inv } = setup({ closeWithinBlocks: 3 });
    position(book, holder, eth, WAD, -2000n * WAD);
    for (let b = 50n; b <= 56n; b++) inv.onTick(at(b));
    expect(logs.events("inventory_close_overdue")).toEqual([
      expect.objectContaining({ heldBlocks: "3", blockNumber: "53" }),
    ]);
  });

  it("warns when the liquidator's account value falls under twice its maintenance margin", () => {
    const { book, logs, inv } = setup();
    deposit(book, holder, 510_000_000n); // 510 USDC
    position(book, holder, eth, 2n * WAD, -4000n * WAD);
    inv.onTick(at(60n)); // value 510 (less pending funding, a bound), maintenance 6.25% x 4000 = 250
    expect(logs.events("liquidator_margin_low")).toEqual([]);
    inv.onTick(at(61n, 1990n)); // value 490 < 2 x 248.75
    inv.onTick(at(62n, 1980n));
    expect(logs.events("liquidator_margin_low")).toHaveLength(1);
  });

  it("hold mode: closes nothing, and cuts takeovers to the notional it may still hold", () => {
    const { book, inv } = setup({ mode: "hold", maxExposure: "5000" });
    position(book, holder, eth, WAD, -2000n * WAD);
    inv.onTick(at(70n, 1900n));
    expect(inv.closing).toBe(false);
    expect(inv.closesFor([{ baseToken: ETH, side: 1n }])).toEqual([]);
    expect(inv.upkeep()).toBeUndefined();
    expect(inv.exposureLeft()).toBe(3100n * WAD);
    // a trader long 5 ETH, liquidatable at 1900: the takeover is cut to 3100 of notional
    const who = trader(1).toLowerCase() as Address;
    deposit(book, who, 800_000_000n);
    position(book, who, eth, 5n * WAD, -10_000n * WAD);
    const model = perpV2Margin(() => book, { contracts: CONTRACTS });
    const accounts = perpV2Accounts({
      model,
      clearingHouse: CONTRACTS.clearingHouse,
      batch: true,
      exposureLeft: () => inv.exposureLeft(),
      holder: inv.holder,
    });
    const view = at(70n, 1900n);
    const account = book.accounts.get(who);
    if (!account) throw new Error("no account");
    const [found] = accounts.findings(account, model.evaluate(account, view), view, book);
    expect(found?.target.size).toBe((3100n * WAD * WAD) / (1900n * WAD));
    // the holder's own account is never a target, however low
    const own = book.accounts.get(holder);
    if (!own) throw new Error("no holder");
    expect(accounts.findings(own, model.evaluate(own, at(70n, 100n)), at(70n, 100n), book)).toEqual([]);
  });

  it("turns the liquidator's close events into outcomes: closed, or refused (said, with the reason)", () => {
    const { book, logs, inv } = setup();
    position(book, holder, eth, WAD, -2000n * WAD);
    inv.onTick(at(80n));
    const protocol = perpV2Protocol({
      clearingHouse: CONTRACTS.clearingHouse,
      liquidator: LIQUIDATOR,
      book,
      decoder: perpV2Decoder(CONTRACTS),
      inventory: inv,
    });
    const event = (name: "InventoryClosed" | "InventoryCloseFailed", base: Address, data: Hex): Log =>
      ({
        address: LIQUIDATOR,
        topics: encodeEventTopics({ abi: perpV2LiquidatorAbi, eventName: name, args: { baseToken: base } }),
        data,
        blockNumber: 81n,
        logIndex: 0,
        transactionIndex: 0,
        transactionHash: `0x${"11".repeat(32)}`,
        blockHash: `0x${"22".repeat(32)}`,
        removed: false,
      }) as unknown as Log;
    const reason = `0x08c379a0${encodeAbiParameters([{ type: "string" }], ["CH_TLRS"]).slice(2)}` as Hex;
    const outcomes = protocol.outcomes([
      event("InventoryClosed", ETH, encodeAbiParameters([{ type: "int256" }, { type: "uint256" }], [WAD, 1990n * WAD])),
      event("InventoryCloseFailed", BTC, encodeAbiParameters([{ type: "int256" }, { type: "bytes" }], [WAD, reason])),
    ]);
    expect(outcomes.get(`${holder}/0`)).toEqual({ kind: "closed" });
    expect(outcomes.get(`${holder}/3`)).toEqual({ kind: "close_refused" });
    expect(logs.events("inventory_close_failed")).toEqual([expect.objectContaining({ reason: "CH_TLRS" })]);
    // an upkeep target is a closeInventory call, with its gas floor counting the closes
    const target = { key: `${holder}/0`, account: holder, trader: LIQUIDATOR, marketId: 0 };
    const call = decodeFunctionData({ abi: perpV2LiquidatorAbi, data: protocol.encodeSingle(target) });
    expect(call.functionName).toBe("closeInventory");
    expect(call.args).toEqual([[{ baseToken: getAddress(ETH), refPriceX18: 2000n * WAD }], 100n]);
    expect(protocol.gasFloor?.([target])).toBe(800_000n);
  });
});
