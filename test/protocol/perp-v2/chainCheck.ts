/**
 * The differential test's two sides: the book rebuilt from the chain's own logs (eth_getLogs of the exchange's
 * contracts, decoded by events.ts, reduced by book.ts) with a PriceView read at a block, and the chain's views at the
 * same block; then one account compared field by field, decision by decision.
 */
import type { Address, Hex, PublicClient, RpcLog } from "viem";
import { toHex } from "viem";
import { expect } from "vitest";
import {
  accountBalanceAbi,
  clearingHouseAbi,
  exchangeAbi,
  orderBookAbi,
  vaultAbi,
} from "../../../src/protocol/perpV2/abi.ts";
import { PerpV2Book, type PerpV2Market } from "../../../src/protocol/perpV2/book.ts";
import type { PerpV2Event } from "../../../src/protocol/perpV2/events.ts";
import { perpV2Decoder } from "../../../src/protocol/perpV2/events.ts";
import { accountFigures, freeCollateralByRatio, UNBOUNDED } from "../../../src/protocol/perpV2/figures.ts";
import { liquidatableSize } from "../../../src/protocol/perpV2/liquidation.ts";
import { perpV2Margin } from "../../../src/protocol/perpV2/margin.ts";
import { dustFiltered, min } from "../../../src/protocol/perpV2/math.ts";
import { type PerpV2Deployment, priceReads, priceViewOf } from "../../../src/protocol/perpV2/prices.ts";
import type { PriceView } from "../../../src/protocol/types.ts";

export interface Snapshot {
  readonly head: { readonly blockNumber: bigint; readonly timestamp: bigint };
  readonly events: readonly PerpV2Event[];
  readonly book: PerpV2Book;
  /** Marks and index TWAPs: the funding tail bounded by the clamp. */
  readonly clamp: PriceView;
  /** Marks, index and market TWAPs: the funding pinned. */
  readonly pinned: PriceView;
}

export interface Tally {
  accounts: number;
  exact: number;
  bounded: number;
  straddled: number;
  decisions: number;
  wrong: number;
  sizes: number;
  sizeReverts: number;
  unpriced: number;
  blocks: Set<bigint>;
}

export const newTally = (): Tally => ({
  accounts: 0,
  exact: 0,
  bounded: 0,
  straddled: 0,
  decisions: 0,
  wrong: 0,
  sizes: 0,
  sizeReverts: 0,
  unpriced: 0,
  blocks: new Set(),
});

/** The exchange's logs from `fromBlock` to `toBlock`, raw (hex positions, blockTimestamp), decoded. */
export async function chainEvents(client: PublicClient, d: PerpV2Deployment, fromBlock: bigint, toBlock: bigint) {
  const decoder = perpV2Decoder(d.contracts);
  const logs = (await client.request({
    method: "eth_getLogs",
    params: [{ address: [...decoder.addresses], fromBlock: toHex(fromBlock), toBlock: toHex(toBlock) }],
  })) as RpcLog[];
  return decoder.decode(logs as never);
}

/** The interval the Exchange's funding uses now: twapInterval, or the time since the first swap (fee > 0 here). */
function fundingInterval(events: readonly PerpV2Event[], m: PerpV2Market, now: bigint, twapInterval: bigint): bigint {
  const first = events.find((e) => e.kind === "positionChanged" && e.baseToken === m.baseToken && e.fee > 0n);
  return first === undefined ? 0n : min(twapInterval, now - first.timestamp);
}

export async function snapshot(client: PublicClient, d: PerpV2Deployment, fromBlock: bigint): Promise<Snapshot> {
  const block = await client.getBlock({ blockTag: "latest" });
  const head = { blockNumber: block.number, timestamp: block.timestamp };
  const events = await chainEvents(client, d, fromBlock, head.blockNumber);
  const book = new PerpV2Book(d.global);
  for (const e of events) book.apply(e);
  const markets = [...book.markets.values()];
  const reads = priceReads(markets, d.contracts, (m) =>
    fundingInterval(events, m, head.timestamp, book.global.twapInterval),
  );
  // a reverting read leaves its price out (the views that need it revert as well: compared as "unpriced")
  const results = await Promise.all(
    reads.map((r) =>
      client.call({ to: r.to, data: r.data, blockNumber: head.blockNumber }).then(
        (x) => x.data,
        () => undefined,
      ),
    ),
  );
  const pinned = priceViewOf(markets, results, head);
  const clamp = { ...pinned, prices: new Map([...pinned.prices].filter(([id]) => id % 3 !== 2)) };
  return { head, events, book, clamp, pinned };
}

