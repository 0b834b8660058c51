/** config/example.mainnet.json (documented in config/README.md) is a config the keeper accepts. */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { loadConfigFile, parseConfig } from "../../src/config/load.ts";
import { keeperConfigSchema } from "../../src/config/schema.ts";

const EXAMPLE = new URL("../../config/example.mainnet.json", import.meta.url);

describe("config/example.mainnet.json", () => {
  it("parses with the schema", () => {
    const raw: unknown = JSON.parse(readFileSync(EXAMPLE, "utf8"));
    const config = parseConfig(raw, "config/example.mainnet.json");
    expect(config.network.chainId).toBe(1);
    expect(config.exchange.adapter).toBe("perp-engine");
    expect(loadConfigFile(EXAMPLE.pathname)).toEqual(config);
  });

  it("ships as a dry run with placeholders, so that copying it unedited sends nothing", () => {
    const config = parseConfig(JSON.parse(readFileSync(EXAMPLE, "utf8")), "example");
    expect(config.keeper.dryRun).toBe(true);
    expect(config.exchange.address).toBe("0x0000000000000000000000000000000000000000");
    for (const url of [...(config.network.rpcUrls ?? []), config.network.wsUrl ?? ""]) {
      expect(url).toMatch(/YOUR-/);
    }
  });

  it("names every field config/README.md documents, and README names every schema field", () => {
    const readme = readFileSync(new URL("../../config/README.md", import.meta.url), "utf8");
    const documented = new Set([...readme.matchAll(/^\| `([a-zA-Z0-9]+)`/gm)].map((m) => m[1]));
    const { network, exchange, keeper } = keeperConfigSchema.shape;
    const fields = [network.shape, ...exchange.options.map((o) => o.shape), keeper.unwrap().shape].flatMap((shape) =>
      Object.keys(shape),
    );
    expect(fields.length).toBeGreaterThan(40);
    expect(fields.filter((f) => !documented.has(f))).toEqual([]);
    const example = JSON.parse(readFileSync(EXAMPLE, "utf8")) as Record<string, Record<string, unknown>>;
    const used = Object.values(example).flatMap((section) => Object.keys(section));
    expect(used.filter((f) => !documented.has(f))).toEqual([]);
  });
});
