/**
 * The start-up checks, one set for `run` and `check-config`: what `check-config` says ok is what `run` starts with.
 *
 *   resolveRun      config file, environment (keys validated, at least one), overrides (flags, KEEPER_STATE_DIR,
 *                   KEEPER_DRY_RUN, RPC_URL(S), RPC_WS_URL): the settings `run` uses
 *   checkStateDir   the state directory and its journal/ and snapshot/ folders exist and are writable
 *   checkChain      on a connection that passed connect's checks (chain id, the exchange's code): the start block
 *                   is not beyond the head, a batch fits a block, and at least one signer can pay for a liquidation
 *
 * `run` calls resolveRun and checkStateDir before connecting, and checkChain as soon as the RPC answers (startKeeper's
 * `preflight` hook); `check-config` calls the same three and prints the result. Every failure here is one a restart
 * cannot fix: a ConfigError (exit 2), or a SignerError (exit 2) for signers that cannot pay.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Address, formatEther, type Hex, parseUnits } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import type { Connection } from "../chain/connect.ts";
import { endpoints } from "../chain/connect.ts";
import { ConfigError, type KeeperEnv, loadConfigFile, redactUrl } from "../config/load.ts";
import type { KeeperConfig } from "../config/schema.ts";
import { SignerError } from "../executor/signers.ts";

/** What `run` uses, after the config file, the environment and the flags. */
export interface RunSettings {
  readonly configPath: string;
  /** The config with the overrides applied (wsUrl, dryRun, stateDir). */
  readonly config: KeeperConfig;
  readonly rpcUrl: string;
  /** Where the RPC setting came from, for keeper_started and check-config. */
  readonly rpcSource: string;
  /** Never logged, never printed. */
  readonly privateKeys: readonly Hex[];
  readonly signers: readonly Address[];
  /** Where the state directory and dry run were set. */
  readonly stateDirSource: string;
  readonly dryRunSource: string;
}

export interface RunInputs {
  readonly configPath: string;
  readonly env: KeeperEnv;
  /** --rpc-url was given (it is folded into env.rpcUrl). */
  readonly rpcFlag: boolean;
  /** --dry-run was given. */
  readonly dryRunFlag: boolean | undefined;
}

/** The settings `run` uses; a bad config, environment or missing key is a ConfigError. */
export function resolveRun(i: RunInputs): RunSettings {
  const file = loadConfigFile(i.configPath);
  const { env } = i;
  const rpcUrl = env.rpcUrl ?? file.network.rpcUrls?.join(",") ?? file.network.rpcUrl;
  if (!rpcUrl) throw new ConfigError(`no RPC endpoint: set RPC_URL or network.rpcUrl in ${i.configPath}`);
  if (env.privateKeys.length === 0) {
    throw new ConfigError("KEEPER_PRIVATE_KEY is not set, nor KEEPER_PRIVATE_KEYS (see .env.example)");
  }
  const dryRun = i.dryRunFlag ?? env.dryRun ?? file.keeper.dryRun;
  const dryRunSource =
    i.dryRunFlag !== undefined ? "--dry-run" : env.dryRun !== undefined ? "KEEPER_DRY_RUN" : "config keeper.dryRun";
  const stateDir = env.stateDir ?? file.keeper.stateDir;
  const stateDirSource = env.stateDir !== undefined ? "KEEPER_STATE_DIR" : "config keeper.stateDir";
  const rpcSource =
    env.rpcUrl === undefined
      ? file.network.rpcUrls
        ? "config network.rpcUrls"
        : "config network.rpcUrl"
      : i.rpcFlag
        ? "--rpc-url"
        : "environment";
  return {
    configPath: i.configPath,
    config: {
      ...file,
      // HERMES_URLS (a URL may hold an API key: .env, not the config file) overrides exchange.hermes.endpoints
      exchange:
        file.exchange.adapter === "cross-margin" && env.hermesUrls
          ? { ...file.exchange, hermes: { ...file.exchange.hermes, endpoints: [...env.hermesUrls] } }
          : file.exchange,
      network: { ...file.network, wsUrl: env.wsUrl ?? file.network.wsUrl },
      keeper: { ...file.keeper, dryRun, stateDir },
    },
    rpcUrl,
    rpcSource,
    privateKeys: env.privateKeys,
    signers: env.privateKeys.map((k) => privateKeyToAccount(k).address),
    stateDirSource,
    dryRunSource,
  };
}

/**
 * The state directory, its journal/ and snapshot/ folders, created if missing and each written to once: a
 * directory the keeper cannot write (permissions, a read-only mount, a file in the way) is a ConfigError naming it,
 * whether or not journal/ exists yet.
 */
export function checkStateDir(stateDir: string): void {
  for (const dir of [stateDir, join(stateDir, "journal"), join(stateDir, "snapshot")]) {
    const probe = join(dir, `.write-check-${process.pid}-${randomBytes(4).toString("hex")}`);
    try {
      mkdirSync(dir, { recursive: true });
      writeFileSync(probe, "", { mode: 0o600 });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? "error";
      throw new ConfigError(
        `the state directory is not writable: ${dir} (${code}); set keeper.stateDir or KEEPER_STATE_DIR to a ` +
          "directory the keeper's user can write",
      );
    } finally {
      try {
        rmSync(probe, { force: true });
      } catch {
        // nothing was written
      }
    }
  }
}