const read = <T>(
  client: PublicClient,
  blockNumber: bigint,
  address: Address,
  abi: unknown,
  name: string,
  args: unknown[],
) => client.readContract({ address, abi, functionName: name, args, blockNumber } as never) as Promise<T>;

/** Everything the chain says about one trader at the snapshot's block. */
export async function chainAccount(client: PublicClient, d: PerpV2Deployment, s: Snapshot, trader: Address) {
  const at = s.head.blockNumber;
  const c = d.contracts;
  const r = <T>(address: Address, abi: unknown, name: string, args: unknown[]) =>
    read<T>(client, at, address, abi, name, args);
  const [balance, owed, baseTokens] = await Promise.all([
    r<bigint>(c.vault, vaultAbi, "getBalance", [trader]),
    r<bigint>(c.accountBalance, accountBalanceAbi, "getPnlAndPendingFee", [trader]).then(
      (x) => (x as unknown as readonly bigint[])[0] as bigint,
      // its pending fee needs the pool only; its unrealized PnL the marks: read the owed PnL alone when it reverts
      () => undefined,
    ),
    r<readonly Address[]>(c.accountBalance, accountBalanceAbi, "getBaseTokens", [trader]),
  ]);
  const values = await Promise.all([
    r<bigint>(c.clearingHouse, clearingHouseAbi, "getAccountValue", [trader]),
    r<bigint>(c.accountBalance, accountBalanceAbi, "getMarginRequirementForLiquidation", [trader]),
    r<bigint>(c.exchange, exchangeAbi, "getAllPendingFundingPayment", [trader]),
    r<bigint>(c.vault, vaultAbi, "getFreeCollateralByRatio", [trader, Number(d.global.imRatio)]),
  ]).then(
    ([accountValue, requirement, pendingFunding, freeIm]) => ({ accountValue, requirement, pendingFunding, freeIm }),
    () => undefined,
  );
  const markets = await Promise.all(
    baseTokens.map(async (base) => {
      const [info, orders, size] = await Promise.all([
        r<{ takerPositionSize: bigint; takerOpenNotional: bigint; lastTwPremiumGrowthGlobalX96: bigint }>(
          c.accountBalance,
          accountBalanceAbi,
          "getAccountInfo",
          [trader, base],
        ),
        r<readonly Hex[]>(c.orderBook, orderBookAbi, "getOpenOrderIds", [trader, base]),
        r<bigint>(c.accountBalance, accountBalanceAbi, "getLiquidatablePositionSize", [
          trader,
          base,
          values?.accountValue ?? 0n,
        ]).then(
          (x) => ({ ok: true as const, size: x }),
          (e: Error) => ({ ok: false as const, revert: e.message }),
        ),
      ]);
      return { base: base.toLowerCase() as Address, info, orders: orders.length, size };
    }),
  );
  return { values, balance, owed, markets };
}

