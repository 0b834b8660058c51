/**
 * The commands' parts of the cross-margin exchange (src/protocol/crossMargin/status.ts, through exchanges.ts):
 * check-config's description read from the exchange's views, a ConfigError for an address that is not one, and
 * `perp-keeper status`: its markets with the oracle's price and their windows' room, and the flagged accounts with
 * what they still hold.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect } from "../../src/chain/connect.ts";
import { parseConfig } from "../../src/config/load.ts";
import { crossMarginKeeperConfig } from "../../src/devnet/crossMargin/stage.ts";
import { exchangeCommands } from "../../src/protocol/exchanges.ts";
import { type CrossMarginFixture, startCrossMarginFixture, windowedMarkets } from "../helpers/crossMargin.ts";
import { captureLogs } from "../helpers/logs.ts";

let f: CrossMarginFixture;

beforeAll(async () => {
  // 21 ETH a 30-second window: a 30 ETH account stays flagged after its flag closes the first 21
  f = await startCrossMarginFixture({
    markets: windowedMarkets(30n, "21", "0.735"),
    accounts: [
      { collateral: "3000", positions: [{ market: "ETH", size: "30" }] },
      { collateral: "9000", positions: [{ market: "BTC", size: "0.2" }] },
    ],
  });
}, 120_000);

afterAll(async () => {
  await f?.stop();
});

function config(address = f.d.engine) {
  const raw = crossMarginKeeperConfig(f.d, f.anvil.rpcUrl, [f.stage.hermes.url]);
  return parseConfig({ ...raw, exchange: { ...(raw.exchange as object), address } }, "test");
}

describe("cross-margin commands", () => {
  it("check-config describes the exchange from its views, and refuses an address that is not one", async () => {
    const good = config();
    const connection = await connect(good, f.anvil.rpcUrl);
    try {
      const text = await exchangeCommands(good).describe(connection, good);
      expect(text).toContain(`Pyth ${f.d.pyth}`);
      expect(text).toContain("2 market(s) (100, 200)");
      expect(text).toContain("60 s old");
    } finally {
      connection.close();
    }
    // the quote token has code but is no exchange
    const bad = config(f.d.quoteToken);
    const other = await connect(bad, f.anvil.rpcUrl);
    try {
      await expect(exchangeCommands(bad).describe(other, bad)).rejects.toThrow(
        /does not answer as a cross-margin exchange/,
      );
    } finally {
      other.close();
    }
  });

  it("status shows each market's on-chain price and window, and the flagged accounts with what they hold", async () => {
    const c = config();
    const view = await exchangeCommands(c).statusView();
    const connection = await connect(c, f.anvil.rpcUrl);
    try {
      const before = await view({ config: c, connection, log: captureLogs().log, top: 10 });
      expect(before).toMatch(/100\s+0xff61491a\s+3000\s+/);
      expect(before).toContain("0 account(s) flagged for liquidation");
      // an account flagged by hand (the keeper's job elsewhere): a crash on chain, then liquidate(id)
      const { publishCrossMarginPrices } = await import("../../src/devnet/crossMargin/deploy.ts");
      await publishCrossMarginPrices(f.d, f.anvil.rpcUrl, { ETH: "2600" });
      const { encodeFunctionData } = await import("viem");
      const { iCrossMarginEngineAbi } = await import("../../abi/ICrossMarginEngine.ts");
      const id = f.ids[0] as bigint;
      const hash = (await f.rpc("eth_sendTransaction", [
        {
          from: f.d.deployer,
          to: f.d.engine,
          data: encodeFunctionData({ abi: iCrossMarginEngineAbi, functionName: "liquidate", args: [id] }),
          gas: "0x7a1200",
        },
      ])) as `0x${string}`;
      await f.client.waitForTransactionReceipt({ hash });
      const after = await view({ config: c, connection, log: captureLogs().log, top: 10 });
      expect(after).toMatch(/100\s+0xff61491a\s+2600\s+/);
      // flagged, 21 of its 30 ETH closed by the flag, 9 left for the next window; the window has no room left
      expect(after).toContain("1 account(s) flagged for liquidation");
      expect(after).toMatch(new RegExp(`${id}\\s+100: 9\\b`));
      expect(after).toMatch(/100\s+0xff61491a\s+2600\s+0\s+21\s*$/m);
    } finally {
      connection.close();
    }
  });
});
