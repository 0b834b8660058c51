#!/usr/bin/env node
/**
 * perp-keeper's entry point (built: dist/src/main.js, the package's `perp-keeper` bin).
 *   perp-keeper                        (npm start) the embedded demo: local Anvil, reference exchange, a crash
 *   perp-keeper run --config x.json    the keeper against the chain the config names (keys from the environment)
 *   perp-keeper status --config x.json the positions nearest to liquidation; read-only, no key
 *   perp-keeper check-config --config x.json   validate config and environment against the RPC; sends nothing
 */
import { parseArgs } from "node:util";
import { config as loadDotenv } from "dotenv";
import { perpEngineAbi } from "../abi/PerpEngine.ts";
import { StartupError, startKeeper } from "./app.ts";
import { connect, endpoints } from "./chain/connect.ts";
import { describeError } from "./chain/errors.ts";
import { ConfigError, loadConfigFile, parseSeconds, readEnv, redactUrl } from "./config/load.ts";
import type { KeeperConfig } from "./config/schema.ts";
import { SignerError } from "./executor/executor.ts";
import { JournalError } from "./executor/journal.ts";
import { createLogger, type Logger } from "./ops/logger.ts";
import { LogDecodeError } from "./protocol/perpEngine.ts";
import { BookError } from "./state/book.ts";
import { StartBlockError } from "./watcher/watcher.ts";

/** A signal repeated sooner than this is the same request delivered twice by the process tree, not a second one. */
const SIGNAL_REPEAT_MS = 1_000;

const USAGE = `Usage: perp-keeper [command] [options]     (from the repository: npm start -- [command] [options])

Commands:
  (none)               with --config (or KEEPER_CONFIG): run; without: the embedded demo on a local Anvil devnet
  run                  run the keeper against the chain the config names (needs --config and a key)
  demo                 the embedded demo
  status               print the open positions nearest to liquidation and exit (needs --config; no key)
  check-config         validate the config and environment, check the chain id and the exchange's code at the
                       RPC, and exit 0 (ok) or 2 (bad); sends nothing, needs no key
  rehearse             a dress rehearsal on a fork: --fork-url <rpc> [--fork-block N] --config <file>
                       --shock BTC-USD=-10% [--shock ...] [--json]; Anvil forks the chain, the shocks move the
                       oracles on the fork, the keeper runs there with a funded Anvil key, and a report says what
                       it liquidated; nothing is sent to the live chain

Options:
  --config <file>      keeper config (config/*.json); env KEEPER_CONFIG
  --rpc-url <url>      RPC endpoint, overrides the config's; env RPC_URL
  --dry-run            simulate liquidations, never send; env KEEPER_DRY_RUN=true
  --duration <sec>     stop cleanly after this many seconds; env KEEPER_RUN_SECONDS
  --status             the same as the status command
  --top <n>            rows of status (default 20)
  --keep-running       demo: keep following after the scenario until Ctrl-C
  --precompute <mode>  demo: 1-second blocks, and liquidations prepared on the pending oracle updates
                       (backrun: in the update's own block; on-block: sent the instant it lands); docs/precompute.md
  --log-format <fmt>   json | pretty (default: pretty for the demo on a terminal, json otherwise); env LOG_FORMAT
  -h, --help           this text

Signer keys come only from the environment: KEEPER_PRIVATE_KEY, or KEEPER_PRIVATE_KEYS (comma-separated, one
nonce lane each; see .env.example).
SIGINT and SIGTERM stop the keeper cleanly: no new work, broadcasts under way get keeper.shutdownGraceMs;
pending transactions stay in the journal (keeper.stateDir) and are picked up at the next start.`;

