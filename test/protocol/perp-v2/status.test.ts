/**
 * Perp v2's status view (src/protocol/perpV2/status.ts): the exact nearest accounts with the fewest reads (a fake
 * reader), and `perp-keeper status` against Perp v2 from its npm bytecode on Anvil: every row is the chain's own
 * figures at the block the header names, the rows are the accounts with the lowest margin ratio on chain in order,
 * and the liquidator's free collateral is the Vault's.
 */
import { type Address, formatUnits, getAddress, type PublicClient } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect } from "../../../src/chain/connect.ts";
import { parseConfig } from "../../../src/config/load.ts";
import type { KeeperConfig } from "../../../src/config/schema.ts";
import { perpV2KeeperConfig } from "../../../src/devnet/perpV2/deploy.ts";
import { long, short, spec } from "../../../src/devnet/perpV2/stage.ts";
import { createLogger } from "../../../src/ops/logger.ts";
import { statusReport } from "../../../src/ops/statusCommand.ts";
import { exchangeCommands } from "../../../src/protocol/exchanges.ts";
import { accountBalanceAbi, clearingHouseAbi, vaultAbi } from "../../../src/protocol/perpV2/abi.ts";
import {
  type Candidate,
  type ChainFigures,
  nearestToMaintenance,
  perpV2Status,
} from "../../../src/protocol/perpV2/status.ts";
import { openTraders, type PerpV2Fixture, ROLE, startPerpV2Fixture, type Trader } from "../../helpers/perpV2.ts";

const WAD = 10n ** 18n;
const figures = (ratio: number): ChainFigures => ({
  accountValue: BigInt(Math.round(ratio * 1e6)) * 10n ** 12n,
  totalAbsPositionValue: WAD,
  requirement: 0n,
});

describe("nearestToMaintenance", () => {
  it("reads past the first rows while an unread bound is below the last row, and returns the exact nearest", async () => {
    // a's bound is loose (0.01, exactly 0.5); c's bound 0.2 is above b's but its exact 0.2 is below a's 0.5
    const chain = new Map([
      ["a", figures(0.5)],
      ["b", figures(0.1)],
      ["c", figures(0.2)],
      ["d", figures(0.9)],
      ["maker", figures(0.6)],
    ]);
    const all: Candidate[] = [
      { key: "a", bound: 0.01 },
      { key: "b", bound: 0.1 },
      { key: "c", bound: 0.2 },
      { key: "d", bound: 0.9 },
      { key: "maker", bound: undefined },
    ];
    const asked: string[][] = [];
    const rows = await nearestToMaintenance(all, 2, async (keys) => {
      asked.push([...keys]);
      return new Map(keys.flatMap((k) => (chain.has(k) ? [[k, chain.get(k) as ChainFigures] as const] : [])));
    });
    expect(rows.map((r) => r.key)).toEqual(["b", "c"]);
    // the maker (no bound) and the two lowest bounds first; then c, whose bound 0.2 is below the last row then (a,
    // 0.5); d's 0.9 is above every row and never read
    expect(asked).toEqual([["maker", "a", "b"], ["c"]]);
  });

  it("leaves out an account whose read failed or that holds nothing on chain, and reads on to fill the rows", async () => {
    const rows = await nearestToMaintenance(
      [
        { key: "gone", bound: 0.01 },
        { key: "failed", bound: 0.02 },
        { key: "x", bound: 0.3 },
      ],
      2,
      async (keys) =>
        new Map(
          keys.flatMap((k): [string, ChainFigures][] =>
            k === "gone"
              ? [[k, { accountValue: 5n, totalAbsPositionValue: 0n, requirement: 0n }]]
              : k === "x"
                ? [[k, figures(0.3)]]
                : [],
          ),
        ),
    );
    expect(rows.map((r) => r.key)).toEqual(["x"]);
  });
});

