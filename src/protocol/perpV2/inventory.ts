/**
 * The liquidator's inventory: the positions it took over. Perp v2's liquidator is filled at the mark price, so after
 * every takeover it holds the trader's position (docs/protocols.md, "Perp v2"). This follows that account in the book
 * (the same events as every trader's), at every head:
 *
 *   - close (the default): what it holds is closed through the pool in the liquidation's own transaction
 *     (PerpV2Liquidator.liquidateAndClose), each close bounded at maxSlippageBps from the mark. A close that fails
 *     (slippage, the pool's per-block tick limit) is said (`inventory_close_failed`) and rides along with every later
 *     batch; still held closeWithinBlocks blocks later it is said again (`inventory_close_overdue`), and the operator
 *     closes it with `perp-keeper collateral close` (PerpV2Liquidator.closeInventory).
 *   - hold: nothing is closed, and takeovers are cut so that the notional held stays within maxExposure.
 *
 * And it watches the liquidator's own margin: `liquidator_margin_low` when its account value falls under twice its
 * maintenance requirement (the risk engine never plans a liquidation of the keeper's own account).
 */
import { type Address, type Hex, type PublicClient, parseAbi, parseUnits } from "viem";
import type { Logger } from "../../ops/logger.ts";
import type { Finding } from "../adapter.ts";
import type { PriceView } from "../types.ts";
import type { PerpV2ExchangeConfig } from "./config.ts";
import { accountFigures, UNBOUNDED } from "./figures.ts";
import { abs, dustFiltered, positionValue, RATIO_ONE } from "./math.ts";
import { revertMeaning } from "./outcomes.ts";
import { sqrtPriceX96ToWad } from "./prices.ts";
import { type PerpV2BookView, targetKey } from "./records.ts";

/** A market the liquidator holds a position in, closed at most maxSlippageBps from `refPriceX18`. */
export interface InventoryClose {
  readonly baseToken: Address;
  readonly refPriceX18: bigint;
}

export interface HeldPosition {
  readonly priceId: number;
  readonly name: string;
  readonly baseToken: Address;
  /** Base, signed (18 decimals). */
  readonly size: bigint;
  /** |size| x mark (quote WAD); 0 when the market has no price at this head. */
  readonly notional: bigint;
  /** The first head it was seen held at. */
  readonly since: bigint;
}

const poolAbi = parseAbi(["function slot0() view returns (uint160, int24, uint16, uint16, uint16, uint8, bool)"]);

/** The liquidator's margin alert: account value under this multiple of its maintenance requirement. */
export const LIQUIDATOR_MARGIN_ALERT = 2n;

export class PerpV2Inventory {
  private view: PriceView | undefined;
  /** Each market's pool price (WAD) at the last head read, by priceId: closes the pool cannot fill are not sent. */
  private spot = new Map<number, bigint>();
  /** The read before it: a pool still moving against a close (a crash under way) defers the close. */
  private spotBefore = new Map<number, bigint>();
  private readonly since = new Map<number, bigint>();
  private readonly overdue = new Set<number>();
  private marginLow = false;
  /** The holder's address, lower case (its book key). */
  readonly holder: string;

  constructor(
    private readonly o: {
      /** The account that takes positions over: the liquidator contract, or the only signer without one. */
      readonly holder: Address;
      readonly book: PerpV2BookView;
      readonly settings: PerpV2ExchangeConfig["inventory"];
      /** Whether the keeper can close: the liquidator contract is there (an EOA's closes are not sent). */
      readonly canClose: boolean;
      /** Reads each market's pool price at every head (mode close): a close is sent only when the pool allows it. */
      readonly client?: PublicClient;
      /** Whether accounts were found liquidatable at the last head: pool prices are read only then, or while holding. */
      readonly busy?: () => boolean;
      readonly log?: Logger;
    },
  ) {
    this.holder = o.holder.toLowerCase();
  }

  get maxSlippageBps(): bigint {
    return BigInt(this.o.settings.maxSlippageBps);
  }

  /** Whether batches close what is held (mode close, with the liquidator contract). */
  get closing(): boolean {
    return this.o.canClose && this.o.settings.mode === "close";
  }

  /** The positions held, at the last head's marks. */
  held(): HeldPosition[] {
    const account = this.o.book.accounts.get(this.holder);
    if (!account) return [];
    const out: HeldPosition[] = [];
    for (const p of account.positions.values()) {
      const size = dustFiltered(p.takerSize);
      if (size === 0n) continue;
      const mark = this.view?.prices.get(p.priceId);
      out.push({
        priceId: p.priceId,
        name: this.o.book.markets.get(p.priceId)?.name ?? `market ${p.priceId}`,
        baseToken: p.baseToken,
        size,
        notional: mark === undefined ? 0n : abs(positionValue(size, mark)),
        since: this.since.get(p.priceId) ?? this.view?.blockNumber ?? 0n,
      });
    }
    return out.sort((a, b) => a.priceId - b.priceId);
  }

