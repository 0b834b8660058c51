/**
 * An exchange upgrade that adds an event must not stop every keeper: a log whose first topic is no event of the ABI
 * is handed to onUnknown and skipped, while the events around it still decode. A declared event that does not decode
 * (a wrong address, a lying endpoint) is still an error.
 */
import { encodeAbiParameters, keccak256, toEventSelector, toHex } from "viem";
import { describe, expect, it } from "vitest";
import type { ChainLog } from "../../src/protocol/adapter.ts";
import { decodePerpEngineLogs, LogDecodeError, PERP_ENGINE_EVENTS } from "../../src/protocol/perpEngine/protocol.ts";

const at = (logIndex: number, topics: `0x${string}`[], data: `0x${string}`): ChainLog => ({
  topics: topics as [`0x${string}`, ...`0x${string}`[]],
  data,
  blockNumber: "0x10",
  logIndex: toHex(logIndex),
  blockHash: `0x${"11".repeat(32)}`,
  transactionHash: `0x${"22".repeat(32)}`,
});

const unknown = at(
  1,
  [keccak256(toHex("FeeTierChanged(uint256,uint256)"))],
  encodeAbiParameters([{ type: "uint256" }, { type: "uint256" }], [1n, 2n]),
);
const fundingSelector = toEventSelector(
  PERP_ENGINE_EVENTS.find((e) => e.name === "FundingUpdated") as (typeof PERP_ENGINE_EVENTS)[number],
);
const funding = at(
  2,
  [fundingSelector, toHex(0n, { size: 32 })],
  encodeAbiParameters([{ type: "int256" }, { type: "int256" }, { type: "uint256" }], [5n, 1n, 1000n]),
);

describe("exchange logs the keeper does not know", () => {
  it("are skipped and reported, and the known events around them still decode", () => {
    const seen: ChainLog[] = [];
    const events = decodePerpEngineLogs([unknown, funding], (l) => seen.push(l));
    expect(seen).toEqual([unknown]);
    expect(events.map((e) => e.kind)).toEqual(["fundingUpdated"]);
  });

  it("stop the decoding without onUnknown (a wrong address is still an error)", () => {
    expect(() => decodePerpEngineLogs([unknown])).toThrow(LogDecodeError);
  });

  it("never hide a declared event that does not decode", () => {
    const malformed = { ...funding, data: "0x01" as const };
    expect(() => decodePerpEngineLogs([malformed], () => {})).toThrow(LogDecodeError);
  });
});
