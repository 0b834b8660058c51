/** The perp-v2 adapter's config (src/protocol/perpV2/config.ts): defaults, strictness, and each bad input named. */
import { getAddress } from "viem";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../../../src/config/load.ts";
import { parsePerpV2ExchangeConfig, perpV2ExchangeSchema } from "../../../src/protocol/perpV2/config.ts";

const CH = getAddress("0x82ac2ce43e33683c58be4cdc40975e73aa50f459");
const LIQ = getAddress("0x5fbdb2315678afecb367f032d93f642f64180aa3");
/** CH with the case of its first letter flipped: a mixed-case address whose checksum no longer holds. */
const TYPO = CH.replace(/[a-fA-F](?=[^x]*$)/, (c) => (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase()));

const minimal = { adapter: "perp-v2", address: CH, deployBlock: 513_075 };

function problems(raw: unknown): string {
  try {
    parsePerpV2ExchangeConfig(raw);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error("expected a ConfigError");
}

describe("perp-v2 exchange config", () => {
  it("fills the defaults: no liquidator contract, inherited positions closed, nothing kept", () => {
    expect(parsePerpV2ExchangeConfig(minimal)).toEqual({
      adapter: "perp-v2",
      address: CH,
      deployBlock: 513_075,
      inventory: { mode: "close", closeWithinBlocks: 5, maxSlippageBps: 100, maxExposure: "0" },
      lookahead: true,
    });
  });

  it("takes every field, and fills the inventory's missing ones", () => {
    const config = parsePerpV2ExchangeConfig({
      ...minimal,
      liquidator: LIQ,
      inventory: { mode: "hold", maxExposure: "250000.5" },
      minFreeCollateral: "5000",
      lookahead: false,
    });
    expect(config).toEqual({
      ...minimal,
      liquidator: LIQ,
      inventory: { mode: "hold", closeWithinBlocks: 5, maxSlippageBps: 100, maxExposure: "250000.5" },
      minFreeCollateral: "5000",
      lookahead: false,
    });
    expect(
      parsePerpV2ExchangeConfig({
        ...minimal,
        inventory: { mode: "close", closeWithinBlocks: 1, maxSlippageBps: 5000, maxExposure: "10" },
      }).inventory,
    ).toEqual({ mode: "close", closeWithinBlocks: 1, maxSlippageBps: 5000, maxExposure: "10" });
  });

  it("checksums lower-case addresses", () => {
    const config = parsePerpV2ExchangeConfig({ ...minimal, address: CH.toLowerCase(), liquidator: LIQ.toLowerCase() });
    expect(config.address).toBe(CH);
    expect(config.liquidator).toBe(LIQ);
  });

  it("names each bad field with its path", () => {
    expect(problems({ ...minimal, address: "0x123" })).toBe(
      "invalid exchange:\n  exchange.address: must be a 0x-prefixed 20-byte hex address",
    );
    // one letter's case changed: the checksum catches it
    expect(problems({ ...minimal, address: TYPO })).toContain("exchange.address: has a wrong EIP-55 checksum");
    expect(problems({ ...minimal, liquidator: "" })).toContain("exchange.liquidator: must be a 0x-prefixed");
    expect(problems({ ...minimal, deployBlock: -1 })).toContain("exchange.deployBlock:");
    expect(problems({ ...minimal, deployBlock: 1.5 })).toContain("exchange.deployBlock:");
    expect(problems({ ...minimal, deployBlock: "513075" })).toContain("exchange.deployBlock:");
    expect(problems({ ...minimal, adapter: "perp-engine" })).toContain("exchange.adapter:");
    expect(problems({ ...minimal, minFreeCollateral: "-5" })).toContain(
      'exchange.minFreeCollateral: must be a non-negative decimal string, e.g. "1.5"',
    );
    expect(problems({ ...minimal, minFreeCollateral: 5000 })).toContain("exchange.minFreeCollateral:");
    expect(problems({ ...minimal, inventory: { mode: "sell" } })).toContain("exchange.inventory.mode:");
    expect(problems({ ...minimal, inventory: { closeWithinBlocks: 0 } })).toContain(
      "exchange.inventory.closeWithinBlocks:",
    );
    expect(problems({ ...minimal, inventory: { maxSlippageBps: 0 } })).toContain("exchange.inventory.maxSlippageBps:");
    expect(problems({ ...minimal, inventory: { maxSlippageBps: 5001 } })).toContain(
      "exchange.inventory.maxSlippageBps:",
    );
    expect(problems({ ...minimal, inventory: { maxExposure: "1e6" } })).toContain("exchange.inventory.maxExposure:");
  });

  it("refuses hold with nothing to hold", () => {
    expect(problems({ ...minimal, inventory: { mode: "hold" } })).toBe(
      "invalid exchange:\n  exchange.inventory.maxExposure: mode hold keeps positions up to maxExposure: set " +
        "maxExposure above 0 (or use mode close)",
    );
    expect(problems({ ...minimal, inventory: { mode: "hold", maxExposure: "0.000" } })).toContain(
      "set maxExposure above 0",
    );
  });

  it("is strict: unknown keys, missing keys, at every level", () => {
    expect(problems({ ...minimal, liquidatorr: LIQ })).toContain('Unrecognized key: "liquidatorr"');
    expect(problems({ ...minimal, inventory: { mode: "close", slippage: 5 } })).toContain(
      'exchange.inventory: Unrecognized key: "slippage"',
    );
    expect(problems({ adapter: "perp-v2", address: CH })).toContain("exchange.deployBlock:");
    expect(problems({ address: CH, deployBlock: 1 })).toContain("exchange.adapter:");
    expect(problems(null)).toContain("invalid exchange");
  });

  it("reports every problem at once, under the path it is given", () => {
    const message = problems({ adapter: "perp-v2", address: "nope", deployBlock: -3, inventory: { mode: "x" } });
    expect(message.split("\n")).toHaveLength(4);
    expect(() => parsePerpV2ExchangeConfig({ ...minimal, deployBlock: -1 }, "exchanges[2]")).toThrow(
      /exchanges\[2\]\.deployBlock/,
    );
    expect(perpV2ExchangeSchema.safeParse(minimal).success).toBe(true);
  });
});
