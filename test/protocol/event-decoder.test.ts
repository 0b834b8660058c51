/**
 * The precomputed event decoder against viem's own parseEventLogs, on every event a real PerpEngine emits on Anvil
 * (listings, funding, trades, margin changes, liquidations, batch skips): same names, same arguments, field by field.
 */
import { parseEventLogs, parseUnits } from "viem";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { perpEngineAbi } from "../../abi/PerpEngine.ts";
import { ORACLE_DECIMALS } from "../../src/devnet/exchange.ts";
import { devnetPositions, ETH, openPositions } from "../../src/devnet/positions.ts";
import { eventDecoder } from "../../src/protocol/eventDecoder.ts";
import { PERP_ENGINE_EVENTS } from "../../src/protocol/perpEngine/protocol.ts";
import { type DevnetFixture, startDevnet } from "../helpers/devnet.ts";

let net: DevnetFixture;

beforeAll(async () => {
  net = await startDevnet({ accounts: 30 });
  const specs = devnetPositions();
  await openPositions(net.ex, specs);
  await net.ex
    .send(net.ex.trader(2), {
      address: net.ex.d.engine,
      abi: perpEngineAbi,
      functionName: "addMargin",
      args: [0n, 1n],
    })
    .catch(() => {}); // a margin change where the trader has collateral left, if any
  await net.ex.setPrice(ETH, parseUnits("2300", ORACLE_DECIMALS));
  // a batch with liquidatable, healthy and empty entries: PositionLiquidated and LiquidationSkipped (both reasons)
  const traders = specs.filter((s) => s.marketId === ETH).map((s) => net.ex.trader(s.trader).account.address);
  await net.ex.send(net.ex.trader(1), {
    address: net.ex.d.engine,
    abi: perpEngineAbi,
    functionName: "liquidateMany",
    args: [[...traders, traders[0] as `0x${string}`], traders.map(() => BigInt(ETH)).concat([BigInt(ETH)])],
    gas: 10_000_000n,
  });
}, 60_000);

afterAll(async () => {
  await net?.stop();
});

describe("event decoder", () => {
  it("decodes every PerpEngine event exactly as viem's parseEventLogs does", async () => {
    const logs = await net.ex.publicClient.getLogs({ address: net.ex.d.engine, fromBlock: net.ex.d.deployBlock });
    const viem = parseEventLogs({ abi: perpEngineAbi, logs, strict: true });
    expect(viem).toHaveLength(logs.length);
    const names = new Set(viem.map((l) => l.eventName));
    for (const name of [
      "MarketListed",
      "FundingUpdated",
      "PositionChanged",
      "PositionLiquidated",
      "LiquidationSkipped",
    ]) {
      expect(names.has(name as never), name).toBe(true);
    }
    const decode = eventDecoder(PERP_ENGINE_EVENTS);
    viem.forEach((expected, i) => {
      const ours = decode(logs[i] as (typeof logs)[number]);
      expect(ours?.eventName).toBe(expected.eventName);
      expect(ours?.args).toEqual(expected.args);
    });
  });

  it("refuses what it does not know or cannot read: another event, a short data field, a missing topic", async () => {
    const decode = eventDecoder(PERP_ENGINE_EVENTS);
    const logs = await net.ex.publicClient.getLogs({ address: net.ex.d.engine, fromBlock: net.ex.d.deployBlock });
    const log = logs.find((l) => decode(l)?.eventName === "PositionChanged");
    if (!log) throw new Error("no PositionChanged log");
    expect(decode({ ...log, topics: [`0x${"ab".repeat(32)}`] })).toBeUndefined();
    expect(decode({ ...log, data: "0x1234" })).toBeUndefined();
    expect(decode({ ...log, topics: log.topics.slice(0, 1) as typeof log.topics })).toBeUndefined();
  });
});
