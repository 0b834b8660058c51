/**
 * LiquidationProtocol.competitorTargets of the three adapters: other senders' liquidation calls, encoded with viem as
 * a competitor would, decoded into the target keys the keeper's own findings use. Each adapter's own calls make the
 * round trip (encodeSingle / encodeBatch → competitorTargets: the same keys); calls elsewhere, other functions,
 * garbage and truncated calldata are not liquidations (undefined), and nothing throws.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  type Abi,
  type Address,
  concat,
  encodeFunctionData,
  getAddress,
  type Hex,
  pad,
  slice,
  toFunctionSelector,
  toHex,
} from "viem";
import { describe, expect, it } from "vitest";
import { iCrossMarginEngineAbi } from "../../abi/ICrossMarginEngine.ts";
import { perpEngineAbi } from "../../abi/PerpEngine.ts";
import { perpV2LiquidatorAbi } from "../../abi/PerpV2Liquidator.ts";
import type { LiquidationProtocol, LiquidationTarget } from "../../src/protocol/adapter.ts";
import { crossMarginProtocol, fulfillData, type PriceAttacher } from "../../src/protocol/crossMargin/adapter.ts";
import { crossMarginCompetitors } from "../../src/protocol/crossMargin/competitors.ts";
import type { CrossMarginAccount, CrossMarginBookView } from "../../src/protocol/crossMargin/records.ts";
import { positionKey } from "../../src/protocol/perpEngine/book.ts";
import { perpEngineCompetitors } from "../../src/protocol/perpEngine/competitors.ts";
import { perpEngineProtocol } from "../../src/protocol/perpEngine/protocol.ts";
import { perpV2Accounts, perpV2Protocol } from "../../src/protocol/perpV2/adapter.ts";
import type { PerpV2Book } from "../../src/protocol/perpV2/book.ts";
import { perpV2Competitors } from "../../src/protocol/perpV2/competitors.ts";
import { perpV2Decoder } from "../../src/protocol/perpV2/events.ts";
import { FollowUpPlans } from "../../src/protocol/perpV2/followUps.ts";
import { perpV2Margin } from "../../src/protocol/perpV2/margin.ts";
import { targetKey } from "../../src/protocol/perpV2/records.ts";
import type { PriceView } from "../../src/protocol/types.ts";
import { BTC, bookWithMarkets, CONTRACTS, depositUsdc, ETH, ev, takerTrade, trader, WAD } from "./perp-v2/helpers.ts";

const addr = (n: number): Address => getAddress(pad(toHex(n), { size: 20 }));
const OTHER = addr(0xdead);
/** Mixed-case traders: keys are lower case whatever the calldata's case. */
const ALICE = getAddress("0x00000000000000000000000000000000000a11ce");
const BOB = getAddress("0x0000000000000000000000000000000000000b0b");

/** A deterministic byte stream for the garbage cases. */
function bytes(seed: number, length: number): Hex {
  let x = seed >>> 0 || 1;
  const out: number[] = [];
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out.push((x >>> 0) & 0xff);
  }
  return toHex(new Uint8Array(out));
}

/**
 * Garbage, truncations of each valid call, and each known selector with random bodies: never a throw, never a key
 * from a truncated call, and the answer for anything else is undefined or an array of strings.
 */
