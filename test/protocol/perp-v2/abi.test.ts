/**
 * Every hand-written Perp v2 fragment (src/protocol/perpV2/abi.ts) against the artifacts of @perp/curie-contract in
 * node_modules: same name, input types (tuples expanded), output types, indexed flags and mutability. The keeper never
 * imports the package at run time; this test is what ties the fragments to the audited bytecode's ABI.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Abi, AbiEvent, AbiFunction, AbiParameter } from "viem";
import { toEventSelector, toFunctionSelector } from "viem";
import { describe, expect, it } from "vitest";
import { PERP_V2_ABIS } from "../../../src/protocol/perpV2/abi.ts";

const ARTIFACTS = join(process.cwd(), "node_modules", "@perp", "curie-contract", "artifacts", "contracts");

function artifact(name: string): Abi {
  return JSON.parse(readFileSync(join(ARTIFACTS, `${name}.sol`, `${name}.json`), "utf8")).abi as Abi;
}

/** The canonical type of a parameter: tuples as their components' types. */
function typeOf(p: AbiParameter): string {
  if (p.type.startsWith("tuple")) {
    const components = (p as { components: readonly AbiParameter[] }).components;
    return `(${components.map(typeOf).join(",")})${p.type.slice(5)}`;
  }
  return p.type;
}

function eventShape(e: AbiEvent): string {
  return `${e.name}(${e.inputs.map((p) => `${typeOf(p)}${p.indexed ? " indexed" : ""}`).join(",")})`;
}

function functionShape(f: AbiFunction): string {
  return `${f.name}(${f.inputs.map(typeOf).join(",")}) ${f.stateMutability} returns (${f.outputs.map(typeOf).join(",")})`;
}

describe("Perp v2 ABI fragments", () => {
  for (const [contract, fragments] of Object.entries(PERP_V2_ABIS)) {
    const real = artifact(contract);
    const realEvents = new Set(real.filter((i): i is AbiEvent => i.type === "event").map(eventShape));
    const realFunctions = new Set(real.filter((i): i is AbiFunction => i.type === "function").map(functionShape));
    for (const item of fragments as Abi) {
      if (item.type === "event") {
        it(`${contract}: event ${item.name} matches the artifact (topic ${toEventSelector(item).slice(0, 10)})`, () => {
          expect(realEvents).toContain(eventShape(item));
        });
      } else if (item.type === "function") {
        it(`${contract}: ${functionShape(item)} (${toFunctionSelector(item)})`, () => {
          expect(realFunctions).toContain(functionShape(item));
        });
      }
    }
  }

  it("checks every fragment (no other ABI item kinds slipped in)", () => {
    for (const fragments of Object.values(PERP_V2_ABIS)) {
      for (const item of fragments as Abi) expect(["event", "function"]).toContain(item.type);
    }
  });
});
