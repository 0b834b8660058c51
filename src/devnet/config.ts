import { parseConfig } from "../config/load.ts";
import type { KeeperConfig } from "../config/schema.ts";
import type { Deployment } from "./exchange.ts";

/** The keeper config for a devnet deployment (what `npm run devnet` writes to config/devnet.json). */
export function devnetConfig(d: Deployment, rpcUrl: string, keeper: Record<string, unknown> = {}): KeeperConfig {
  return parseConfig(
    {
      network: { name: "devnet", chainId: d.chainId, rpcUrl },
      exchange: { adapter: "perp-engine", address: d.engine, deployBlock: Number(d.deployBlock) },
      keeper: { pollIntervalMs: 250, ...keeper },
    },
    "devnet config",
  );
}