function neverThrows(
  competitorTargets: (input: Hex, to: Address) => readonly string[] | undefined,
  to: Address,
  valid: readonly Hex[],
): void {
  const garbage: Hex[] = ["0x", "0x00", "0x1234", "0xdeadbeef", "0xzz" as Hex, "" as Hex, bytes(7, 4), bytes(9, 300)];
  for (const data of garbage) expect(competitorTargets(data, to)).toBeUndefined();
  for (const data of valid) {
    const size = (data.length - 2) / 2;
    // every cut inside the head, and a few inside the tail: the ABI decoder must refuse them all
    for (const cut of [1, 3, 4, 5, 20, 35, 36, 67, 68, size - 32, size - 1]) {
      if (cut <= 0 || cut >= size) continue;
      const truncated = slice(data, 0, cut);
      expect(() => competitorTargets(truncated, to)).not.toThrow();
      if (cut < size - 31) expect(competitorTargets(truncated, to), `cut at ${cut}`).toBeUndefined();
    }
    const selector = slice(data, 0, 4);
    for (let seed = 1; seed <= 40; seed++) {
      const data2 = concat([selector, bytes(seed, (seed * 37) % 400)]);
      let answer: readonly string[] | undefined;
      expect(() => {
        answer = competitorTargets(data2, to);
      }).not.toThrow();
      if (answer !== undefined) for (const key of answer) expect(typeof key).toBe("string");
    }
  }
}

describe("PerpEngine", () => {
  const ENGINE = addr(0xe1);
  const protocol = perpEngineProtocol(ENGINE);
  const competitors = protocol.competitorTargets;
  const targetOf = (trader: Address, marketId: number): LiquidationTarget => ({
    key: positionKey(marketId, trader),
    trader,
    marketId,
  });
  const targets = [targetOf(ALICE, 1), targetOf(BOB, 2), targetOf(ALICE, 3)];

  it("is wired into the protocol", () => {
    expect(competitors).toBeTypeOf("function");
  });

  it("round trip: the keeper's own single and batch calls give back their targets' keys", () => {
    const c = competitors as NonNullable<typeof competitors>;
    for (const t of targets) expect(c(protocol.encodeSingle(t), protocol.address)).toEqual([t.key]);
    const batch = protocol.encodeBatch?.(targets) as Hex;
    expect(c(batch, protocol.address)).toEqual(targets.map((t) => t.key));
    expect(targets.map((t) => t.key)).toEqual([
      `1:${ALICE.toLowerCase()}`,
      `2:${BOB.toLowerCase()}`,
      `3:${ALICE.toLowerCase()}`,
    ]);
  });

  it("a competitor's liquidate and liquidateMany, any address case; duplicates once", () => {
    const c = perpEngineCompetitors(ENGINE.toLowerCase() as Address);
    const single = encodeFunctionData({ abi: perpEngineAbi, functionName: "liquidate", args: [BOB, 7n] });
    expect(c(single, ENGINE)).toEqual([`7:${BOB.toLowerCase()}`]);
    expect(c(single.toUpperCase().replace("0X", "0x") as Hex, ENGINE.toLowerCase() as Address)).toEqual([
      `7:${BOB.toLowerCase()}`,
    ]);
    const many = encodeFunctionData({
      abi: perpEngineAbi,
      functionName: "liquidateMany",
      args: [
        [BOB, ALICE, BOB.toLowerCase() as Address],
        [7n, 7n, 7n],
      ],
    });
    expect(c(many, ENGINE)).toEqual([`7:${BOB.toLowerCase()}`, `7:${ALICE.toLowerCase()}`]);
    const empty = encodeFunctionData({ abi: perpEngineAbi, functionName: "liquidateMany", args: [[], []] });
    expect(c(empty, ENGINE)).toEqual([]);
    // a market id no JavaScript number holds: a key matching nothing the book has, written the same way
    const huge = encodeFunctionData({ abi: perpEngineAbi, functionName: "liquidate", args: [BOB, 2n ** 200n] });
    expect(c(huge, ENGINE)).toEqual([`${2n ** 200n}:${BOB.toLowerCase()}`]);
  });

  it("undefined: another address, another function, arrays of different lengths, garbage, truncated", () => {
    const c = perpEngineCompetitors(ENGINE);
    const single = protocol.encodeSingle(targets[0] as LiquidationTarget);
    expect(c(single, OTHER)).toBeUndefined();
    expect(c(encodeFunctionData({ abi: perpEngineAbi, functionName: "marketCount" }), ENGINE)).toBeUndefined();
    const mismatch = encodeFunctionData({
      abi: perpEngineAbi,
      functionName: "liquidateMany",
      args: [[ALICE, BOB], [1n]],
    });
    expect(c(mismatch, ENGINE)).toBeUndefined();
    neverThrows(c, ENGINE, [single, protocol.encodeBatch?.(targets) as Hex]);
  });
});

