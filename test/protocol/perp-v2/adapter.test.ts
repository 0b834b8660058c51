/**
 * Perp v2's accounts for the core loop: one market per account per head, and takeovers planned within the
 * liquidator's free collateral (sizes cut to what fits, said once per head).
 */
import type { Address } from "viem";
import { describe, expect, it } from "vitest";
import { perpV2Accounts } from "../../../src/protocol/perpV2/adapter.ts";
import type { PerpV2Book } from "../../../src/protocol/perpV2/book.ts";
import { perpV2Margin } from "../../../src/protocol/perpV2/margin.ts";
import type { PriceView } from "../../../src/protocol/types.ts";
import { captureLogs } from "../../helpers/logs.ts";
import { BTC, bookWithMarkets, CONTRACTS, depositUsdc, ETH, takerTrade, trader, WAD } from "./helpers.ts";

const eth = ETH.toLowerCase() as Address;
const btc = BTC.toLowerCase() as Address;

/** A trader with 800 USDC, long 5 ETH at 2000 and short 0.1 BTC at 30000. */
function open(book: PerpV2Book, who: Address): void {
  depositUsdc(book, who, 800_000_000n);
  takerTrade(book, who, eth, 5n * WAD, -10_000n * WAD);
  takerTrade(book, who, btc, -(WAD / 10n), 3_000n * WAD);
}

const view = (): PriceView => ({
  prices: new Map([
    [0, 1900n * WAD],
    [3, 30_000n * WAD],
  ]),
  timestamp: 1_000n,
  blockNumber: 30n,
});

function setup(freeCollateral: bigint | undefined) {
  const book = bookWithMarkets();
  const [a, b] = [trader(1), trader(2)].map((t) => t.toLowerCase() as Address) as [Address, Address];
  open(book, a);
  open(book, b);
  const model = perpV2Margin(() => book, { contracts: CONTRACTS });
  const logs = captureLogs();
  const adapter = perpV2Accounts({
    model,
    clearingHouse: CONTRACTS.clearingHouse,
    batch: true,
    freeCollateral: () => freeCollateral,
    log: logs.log,
  });
  const findings = (at: PriceView) =>
    [a, b].flatMap((key) => {
      const account = book.accounts.get(key);
      if (!account) throw new Error("no account");
      return adapter.findings(account, model.evaluate(account, at), at, book);
    });
  return { findings, logs };
}

describe("perp-v2 accounts", () => {
  it("hands on one market of each liquidatable account per head, the largest, as much as the contract allows", () => {
    const { findings, logs } = setup(undefined);
    const found = findings(view());
    expect(found.map((f) => [f.target.account, f.target.marketId, f.target.size])).toEqual([
      [trader(1).toLowerCase(), 0, 0n],
      [trader(2).toLowerCase(), 0, 0n],
    ]);
    expect(logs.events("liquidator_collateral_short")).toEqual([]);
  });

  it("plans takeovers within the liquidator's free collateral: the first whole, the next cut to what is left", () => {
    // a whole 5-ETH takeover costs about 938 of free collateral (10% of the notional, less the discount)
    const { findings, logs } = setup(1_200n * WAD);
    const at = view();
    const [first, second] = findings(at);
    expect(first?.target.size).toBe(0n);
    const cut = second?.target.size ?? 0n;
    expect(cut > 0n && cut < 5n * WAD).toBe(true);
    expect(logs.events("liquidator_collateral_short")).toHaveLength(1);
    // the next head starts from the collateral read again, not from what this one spent
    const again = findings(view());
    expect(again[0]?.target.size).toBe(0n);
    expect(logs.events("liquidator_collateral_short")).toHaveLength(2);
  });

  it("leaves an account whose takeover nothing fits, and says so", () => {
    const { findings, logs } = setup(0n);
    expect(findings(view())).toEqual([]);
    expect(logs.events("liquidator_collateral_short")).toHaveLength(1);
  });
});