  /** Notional held (quote WAD, at the last marks). */
  exposure(): bigint {
    return this.held().reduce((s, h) => s + h.notional, 0n);
  }

  /** Hold mode: the notional a takeover may still add (quote WAD); undefined: no limit (mode close). */
  exposureLeft(): bigint | undefined {
    if (this.o.settings.mode !== "hold") return undefined;
    const max = parseUnits(this.o.settings.maxExposure, 18);
    const used = this.exposure();
    return used >= max ? 0n : max - used;
  }

  /**
   * What a transaction of ours closes: every market held, and the markets its takeovers fill (`incoming`: each
   * target's base token and the sign of the position the liquidator receives, its trader's), each with its mark at
   * the last head as the reference price; none when not closing. A market without a price at the head is left out,
   * and so is one whose pool price at the last head could not fill the close within the bound.
   */
  closesFor(incoming: readonly { readonly baseToken: Address; readonly side: bigint }[]): InventoryClose[] {
    if (!this.closing) return [];
    const sides = new Map<string, { baseToken: Address; side: bigint }>();
    for (const h of this.held()) sides.set(h.baseToken.toLowerCase(), { baseToken: h.baseToken, side: h.size });
    for (const t of incoming) {
      const lower = t.baseToken.toLowerCase();
      if (!sides.has(lower)) sides.set(lower, t);
    }
    const out: InventoryClose[] = [];
    for (const [lower, { baseToken, side }] of sides) {
      const id = this.o.book.global.marketsByBase.get(lower as Address);
      const mark = id === undefined ? undefined : this.view?.prices.get(id);
      if (id === undefined || mark === undefined) continue;
      if (!this.poolAllows(id, mark, side)) continue;
      out.push({ baseToken, refPriceX18: mark });
    }
    return out;
  }

  /**
   * At most how many closes a transaction with these takeovers carries, whatever the pool does between its encoding
   * and its gas estimate: the markets held and the markets incoming (the gas floor counts these).
   */
  closesAtMost(incoming: readonly Address[]): number {
    if (!this.closing) return 0;
    const markets = new Set(this.held().map((h) => h.baseToken.toLowerCase()));
    for (const t of incoming) markets.add(t.toLowerCase());
    return markets.size;
  }

  /**
   * Whether the pool's price at the last head lets a close fill within maxSlippageBps of the mark, after the
   * exchange fee: selling (a long held) needs spot x (1 − fee) >= mark x (1 − bps); buying (a short) needs
   * spot x (1 + fee) <= mark x (1 + bps). Without a pool price read, or a side not known, it is tried.
   */
  private poolAllows(id: number, mark: bigint, held: bigint): boolean {
    const spot = this.spot.get(id);
    const fee = this.o.book.markets.get(id)?.feeRatio;
    if (spot === undefined || fee === undefined || held === 0n) return true;
    const bps = this.maxSlippageBps;
    const feeRatio = BigInt(fee);
    // the pool moved against the close by more than half the bound since the head before: it is still moving (a
    // crash's steps land each block, ahead of our transaction), and a close now would most likely fail
    const before = this.spotBefore.get(id);
    if (before !== undefined) {
      const move = held > 0n ? before - spot : spot - before;
      if (move * 20_000n > before * bps) return false;
    }
    if (held > 0n) return spot * (RATIO_ONE - feeRatio) * 10_000n >= mark * (10_000n - bps) * RATIO_ONE;
    return spot * (RATIO_ONE + feeRatio) * 10_000n <= mark * (10_000n + bps) * RATIO_ONE;
  }

  /**
   * Reads every open market's pool price, pinned to the head (mode close only), while something is held or accounts
   * are being liquidated: no read on a quiet chain.
   */
  private readSpots(view: PriceView, holding: boolean): void {
    const client = this.o.client;
    if (!client || !this.closing) return;
    if (!holding && !this.o.busy?.()) {
      this.spot.clear();
      this.spotBefore.clear();
      return;
    }
    const markets = [...this.o.book.markets.values()].filter((m) => m.status === "open");
    void Promise.all(
      markets.map((m) =>
        client
          .readContract({ address: m.pool, abi: poolAbi, functionName: "slot0", blockNumber: view.blockNumber })
          .then(([sqrt]) => [m.priceId, sqrtPriceX96ToWad(sqrt)] as const)
          .catch(() => undefined),
      ),
    ).then((read) => {
      if (this.view !== view) return; // a later head's read wins
      this.spotBefore = this.spot;
      this.spot = new Map(read.filter((r) => r !== undefined));
    });
  }

  /** Whether a target key is the holder's own position (an inventory close, not a liquidation). */
  owns(key: string): boolean {
    return key.startsWith(`${this.holder}/`);
  }

  /** The executor's `current` for an inventory key: the holder's record while it holds something. */
  current(key: string): object | undefined {
    if (!this.owns(key) || this.held().length === 0) return undefined;
    return this.o.book.accounts.get(this.holder);
  }

  /** The executor's `stillLiquidatable` for an inventory key: whether a close is still wanted. */
  wanted(): boolean | undefined {
    if (!this.view) return undefined;
    return this.closing && this.held().length > 0;
  }