describe("Perp v2", () => {
  const CH = CONTRACTS.clearingHouse;
  const LIQUIDATOR = addr(0xc0ffe);
  /** Another keeper's own PerpV2Liquidator deployment. */
  const THEIRS = addr(0xbeef);
  const eth = ETH.toLowerCase() as Address;
  const btc = BTC.toLowerCase() as Address;
  const UNLISTED = addr(0xb9);
  const curie = JSON.parse(
    readFileSync(
      join(process.cwd(), "node_modules/@perp/curie-contract/artifacts/contracts/ClearingHouse.sol/ClearingHouse.json"),
      "utf8",
    ),
  ) as { abi: Abi };
  /** A competitor's encoding, from the audited contract's own ABI: both overloads by signature. */
  const liquidate3 = (who: Address, base: Address, size: bigint): Hex =>
    encodeFunctionData({
      abi: curie.abi,
      functionName: "liquidate",
      args: [who, base, size],
    });
  const liquidate2 = (who: Address, base: Address): Hex =>
    encodeFunctionData({ abi: curie.abi, functionName: "liquidate", args: [who, base] });

  function setup(o: { liquidator?: Address; followUps?: FollowUpPlans } = {}) {
    const book = bookWithMarkets();
    const protocol = perpV2Protocol({
      clearingHouse: CH,
      book,
      decoder: perpV2Decoder(CONTRACTS),
      ...(o.liquidator ? { liquidator: o.liquidator } : {}),
      ...(o.followUps ? { followUps: o.followUps } : {}),
    });
    return { book, protocol, c: protocol.competitorTargets as NonNullable<LiquidationProtocol["competitorTargets"]> };
  }
  const targetOf = (who: Address, marketId: number, size?: bigint): LiquidationTarget => ({
    key: targetKey(who, marketId),
    account: who.toLowerCase(),
    trader: who,
    marketId,
    ...(size === undefined ? {} : { size }),
  });

  /** The findings the core loop hands on for two liquidatable traders (long ETH, short BTC): real keys. */
  function findingsOf(book: PerpV2Book): LiquidationTarget[] {
    const who = [trader(1), trader(2)].map((t) => t.toLowerCase() as Address);
    for (const w of who) {
      depositUsdc(book, w, 800_000_000n);
      takerTrade(book, w, eth, 5n * WAD, -10_000n * WAD);
      takerTrade(book, w, btc, -(WAD / 10n), 3_000n * WAD);
    }
    const model = perpV2Margin(() => book, { contracts: CONTRACTS });
    const adapter = perpV2Accounts({ model, clearingHouse: CH, batch: true });
    const view: PriceView = {
      prices: new Map([
        [0, 1900n * WAD],
        [3, 30_000n * WAD],
      ]),
      timestamp: 1_000n,
      blockNumber: 30n,
    };
    const found = who.flatMap((key) => {
      const account = book.accounts.get(key);
      if (!account) throw new Error("no account");
      return adapter.findings(account, model.evaluate(account, view), view, book).map((f) => f.target);
    });
    expect(found).toHaveLength(2);
    return found;
  }

  it("round trip, each signer as itself: ClearingHouse.liquidate of each finding gives back its key", () => {
    const { book, protocol, c } = setup();
    expect(protocol.address).toBe(CH);
    const found = findingsOf(book);
    for (const t of found) expect(c(protocol.encodeSingle(t), protocol.address)).toEqual([t.key]);
    expect(found.map((t) => t.key)).toEqual([`${trader(1).toLowerCase()}/0`, `${trader(2).toLowerCase()}/0`]);
    // a partial size: the same key
    const partial = targetOf(ALICE, 3, -(WAD / 20n));
    expect(c(protocol.encodeSingle(partial), CH)).toEqual([`${ALICE.toLowerCase()}/3`]);
  });

  it("round trip through the liquidator contract: single, batch, and follow-ups (their markets' keys too)", () => {
    const followUps = new FollowUpPlans();
    const { book, protocol, c } = setup({ liquidator: LIQUIDATOR, followUps });
    expect(protocol.address).toBe(LIQUIDATOR);
    const found = findingsOf(book);
    for (const t of found) followUps.set(t.key, []);
    for (const t of found) expect(c(protocol.encodeSingle(t), protocol.address)).toEqual([t.key]);
    const batch = protocol.encodeBatch?.(found) as Hex;
    expect(c(batch, protocol.address)).toEqual(found.map((t) => t.key));
    // follow-ups: more of the same market (the same key once), then the trader's BTC
    const first = found[0] as LiquidationTarget;
    followUps.set(first.key, [
      { baseToken: eth, priceId: 0 },
      { baseToken: btc, priceId: 3 },
    ]);
    expect(c(protocol.encodeSingle(first), LIQUIDATOR)).toEqual([first.key, targetKey(first.trader, 3)]);
  });

  it("a competitor's ClearingHouse.liquidate, both overloads (the curie ABI), to the ClearingHouse only", () => {
    const { c } = setup();
    expect(c(liquidate3(ALICE, ETH, 0n), CH)).toEqual([`${ALICE.toLowerCase()}/0`]);
    expect(c(liquidate3(ALICE, BTC, -(10n ** 17n)), CH)).toEqual([`${ALICE.toLowerCase()}/3`]);
    expect(c(liquidate2(BOB, BTC), CH)).toEqual([`${BOB.toLowerCase()}/3`]);
    expect(c(liquidate2(BOB, btc), CH.toLowerCase() as Address)).toEqual([`${BOB.toLowerCase()}/3`]);
    expect(c(`0x${liquidate2(BOB, btc).slice(2).toUpperCase()}`, CH)).toEqual([`${BOB.toLowerCase()}/3`]);
    // the ClearingHouse's selectors sent elsewhere (another keeper's liquidator has no such function)
    expect(c(liquidate3(ALICE, ETH, 0n), OTHER)).toBeUndefined();
    expect(c(liquidate2(BOB, BTC), LIQUIDATOR)).toBeUndefined();
    // another ClearingHouse function
    const cancel = encodeFunctionData({ abi: curie.abi, functionName: "cancelAllExcessOrders", args: [BOB, ETH] });
    expect(c(cancel, CH)).toBeUndefined();
  });

  it("another keeper's PerpV2Liquidator, at any address: liquidateBatch, cancelAndLiquidate, liquidateAndClose", () => {
    const { c } = setup({ liquidator: LIQUIDATOR });
    const items = [
      { trader: ALICE, baseToken: ETH, positionSize: 0n },
      { trader: ALICE, baseToken: ETH, positionSize: 0n },
      { trader: BOB, baseToken: BTC, positionSize: 5n },
      { trader: ALICE, baseToken: BTC, positionSize: 0n },
    ];
    const keys = [`${ALICE.toLowerCase()}/0`, `${BOB.toLowerCase()}/3`, `${ALICE.toLowerCase()}/3`];
    const orders = [{ maker: BOB, baseToken: BTC }];
    const closes = [{ baseToken: ETH, refPriceX18: 2_000n * WAD }];
    const batch = encodeFunctionData({ abi: perpV2LiquidatorAbi, functionName: "liquidateBatch", args: [items] });
    const cancel = encodeFunctionData({
      abi: perpV2LiquidatorAbi,
      functionName: "cancelAndLiquidate",
      args: [orders, items],
    });
    const close = encodeFunctionData({
      abi: perpV2LiquidatorAbi,
      functionName: "liquidateAndClose",
      args: [orders, items, closes, 50n],
    });
    for (const data of [batch, cancel, close]) {
      expect(c(data, THEIRS)).toEqual(keys);
      expect(c(data, LIQUIDATOR)).toEqual(keys);
      // the ClearingHouse has no such function
      expect(c(data, CH)).toBeUndefined();
    }
    // closing inventory liquidates nothing
    const inventory = encodeFunctionData({
      abi: perpV2LiquidatorAbi,
      functionName: "closeInventory",
      args: [closes, 50n],
    });
    expect(c(inventory, THEIRS)).toBeUndefined();
    const empty = encodeFunctionData({ abi: perpV2LiquidatorAbi, functionName: "liquidateBatch", args: [[]] });
    expect(c(empty, THEIRS)).toEqual([]);
  });

  it("markets by the book at each call: an unlisted base token has no key, and counts once listed", () => {
    const { book, c } = setup();
    expect(c(liquidate2(ALICE, UNLISTED), CH)).toEqual([]);
    const items = [
      { trader: ALICE, baseToken: UNLISTED, positionSize: 0n },
      { trader: BOB, baseToken: ETH, positionSize: 0n },
    ];
    const batch = encodeFunctionData({ abi: perpV2LiquidatorAbi, functionName: "liquidateBatch", args: [items] });
    expect(c(batch, THEIRS)).toEqual([`${BOB.toLowerCase()}/0`]);
    book.apply(ev({ kind: "poolAdded", baseToken: UNLISTED, feeRatio: 3000, pool: addr(0xf9) }, 3n, 1_100n));
    const id = book.global.marketsByBase.get(UNLISTED.toLowerCase() as Address);
    expect(id).toBe(6);
    expect(c(liquidate2(ALICE, UNLISTED), CH)).toEqual([`${ALICE.toLowerCase()}/6`]);
    expect(c(batch, THEIRS)).toEqual([`${ALICE.toLowerCase()}/6`, `${BOB.toLowerCase()}/0`]);
  });

  it("undefined for garbage and truncated calldata; never throws", () => {
    const { book } = setup();
    const c = perpV2Competitors({ clearingHouse: CH, book });
    const items = [{ trader: ALICE, baseToken: ETH, positionSize: 0n }];
    neverThrows(c, CH, [liquidate3(ALICE, ETH, 0n), liquidate2(BOB, BTC)]);
    neverThrows(c, THEIRS, [
      encodeFunctionData({ abi: perpV2LiquidatorAbi, functionName: "liquidateBatch", args: [items] }),
      encodeFunctionData({
        abi: perpV2LiquidatorAbi,
        functionName: "cancelAndLiquidate",
        args: [[{ maker: BOB, baseToken: BTC }], items],
      }),
    ]);
  });
});