/** Compares one account of the book with the chain; counts into the tally. */
export async function compareAccount(
  client: PublicClient,
  d: PerpV2Deployment,
  s: Snapshot,
  trader: Address,
  t: Tally,
) {
  const key = trader.toLowerCase();
  const a = s.book.accounts.get(key);
  const chain = await chainAccount(client, d, s, trader);
  const where = `${key} at block ${s.head.blockNumber}`;
  if (!a) {
    expect(chain.balance, where).toBe(0n);
    expect(chain.markets, where).toEqual([]);
    return;
  }
  t.accounts++;
  t.blocks.add(s.head.blockNumber);
  // the reducer against the contracts' storage
  expect(a.balance, `${where}: Vault balance`).toBe(chain.balance);
  if (chain.owed !== undefined) expect(a.owedRealizedPnl, `${where}: owed realized PnL`).toBe(chain.owed);
  expect([...a.positions.keys()].sort(), `${where}: registered base tokens`).toEqual(
    chain.markets.map((m) => m.base).sort(),
  );
  for (const m of chain.markets) {
    const p = a.positions.get(m.base);
    expect(p?.takerSize, `${where} ${m.base}: taker size`).toBe(m.info.takerPositionSize);
    expect(p?.takerOpenNotional, `${where} ${m.base}: open notional`).toBe(m.info.takerOpenNotional);
    expect(p?.orders.length, `${where} ${m.base}: orders`).toBe(m.orders);
    if (m.info.takerPositionSize !== 0n || m.orders > 0) {
      expect(m.info.lastTwPremiumGrowthGlobalX96 >= (p?.anchor.lo ?? 0n), `${where}: anchor lo`).toBe(true);
      expect(m.info.lastTwPremiumGrowthGlobalX96 <= (p?.anchor.hi ?? 0n), `${where}: anchor hi`).toBe(true);
    }
  }
  const model = perpV2Margin(() => s.book, { contracts: d.contracts });
  const v = chain.values;
  if (v === undefined) {
    // the chain's views revert (a price they need reverts): the model has no price for it either
    t.unpriced++;
    const e = model.evaluate(a, s.pinned);
    // a maker is open-ended whatever its prices: the book cannot tell whether its total size needs the price
    if (e.kind !== "unpriced")
      expect(e, `${where}: the chain reverts`).toMatchObject({ low: -UNBOUNDED, high: UNBOUNDED });
    return;
  }
  const liquidatable = v.accountValue < v.requirement;
  const slack = v.accountValue - v.requirement;
  for (const view of [s.clamp, s.pinned]) {
    const e = model.evaluate(a, view);
    const f = accountFigures(a, s.book, view);
    if (e.kind === "unpriced") throw new Error(`${where}: unpriced ${e.missing}`);
    if (f.kind === "priced" && !f.maker) {
      expect(e.requirement, `${where}: requirement`).toBe(v.requirement);
      const [lo, hi] = f.positions.reduce((r, p) => [r[0] + p.funding[0], r[1] + p.funding[1]], [0n, 0n]);
      expect(
        v.pendingFunding >= lo && v.pendingFunding <= hi,
        `${where}: funding ${v.pendingFunding} ∉ [${lo}, ${hi}]`,
      ).toBe(true);
    }
    if (e.kind === "exact") {
      t.exact++;
      expect(e.balance, `${where}: account value`).toBe(v.accountValue);
    } else {
      t.bounded++;
      expect(slack >= e.low && slack <= e.high, `${where}: slack ${slack} ∉ [${e.low}, ${e.high}]`).toBe(true);
    }
    const low = e.kind === "exact" ? e.balance - e.requirement : e.low;
    const high = e.kind === "exact" ? e.balance - e.requirement : e.high;
    if (high < 0n || low >= 0n) {
      t.decisions++;
      if (high < 0n !== liquidatable) t.wrong++;
    } else {
      t.straddled++;
      // the confirmation: the reads at this block, decoded, give the chain's answer
      const results = await Promise.all(
        model.confirm
          .reads(a)
          .map((r) => client.call({ to: r.to, data: r.data, blockNumber: s.head.blockNumber }).then((x) => x.data)),
      );
      const c = model.confirm.decode(a, results);
      expect(c, `${where}: confirmation`).toEqual({
        kind: "exact",
        balance: v.accountValue,
        requirement: v.requirement,
      });
    }
    if (low !== -UNBOUNDED && f.kind === "priced" && !f.maker && !f.otherCollateral) {
      const free = freeCollateralByRatio(a, s.book, view, d.global.imRatio);
      const unit = 10n ** BigInt(18 - d.global.settlementDecimals);
      if (free)
        expect(v.freeIm * unit >= free[0] && v.freeIm * unit <= free[1], `${where}: free collateral`).toBe(true);
    }
  }
  // liquidatableSize = getLiquidatablePositionSize for every (trader, base), given the chain's account value
  for (const m of chain.markets) {
    const mine = liquidatableSize(a, m.base, v.accountValue, s.pinned, s.book);
    if (mine === undefined) continue; // a maker: its total size includes pool balances
    t.sizes++;
    if (!m.size.ok) {
      t.sizeReverts++;
      expect(mine.ok, `${where} ${m.base}: the chain reverts (${m.size.revert.split("\n")[0]})`).toBe(false);
      if (!mine.ok) expect(m.size.revert).toContain(mine.revert);
    } else expect(mine, `${where} ${m.base}: liquidatable size`).toEqual({ ok: true, size: m.size.size });
  }
  // the dust rule the views apply
  for (const p of a.positions.values()) expect(dustFiltered(p.takerSize) === 0n || p.takerSize !== 0n).toBe(true);
}