  /**
   * A close on its own at this head (mode close, with the liquidator contract): something is held, and the pool
   * lets at least one market close within the bound. One finding for every market held (closeInventory closes them
   * all), keyed on the largest. Its "reward" is the loss the operator accepts on the close (notional x
   * maxSlippageBps): the executor holds the gas it pays to its fee rules as for a liquidation. Its state is new at
   * every head, so a close the pool refused is tried again at the next head the pool allows it.
   */
  upkeep(): Finding | undefined {
    const view = this.view;
    if (!this.closing || !view) return undefined;
    const closes = this.closesFor([]);
    if (closes.length === 0) return undefined;
    const held = this.held().sort((a, b) => (b.notional > a.notional ? 1 : b.notional < a.notional ? -1 : 0));
    const first = held[0];
    if (!first) return undefined;
    const notional = held.reduce((s, h) => s + h.notional, 0n);
    return {
      target: {
        key: targetKey(this.o.holder, first.priceId),
        account: this.holder,
        trader: this.o.holder,
        marketId: first.priceId,
      },
      state: { holder: this.holder, blockNumber: view.blockNumber },
      shortfall: 0n,
      expectedReward: (notional * this.maxSlippageBps) / 10_000n,
    };
  }

  /** Each head, after the book has its events: ages, alerts, and the marks closes are bounded by. */
  onTick(view: PriceView): void {
    this.view = view;
    const held = this.held();
    const ids = new Set(held.map((h) => h.priceId));
    for (const [id] of this.since) {
      if (ids.has(id)) continue;
      this.since.delete(id);
      this.overdue.delete(id);
      const name = this.o.book.markets.get(id)?.name ?? `market ${id}`;
      this.o.log?.info({ event: "inventory_closed", market: name, blockNumber: view.blockNumber.toString() }, "");
    }
    for (const h of held) {
      if (!this.since.has(h.priceId)) {
        this.since.set(h.priceId, view.blockNumber);
        this.o.log?.info(
          {
            event: "inventory_held",
            market: h.name,
            size: h.size.toString(),
            notional: h.notional.toString(),
            mode: this.o.settings.mode,
            blockNumber: view.blockNumber.toString(),
          },
          `the liquidator holds a ${h.name} position taken over`,
        );
        continue;
      }
      const age = view.blockNumber - (this.since.get(h.priceId) ?? view.blockNumber);
      if (this.closing && age >= BigInt(this.o.settings.closeWithinBlocks) && !this.overdue.has(h.priceId)) {
        this.overdue.add(h.priceId);
        this.o.log?.warn(
          {
            event: "inventory_close_overdue",
            market: h.name,
            size: h.size.toString(),
            notional: h.notional.toString(),
            heldBlocks: age.toString(),
            blockNumber: view.blockNumber.toString(),
          },
          "a position taken over is still open after inventory.closeWithinBlocks: its closes fail (slippage bound, the pool's tick limit?)",
        );
      }
    }
    this.readSpots(view, held.length > 0);
    this.checkMargin(view);
  }

  /** A close in one of our transactions failed (its InventoryCloseFailed event): said, retried with the next. */
  closeFailed(baseToken: Address, reason: Hex): void {
    const id = this.o.book.global.marketsByBase.get(baseToken.toLowerCase() as Address);
    this.o.log?.warn(
      {
        event: "inventory_close_failed",
        market: id === undefined ? baseToken : (this.o.book.markets.get(id)?.name ?? `market ${id}`),
        reason: reason === "0x" ? "out of gas" : (revertMeaning(reason)?.name ?? reason),
        maxSlippageBps: this.o.settings.maxSlippageBps,
      },
      "closing a position taken over failed; it is retried with the next transaction",
    );
  }

  /** A reorganisation: ages are re-learned from the book at the next head. */
  reset(): void {
    this.spot.clear();
    this.spotBefore.clear();
    this.since.clear();
    this.overdue.clear();
  }

  private checkMargin(view: PriceView): void {
    const account = this.o.book.accounts.get(this.holder);
    if (!account || account.positions.size === 0) {
      this.marginLow = false;
      return;
    }
    const f = accountFigures(account, this.o.book, view);
    if (f.kind === "unpriced" || f.requirement === 0n) {
      this.marginLow = false;
      return;
    }
    const value = f.accountValue[0] === -UNBOUNDED ? f.accountValue[1] : f.accountValue[0];
    if (value === UNBOUNDED) return; // the funding cannot be bounded at this head: no verdict
    const low = value < f.requirement * LIQUIDATOR_MARGIN_ALERT;
    if (low && !this.marginLow) {
      this.o.log?.warn(
        {
          event: "liquidator_margin_low",
          account: this.holder,
          accountValue: value.toString(),
          maintenance: f.requirement.toString(),
          blockNumber: view.blockNumber.toString(),
        },
        "the liquidator's account value is under twice its maintenance margin: deposit collateral or close inventory",
      );
    }
    this.marginLow = low;
  }
}