describe("cross-margin", () => {
  const ENGINE = addr(0xc3);
  /** Above 2^53: exact only as a string key. */
  const BIG = 170141183460469231731687303715884105729n;
  const account = (id: bigint, flagged: boolean): CrossMarginAccount => ({
    key: id.toString(10),
    id,
    owner: ALICE.toLowerCase() as Address,
    collateral: 0n,
    positions: new Map([[0, { size: WAD, entryPrice: 2_000n * WAD }]]),
    prices: [0],
    flagged,
  });
  const book = {
    markets: new Map(),
    accounts: new Map([
      ["7", account(7n, false)],
      ["8", account(8n, true)],
      [BIG.toString(10), account(BIG, false)],
    ]),
    global: { config: { minKeeperReward: 0n, maxKeeperReward: 0n, stepReward: 0n, maxPriceAge: 60n } },
  } as unknown as CrossMarginBookView;
  const UPDATE = `0x${"ab".repeat(100)}` as Hex;
  const FEED = `0x${"aa".repeat(32)}` as Hex;
  const prices: PriceAttacher = { attach: () => ({ updates: [UPDATE], feeds: [FEED], fee: 1n, oldest: 1_000n }) };
  const protocolOf = (mode: "attach" | "erc7412") =>
    crossMarginProtocol({
      engine: ENGINE,
      book,
      prices,
      mode,
      nextTimestamp: () => 1_010n,
      headTimestamp: () => 1_008n,
    });
  const targetOf = (id: bigint): LiquidationTarget => ({
    key: id.toString(10),
    account: id.toString(10),
    trader: ALICE,
    marketId: 0,
  });
  const [t7, t8, tBig] = [targetOf(7n), targetOf(8n), targetOf(BIG)] as [
    LiquidationTarget,
    LiquidationTarget,
    LiquidationTarget,
  ];
  const c = crossMarginCompetitors(ENGINE);

  const liquidate1 = (id: bigint) =>
    encodeFunctionData({ abi: iCrossMarginEngineAbi, functionName: "liquidate", args: [id] });
  const fulfill = encodeFunctionData({
    abi: iCrossMarginEngineAbi,
    functionName: "fulfillOracleQuery",
    args: [fulfillData([FEED], 60n, [UPDATE])],
  });
  const multicall = (calls: readonly Hex[]) =>
    encodeFunctionData({ abi: iCrossMarginEngineAbi, functionName: "multicall", args: [calls] });

  it("round trip, attach mode: liquidateMany (a flag's prices attached) and liquidateFlaggedAccounts", () => {
    const protocol = protocolOf("attach");
    const ct = protocol.competitorTargets as NonNullable<LiquidationProtocol["competitorTargets"]>;
    const single = protocol.encodeSingle(t7);
    expect(single.slice(0, 10)).toBe(toFunctionSelector("liquidateMany(uint128[],bytes[])"));
    expect(ct(single, protocol.address)).toEqual(["7"]);
    const flagged = protocol.encodeSingle(t8);
    expect(flagged.slice(0, 10)).toBe(toFunctionSelector("liquidateFlaggedAccounts(uint128[])"));
    expect(ct(flagged, protocol.address)).toEqual(["8"]);
    const batch = protocol.encodeBatch?.([t7, t8, tBig]) as Hex;
    expect(ct(batch, protocol.address)).toEqual(["7", "8", BIG.toString(10)]);
  });

  it("round trip, ERC-7412 mode: multicall([fulfillOracleQuery, liquidate(id)])", () => {
    const protocol = protocolOf("erc7412");
    const ct = protocol.competitorTargets as NonNullable<LiquidationProtocol["competitorTargets"]>;
    for (const t of [t7, t8, tBig]) expect(ct(protocol.encodeSingle(t), protocol.address)).toEqual([t.key]);
    expect(protocol.encodeSingle(tBig).slice(0, 10)).toBe(toFunctionSelector("multicall(bytes[])"));
  });

  it("a competitor's calls in every form: both liquidate overloads, liquidateMany, liquidateFlaggedAccounts", () => {
    const withPrices = encodeFunctionData({
      abi: iCrossMarginEngineAbi,
      functionName: "liquidate",
      args: [BIG, [UPDATE]],
    });
    expect(c(withPrices, ENGINE)).toEqual([BIG.toString(10)]);
    expect(c(liquidate1(7n), ENGINE)).toEqual(["7"]);
    expect(
      c(
        `0x${multicall([fulfill, liquidate1(7n)])
          .slice(2)
          .toUpperCase()}`,
        ENGINE,
      ),
    ).toEqual(["7"]);
    expect(c(liquidate1((1n << 128n) - 1n), ENGINE)).toEqual([((1n << 128n) - 1n).toString(10)]);
    const many = encodeFunctionData({
      abi: iCrossMarginEngineAbi,
      functionName: "liquidateMany",
      args: [[9n, 7n, 9n], []],
    });
    expect(c(many, ENGINE)).toEqual(["9", "7"]);
    const flagged = encodeFunctionData({
      abi: iCrossMarginEngineAbi,
      functionName: "liquidateFlaggedAccounts",
      args: [[8n, BIG]],
    });
    expect(c(flagged, ENGINE)).toEqual(["8", BIG.toString(10)]);
    expect(c(flagged, ENGINE.toLowerCase() as Address)).toEqual(["8", BIG.toString(10)]);
  });

  it("liquidateFlagged(n): a liquidation whose accounts the contract picks, an empty array", () => {
    const any = encodeFunctionData({ abi: iCrossMarginEngineAbi, functionName: "liquidateFlagged", args: [10n] });
    expect(c(any, ENGINE)).toEqual([]);
    expect(c(multicall([fulfill, any]), ENGINE)).toEqual([]);
    expect(c(multicall([any, liquidate1(7n)]), ENGINE)).toEqual(["7"]);
  });

  it("multicalls, nested ERC-7412 style: the union of their liquidations; none: not a liquidation", () => {
    expect(c(multicall([fulfill, liquidate1(7n)]), ENGINE)).toEqual(["7"]);
    const nested = multicall([
      fulfill,
      multicall([liquidate1(7n), multicall([fulfill, liquidate1(BIG)])]),
      encodeFunctionData({ abi: iCrossMarginEngineAbi, functionName: "liquidateMany", args: [[7n, 11n], [UPDATE]] }),
    ]);
    expect(c(nested, ENGINE)).toEqual(["7", BIG.toString(10), "11"]);
    // no liquidation inside: a price update, a trade, an empty multicall
    const trade = encodeFunctionData({
      abi: iCrossMarginEngineAbi,
      functionName: "modifyPosition",
      args: [7n, 1n, 10n, [UPDATE]],
    });
    expect(c(multicall([fulfill, trade]), ENGINE)).toBeUndefined();
    expect(c(multicall([]), ENGINE)).toBeUndefined();
    expect(c(multicall([multicall([fulfill])]), ENGINE)).toBeUndefined();
    // unknown entries beside a liquidation are passed over
    expect(c(multicall([bytes(3, 40), liquidate1(7n)]), ENGINE)).toEqual(["7"]);
    // deep nesting is refused past a bound
    let deep = liquidate1(7n);
    for (let i = 0; i < 8; i++) deep = multicall([deep]);
    expect(c(deep, ENGINE)).toEqual(["7"]);
    expect(c(multicall([deep]), ENGINE)).toBeUndefined();
  });

  it("undefined: another address, an inner liquidation that does not decode, an id beyond uint128, garbage", () => {
    expect(c(liquidate1(7n), OTHER)).toBeUndefined();
    expect(c(multicall([fulfill, liquidate1(7n)]), OTHER)).toBeUndefined();
    expect(c(fulfill, ENGINE)).toBeUndefined();
    // the engine's multicall reverts whole when one entry does
    const broken = slice(liquidate1(7n), 0, 20);
    expect(c(multicall([liquidate1(9n), broken]), ENGINE)).toBeUndefined();
    // a uint128 word with high bits set: the ABI decoder of the contract refuses it
    const dirty = concat([toFunctionSelector("liquidate(uint128)"), toHex(1n << 128n, { size: 32 })]);
    expect(c(dirty, ENGINE)).toBeUndefined();
    expect(c(multicall([dirty]), ENGINE)).toBeUndefined();
    const protocol = protocolOf("attach");
    neverThrows(c, ENGINE, [
      protocol.encodeSingle(t7),
      protocol.encodeBatch?.([t7, t8]) as Hex,
      protocol.encodeSingle(t8),
      withMulticall(),
      liquidate1(7n),
      encodeFunctionData({ abi: iCrossMarginEngineAbi, functionName: "liquidateFlagged", args: [3n] }),
    ]);
  });

  function withMulticall(): Hex {
    return protocolOf("erc7412").encodeSingle(t7);
  }
});