async function main(): Promise<number> {
  loadDotenv({ quiet: true });
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      config: { type: "string" },
      "rpc-url": { type: "string" },
      "dry-run": { type: "boolean" },
      duration: { type: "string" },
      "keep-running": { type: "boolean" },
      precompute: { type: "string" },
      status: { type: "boolean" },
      top: { type: "string" },
      "log-format": { type: "string" },
      "fork-url": { type: "string" },
      "fork-block": { type: "string" },
      shock: { type: "string", multiple: true },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const [given, ...extra] = positionals;
  if (extra.length > 0 || (given !== undefined && !COMMANDS.includes(given as Command))) {
    throw new ConfigError(`unknown command "${positionals.join(" ")}": ${COMMANDS.join(", ")} (see --help)`);
  }
  const command: Command | undefined = values.status ? "status" : (given as Command | undefined);
  // commands that sign nothing neither need a key nor read one (a malformed key does not stop them)
  const readOnly = command === "status" || command === "check-config" || command === "rehearse";
  const env = readEnv({
    ...process.env,
    ...(readOnly ? { KEEPER_PRIVATE_KEY: undefined, KEEPER_PRIVATE_KEYS: undefined } : {}),
    ...(values["rpc-url"] ? { RPC_URL: values["rpc-url"] } : {}),
    ...(values["log-format"] ? { LOG_FORMAT: values["log-format"] } : {}),
  });
  const configPath = values.config ?? env.configPath;
  if ((command === "run" || readOnly) && configPath === undefined) {
    throw new ConfigError(`${command} needs --config (or KEEPER_CONFIG)`);
  }
  const runSeconds = parseSeconds("--duration", values.duration) ?? env.runSeconds;
  const demo = command === "demo" || (command === undefined && configPath === undefined);
  const log = createLogger({
    level: env.logLevel,
    format: env.logFormat ?? (demo && process.stdout.isTTY ? "pretty" : "json"),
  });

  const controller = new AbortController();
  const stopOn = (reason: string) => () => {
    if (!controller.signal.aborted) {
      log.info({ event: "shutdown_requested", reason }, `${reason}: shutting down`);
      controller.abort(reason);
    }
  };
  // A terminal's Ctrl-C reaches every process of the group, and npm forwards it to its child as well: the keeper
  // gets the same signal twice within milliseconds. That is one request. Only a signal that comes after
  // SIGNAL_REPEAT_MS (a second Ctrl-C by a person) makes it exit at once.
  let firstSignalAt = 0;
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.on(signal, () => {
      if (!controller.signal.aborted) {
        firstSignalAt = Date.now();
        return stopOn(signal)();
      }
      if (Date.now() - firstSignalAt < SIGNAL_REPEAT_MS) return;
      log.warn({ event: "shutdown_requested", reason: `${signal} again` }, "second signal: exiting now");
      log.flush();
      process.exit(130);
    });
  }
  const timer = runSeconds ? setTimeout(stopOn("duration elapsed"), runSeconds * 1000) : undefined;
  timer?.unref();

  try {
    if (command === "rehearse") {
      const forkUrl = values["fork-url"] ?? env.rpcUrl?.split(",")[0];
      if (!forkUrl) throw new ConfigError("rehearse needs --fork-url (or RPC_URL): the chain to fork");
      // loaded on demand: the devnet tooling (viem/chains, the contracts' bytecode) costs a run's start-up ~300 ms
      const { parseShock, rehearse, renderRehearsal } = await import("./ops/rehearse.ts");
      const shocks = (values.shock ?? []).map(parseShock);
      if (shocks.length === 0) throw new ConfigError("rehearse needs at least one --shock, e.g. --shock BTC-USD=-10%");
      const forkBlock = values["fork-block"] === undefined ? undefined : BigInt(values["fork-block"]);
      const report = await rehearse({ config: loadConfigFile(configPath as string), forkUrl, forkBlock, shocks });
      console.log(values.json ? JSON.stringify(report) : renderRehearsal(report));
      return 0;
    }
    if (command === "check-config") {
      console.log(await checkConfig(configPath as string, env));
      return 0;
    }
    if (command === "status") {
      const top = Number(values.top ?? "20");
      if (!Number.isInteger(top) || top <= 0)
        throw new ConfigError(`--top must be a positive integer, got "${values.top}"`);
      const config = loadConfigFile(configPath as string);
      const rpcUrl = rpcUrlOf(config, env, configPath as string);
      const { statusReport } = await import("./ops/statusCommand.ts");
      console.log(await statusReport(config, rpcUrl, createLogger({ level: "warn", format: "json" }), top));
      return 0;
    }
    if (demo) {
      const { runDemo } = await import("./demo/demo.ts");
      const precompute = values.precompute;
      if (precompute !== undefined && precompute !== "backrun" && precompute !== "on-block") {
        throw new ConfigError(`--precompute takes backrun or on-block, got "${precompute}"`);
      }
      const result = await runDemo({
        log,
        keepRunning: values["keep-running"] ?? false,
        precompute,
        signal: controller.signal,
      });
      return result.stillLiquidatable === 0 || controller.signal.aborted ? 0 : 1;
    }
    return await runConfigured(
      configPath as string,
      env,
      values["rpc-url"] !== undefined,
      values["dry-run"],
      controller.signal,
      log,
    );
  } finally {
    clearTimeout(timer);
    log.flush();
  }
}