describe("perp-keeper status on Perp v2 (Anvil)", () => {
  let fx: PerpV2Fixture;
  let traders: Trader[];
  let config: KeeperConfig;

  beforeAll(async () => {
    fx = await startPerpV2Fixture();
    traders = await openTraders(fx.dev, 20, [
      spec("high", 1000, long("vETH", 9000)),
      spec("mid", 1000, long("vETH", 6000)),
      spec("low", 3000, long("vETH", 3000)),
      spec("shortBtc", 1000, short("vBTC", 8000)),
      spec("cross", 1500, long("vETH", 7000), short("vBTC", 5000)),
      spec("flatDeposit", 500),
    ]);
    const raw = perpV2KeeperConfig(fx.dev.d, fx.anvil.rpcUrl, {});
    config = parseConfig({ ...raw, exchange: { ...(raw.exchange as object), liquidator: fx.liquidator } }, "test");
  }, 180_000);

  afterAll(async () => {
    await fx?.stop();
  });

  const read = async (client: PublicClient, trader: Address, blockNumber: bigint) => {
    const [value, abs, req] = await Promise.all([
      client.readContract({
        address: fx.dev.d.clearingHouse,
        abi: clearingHouseAbi,
        functionName: "getAccountValue",
        args: [trader],
        blockNumber,
      }),
      client.readContract({
        address: fx.dev.d.accountBalance,
        abi: accountBalanceAbi,
        functionName: "getTotalAbsPositionValue",
        args: [trader],
        blockNumber,
      }),
      client.readContract({
        address: fx.dev.d.accountBalance,
        abi: accountBalanceAbi,
        functionName: "getMarginRequirementForLiquidation",
        args: [trader],
        blockNumber,
      }),
    ]);
    return { value, abs, req };
  };
  const usdc = (x18: bigint) => formatUnits(x18 / 10n ** 12n, 6);

  it("shows the accounts nearest to maintenance with the chain's figures, in order, and the liquidator's", async () => {
    const view = await exchangeCommands(config).statusView();
    expect(view).toBe(perpV2Status);
    const text = await statusReport(config, fx.anvil.rpcUrl, createLogger({ level: "warn", format: "json" }), 3, view);
    const lines = text.split("\n");
    const block = BigInt(/ block (\d+):/.exec(lines[0] ?? "")?.[1] ?? "-1");
    expect(block).toBeGreaterThan(0n);
    // five traders and the maker hold positions; the deposit alone and the liquidator (shown apart) are not rows
    expect(lines[0]).toMatch(/: 6 accounts with positions in 2 markets \(vETH \d+(\.\d+)?, vBTC \d+(\.\d+)?\)$/);
    expect(lines[1]).toContain("the 3 nearest to maintenance");
    expect(lines[2]).toMatch(/^trader\s+positions\s+margin ratio\s+account value\s+maint\. req\.\s+room$/);

    // the chain's ranking of every account that holds something, at the header's block
    const holders = [
      ...traders.filter((t) => t.legs.length > 0).map((t) => t.address),
      fx.dev.account(ROLE.maker).account.address.toLowerCase() as Address,
    ];
    const chain = await Promise.all(holders.map(async (t) => ({ t, ...(await read(fx.client, t, block)) })));
    chain.sort((a, b) => (a.value * b.abs < b.value * a.abs ? -1 : 1));
    const rows = lines.slice(3, 6).map((l) => l.split(/\s{2,}/));
    expect(rows.map((r) => r[0]?.toLowerCase())).toEqual(chain.slice(0, 3).map((c) => c.t));
    for (const [i, row] of rows.entries()) {
      const c = chain[i] as (typeof chain)[number];
      expect(row.slice(3)).toEqual([usdc(c.value), usdc(c.req), usdc(c.value - c.req)]);
    }
    const high = traders.find((t) => t.name === "high") as Trader;
    expect(rows[0]?.[0]).toBe(getAddress(high.address));
    expect(rows[0]?.[1]).toMatch(/^vETH long \d+\.\d+$/);

    // the liquidator's section: its free collateral is the Vault's at the same block
    const free = await fx.client.readContract({
      address: fx.dev.d.vault,
      abi: vaultAbi,
      functionName: "getFreeCollateral",
      args: [fx.liquidator],
      blockNumber: block,
    });
    const section = lines.slice(lines.indexOf("") + 1).join("\n");
    expect(section).toContain(`liquidator ${fx.liquidator} (PerpV2Liquidator`);
    expect(section).toContain(`at block ${block}`);
    expect(section).toContain(`free collateral: ${formatUnits(free, 6)} USDC`);
    expect(section).toContain("positions: none");
  }, 120_000);

  it("without exchange.liquidator says so, and more rows than accounts shows them all", async () => {
    const exchange = { ...config.exchange, liquidator: undefined };
    const connection = await connect(config, fx.anvil.rpcUrl);
    try {
      const text = await perpV2Status({
        config: { ...config, exchange },
        connection,
        log: createLogger({ level: "warn", format: "json" }),
        top: 50,
      });
      expect(text).toContain("the 6 nearest to maintenance");
      expect(text).toContain("no exchange.liquidator: each signer liquidates from its own Vault account");
      expect(text).toMatch(/\(maker\)/);
    } finally {
      connection.close();
    }
  }, 120_000);
});
