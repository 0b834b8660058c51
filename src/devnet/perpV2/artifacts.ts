/**
 * Perp v2 ("Curie") contract artifacts, read at run time from the npm packages that ship them (devDependencies:
 * @perp/curie-contract 2.8.4, @perp/perp-oracle-contract 0.6.7, @uniswap/v3-core 1.0.1). Their bytecode and ABIs are
 * never copied into this repository; the devnet, tests and benchmarks load them from node_modules.
 */
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type { Abi, Hex } from "viem";

/** Each contract the devnet deploys, and the package that ships it. */
const PACKAGES = {
  AccountBalance: "@perp/curie-contract",
  BaseToken: "@perp/curie-contract",
  ClearingHouse: "@perp/curie-contract",
  ClearingHouseConfig: "@perp/curie-contract",
  CollateralManager: "@perp/curie-contract",
  Exchange: "@perp/curie-contract",
  InsuranceFund: "@perp/curie-contract",
  MarketRegistry: "@perp/curie-contract",
  OrderBook: "@perp/curie-contract",
  QuoteToken: "@perp/curie-contract",
  Vault: "@perp/curie-contract",
  ChainlinkPriceFeedV3: "@perp/perp-oracle-contract",
  PriceFeedDispatcher: "@perp/perp-oracle-contract",
  UniswapV3Factory: "@uniswap/v3-core",
  UniswapV3Pool: "@uniswap/v3-core",
} as const;

export type PerpV2ContractName = keyof typeof PACKAGES;
export const PERP_V2_CONTRACTS = Object.keys(PACKAGES) as PerpV2ContractName[];

export interface PerpV2Artifact {
  readonly contractName: PerpV2ContractName;
  /** The package the artifact comes from, with its installed version. */
  readonly source: string;
  readonly abi: Abi;
  /** Creation code (no link references in any of them). */
  readonly bytecode: Hex;
}

const require = createRequire(import.meta.url);
const cache = new Map<PerpV2ContractName, PerpV2Artifact>();
const roots = new Map<string, { root: string; version: string }>();

function packageRoot(pkg: string): { root: string; version: string } {
  let found = roots.get(pkg);
  if (!found) {
    let manifest: string;
    try {
      manifest = require.resolve(`${pkg}/package.json`);
    } catch {
      throw new Error(
        `Perp v2 artifacts: ${pkg} is not installed (it is a devDependency: npm ci installs the devDependencies)`,
      );
    }
    const { version } = JSON.parse(readFileSync(manifest, "utf8")) as { version: string };
    found = { root: dirname(manifest), version };
    roots.set(pkg, found);
  }
  return found;
}

/** The artifact of one Perp v2 / oracle / Uniswap v3 contract, read from node_modules once and cached. */
export function perpV2Artifact(name: PerpV2ContractName): PerpV2Artifact {
  const cached = cache.get(name);
  if (cached) return cached;
  const pkg = PACKAGES[name];
  if (!pkg) throw new Error(`Perp v2 artifacts: unknown contract ${name}`);
  const { root, version } = packageRoot(pkg);
  const file = join(root, "artifacts", "contracts", `${name}.sol`, `${name}.json`);
  if (!existsSync(file)) {
    throw new Error(
      `Perp v2 artifacts: ${file} is missing from ${pkg}@${version} (npm ci installs the devDependencies at the pinned versions)`,
    );
  }
  const json = JSON.parse(readFileSync(file, "utf8")) as {
    abi?: Abi;
    bytecode?: string;
    linkReferences?: Record<string, unknown>;
  };
  if (!json.abi || !json.bytecode || !/^0x[0-9a-fA-F]+$/.test(json.bytecode) || json.bytecode.length < 4) {
    throw new Error(`Perp v2 artifacts: ${file} has no abi or creation bytecode`);
  }
  if (json.linkReferences && Object.keys(json.linkReferences).length > 0) {
    throw new Error(`Perp v2 artifacts: ${name} needs library linking, which this devnet does not do`);
  }
  const artifact: PerpV2Artifact = {
    contractName: name,
    source: `${pkg}@${version}`,
    abi: json.abi,
    bytecode: json.bytecode as Hex,
  };
  cache.set(name, artifact);
  return artifact;
}

/** The installed versions of the three packages, e.g. for a report. */
export function perpV2PackageVersions(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pkg of new Set(Object.values(PACKAGES))) out[pkg] = packageRoot(pkg).version;
  return out;
}