const COMMANDS = ["run", "demo", "status", "check-config", "rehearse"] as const;
type Command = (typeof COMMANDS)[number];

/** Where the RPC endpoints in use were set: the --rpc-url flag, RPC_URL(S), or the config file. */
function rpcSourceOf(config: KeeperConfig, env: ReturnType<typeof readEnv>, flag: boolean): string {
  if (env.rpcUrl === undefined) return config.network.rpcUrls ? "config network.rpcUrls" : "config network.rpcUrl";
  return flag ? "--rpc-url" : "environment";
}

/** The RPC endpoint(s) in use: RPC_URL(S) or --rpc-url, else the config's. */
function rpcUrlOf(config: KeeperConfig, env: ReturnType<typeof readEnv>, configPath: string): string {
  const rpcUrl = env.rpcUrl ?? config.network.rpcUrls?.join(",") ?? config.network.rpcUrl;
  if (!rpcUrl) throw new ConfigError(`no RPC endpoint: set RPC_URL or network.rpcUrl in ${configPath}`);
  return rpcUrl;
}

/**
 * check-config: the config and environment are valid, the RPC answers on the config's chain, and the exchange
 * address holds a PerpEngine. A bad config, environment, chain or address is a ConfigError (exit 2); an RPC that
 * does not answer is exit 1. Nothing is signed or sent.
 */
async function checkConfig(configPath: string, env: ReturnType<typeof readEnv>): Promise<string> {
  const config = loadConfigFile(configPath);
  const rpcUrl = rpcUrlOf(config, env, configPath);
  const source = env.rpcUrl !== undefined ? "environment" : "config";
  const connection = await connect(config, rpcUrl);
  const markets = await connection.publicClient.readContract({
    address: connection.engine,
    abi: perpEngineAbi,
    functionName: "marketCount",
  });
  return [
    `config ${configPath}: ok`,
    `  network ${config.network.name}, chain ${config.network.chainId}`,
    `  RPC (from the ${source}): ${endpoints(rpcUrl).map(redactUrl).join(", ")}`,
    `  exchange ${connection.engine}: a PerpEngine with ${markets} markets, indexed from block ${config.exchange.deployBlock}`,
    `  Multicall3: ${connection.multicall3 ?? "none (one eth_call per oracle)"}`,
    `  state directory: ${config.keeper.stateDir}; dry run: ${config.keeper.dryRun}`,
  ].join("\n");
}

async function runConfigured(
  configPath: string,
  env: ReturnType<typeof readEnv>,
  rpcFlag: boolean,
  dryRunFlag: boolean | undefined,
  signal: AbortSignal,
  log: Logger,
): Promise<number> {
  const config = loadConfigFile(configPath);
  const rpcUrl = rpcUrlOf(config, env, configPath);
  if (env.privateKeys.length === 0) {
    throw new ConfigError("KEEPER_PRIVATE_KEY is not set, nor KEEPER_PRIVATE_KEYS (see .env.example)");
  }
  const dryRun = dryRunFlag ?? env.dryRun ?? config.keeper.dryRun;
  const wsUrl = env.wsUrl ?? config.network.wsUrl;
  const running = await startKeeper({
    config: {
      ...config,
      network: { ...config.network, wsUrl },
      keeper: { ...config.keeper, dryRun, stateDir: env.stateDir ?? config.keeper.stateDir },
    },
    rpcUrl,
    rpcSource: rpcSourceOf(config, env, rpcFlag),
    privateKeys: env.privateKeys,
    log,
    signal,
  }).catch((error: unknown) => {
    if (signal.aborted && error instanceof StartupError) return undefined; // asked to stop while still connecting
    throw error;
  });
  if (!running) return 0;
  await running.done;
  await running.stop();
  return 0;
}

// Exit explicitly once stopped: a request still retrying against a node that is gone must not hold the process.
main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    // viem's short message only: its details can carry the RPC URL, and with it a provider's API key
    const message = describeError(error);
    const setup =
      error instanceof ConfigError ||
      error instanceof StartBlockError ||
      error instanceof BookError ||
      error instanceof SignerError ||
      error instanceof JournalError;
    console.error(setup ? `configuration error: ${message}` : `perp-keeper failed: ${message}`);
    process.exit(setup || error instanceof LogDecodeError ? 2 : 1);
  },
);
