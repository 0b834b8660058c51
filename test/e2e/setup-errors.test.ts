/** A keeper pointed at the wrong contract or start block stops with a clear error instead of running blind. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startKeeper } from "../../src/app.ts";
import { ConfigError } from "../../src/config/load.ts";
import { ANVIL_KEYS } from "../../src/devnet/anvil.ts";
import { devnetConfig } from "../../src/devnet/config.ts";
import { openPositions, TEXTBOOK_POSITIONS } from "../../src/devnet/positions.ts";
import { StartBlockError } from "../../src/watcher/watcher.ts";
import { type DevnetFixture, startDevnet, testStateDir } from "../helpers/devnet.ts";
import { captureLogs } from "../helpers/logs.ts";

let net: DevnetFixture;

beforeAll(async () => {
  net = await startDevnet({ accounts: 5 });
  await openPositions(net.ex, TEXTBOOK_POSITIONS);
});

afterAll(async () => {
  await net?.stop();
});

function start(overrides: { address?: string; deployBlock?: number; chainId?: number }) {
  const config = devnetConfig(net.ex.d, net.anvil.rpcUrl, { pollIntervalMs: 50, stateDir: testStateDir() });
  return startKeeper({
    config: {
      ...config,
      network: { ...config.network, chainId: overrides.chainId ?? config.network.chainId },
      exchange: {
        adapter: "perp-engine",
        address: overrides.address ?? config.exchange.address,
        deployBlock: overrides.deployBlock ?? config.exchange.deployBlock,
      },
    },
    rpcUrl: net.anvil.rpcUrl,
    privateKeys: [ANVIL_KEYS[1]],
    log: captureLogs().log,
  });
}

describe("setup errors", () => {
  it("refuses an RPC on another chain", async () => {
    await expect(start({ chainId: 1 })).rejects.toThrow(ConfigError);
    await expect(start({ chainId: 1 })).rejects.toThrow(/expects chain 1/);
  });

  it("refuses an address that is not a PerpEngine (the collateral token, an oracle, an account)", async () => {
    for (const address of [net.ex.d.collateral, net.ex.d.markets[0]?.oracle as string]) {
      await expect(start({ address })).rejects.toThrow(/does not answer as a PerpEngine/);
    }
    await expect(start({ address: "0x000000000000000000000000000000000000dEaD" })).rejects.toThrow(/no contract/);
  });

  it("stops on a start block past the chain head", async () => {
    const k = await start({ deployBlock: 10_000_000 });
    await expect(k.done).rejects.toThrow(StartBlockError);
  });

  it("stops on a start block after the exchange was deployed: it has code before that block", async () => {
    const k = await start({ deployBlock: Number(net.ex.d.deployBlock) + 8 });
    // caught by the chain itself (code at deployBlock - 1), not left to events that do not add up (which, since they
    // could also be an endpoint's incomplete answer, are retried, never a stop)
    await expect(k.done).rejects.toThrow(StartBlockError);
    await expect(k.done).rejects.toThrow(/too late/);
    expect(k.book.positions.size).toBe(0);
  });
});