/** A signer's gas-token balance at the head. */
export interface SignerFunds {
  readonly address: Address;
  readonly balanceWei: bigint;
  readonly canPay: boolean;
}

/** What the chain showed: check-config prints it. */
export interface ChainFacts {
  readonly head: bigint;
  readonly blockGasLimit: bigint;
  /** What the exchange is, as check-config says it (the adapter's DescribeExchange). */
  readonly exchange: string;
  readonly signers: readonly SignerFunds[];
  /** Gas token a signer needs to take work: one liquidation at the head's fees, or keeper.minSignerBalance. */
  readonly floorWei: bigint;
}

/** Gas of one liquidation, as the executor first estimates it (before it has measured any). */
const GAS_PER_LIQUIDATION = 80_000n;

/**
 * The smallest balance a signer needs: two liquidations' gas at the lowest max fee the fee policy would set at this
 * base fee (the tip at its floor), or keeper.minSignerBalance if higher. Never above the executor's own floor (which
 * may use a higher observed tip), so a start these checks pass is not refused by them where the executor would run.
 */
export function fundingFloor(k: KeeperConfig["keeper"], baseFeePerGas: bigint): bigint {
  const multiplierBps = parseUnits(String(k.baseFeeMultiplier), 4);
  let maxFee = (baseFeePerGas * multiplierBps + 9_999n) / 10_000n + parseUnits(k.minPriorityFeeGwei, 9);
  if (k.maxFeePerGasGwei !== undefined) {
    const cap = parseUnits(k.maxFeePerGasGwei, 9);
    if (maxFee > cap) maxFee = cap;
  }
  const oneLiquidation = GAS_PER_LIQUIDATION * 2n * maxFee;
  const minimum = parseUnits(k.minSignerBalance, 18);
  return minimum > oneLiquidation ? minimum : oneLiquidation;
}

/**
 * The exchange behind exchange.address, checked and described in one line for check-config; a deployment that is not
 * what the config says is a ConfigError naming what is wrong. Each adapter's (src/protocol/exchanges.ts).
 */
export type DescribeExchange = (connection: Connection, config: KeeperConfig) => Promise<string>;

/**
 * The chain-side checks after connect's (chain id, the exchange's code): the start block is not beyond the head,
 * a batch fits in a block, the exchange is what `describeExchange` finds, and (unless a dry run, which sends nothing)
 * at least one signer can pay.
 */
export async function checkChain(
  connection: Connection,
  config: KeeperConfig,
  signers: readonly Address[],
  describeExchange: DescribeExchange,
): Promise<ChainFacts> {
  const client = connection.publicClient;
  const k = config.keeper;
  const [head, exchange, balances] = await Promise.all([
    client.getBlock({ blockTag: "latest" }),
    describeExchange(connection, config),
    Promise.all(signers.map((address) => client.getBalance({ address }))),
  ]);
  if (BigInt(config.exchange.deployBlock) > head.number) {
    throw new ConfigError(
      `the exchange's deployBlock ${config.exchange.deployBlock} is above the chain head ${head.number}: wrong chain or config`,
    );
  }
  if (k.batching && k.batchGasLimit !== undefined && BigInt(k.batchGasLimit) > head.gasLimit) {
    throw new ConfigError(
      `keeper.batchGasLimit ${k.batchGasLimit} is above the chain's block gas limit ${head.gasLimit}: ` +
        "no batch that large could ever be mined",
    );
  }
  const floorWei = fundingFloor(k, head.baseFeePerGas ?? 0n);
  const funds = signers.map((address, i) => {
    const balanceWei = balances[i] ?? 0n;
    return { address, balanceWei, canPay: balanceWei >= floorWei };
  });
  if (!k.dryRun && !funds.some((f) => f.canPay)) {
    throw new SignerError(
      `no signer can pay for a liquidation at current fees (${floorWei} wei needed): fund ${signers.join(", ")}`,
    );
  }
  return { head: head.number, blockGasLimit: head.gasLimit, exchange, signers: funds, floorWei };
}

/** check-config's report: what `run` would use, and what the chain showed. */
export function describeRun(s: RunSettings, connection: Connection, facts: ChainFacts): string {
  const c = s.config;
  const k = c.keeper;
  return [
    `config ${s.configPath}: ok (the checks run makes at start all passed)`,
    `  network ${c.network.name}, chain ${c.network.chainId}, head ${facts.head}`,
    `  RPC (from ${s.rpcSource}): ${endpoints(s.rpcUrl).map(redactUrl).join(", ")}`,
    `  WebSocket: ${c.network.wsUrl === undefined ? "none (polling)" : redactUrl(c.network.wsUrl)}`,
    `  exchange ${connection.engine}: ${facts.exchange}, indexed from block ${c.exchange.deployBlock}`,
    `  Multicall3: ${connection.multicall3 ?? "none (one eth_call per oracle)"}`,
    `  signers (${facts.signers.length}), each needs ${formatEther(facts.floorWei)} to take work:`,
    ...facts.signers.map(
      (f) => `    ${f.address}  ${formatEther(f.balanceWei)}${f.canPay ? "" : "  (cannot pay: it would be left out)"}`,
    ),
    `  state directory: ${k.stateDir} (from ${s.stateDirSource}), writable`,
    `  dry run: ${k.dryRun} (from ${s.dryRunSource})`,
  ].join("\n");
}
