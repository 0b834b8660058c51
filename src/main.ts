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
import { StartupError, startKeeper } from "./app.ts";
import { type Connection, connect, endpoints } from "./chain/connect.ts";
import { describeError, isRetryable } from "./chain/errors.ts";
import { ConfigError, loadConfigFile, parseSeconds, readEnv, redactUrl, redactUrls } from "./config/load.ts";
import type { KeeperConfig } from "./config/schema.ts";
import { KeeperError, SetupError } from "./errors.ts";
import { createLogger, type Logger } from "./ops/logger.ts";
import { checkChain, checkStateDir, describeRun, type RunSettings, resolveRun } from "./ops/preflight.ts";
import { packageVersion } from "./ops/version.ts";
import { exchangeCommands } from "./protocol/exchanges.ts";
import { startPerpV2Keeper } from "./protocol/perpV2/run.ts";

/** A signal repeated sooner than this is the same request delivered twice by the process tree, not a second one. */
const SIGNAL_REPEAT_MS = 1_000;

const USAGE = `Usage: perp-keeper [command] [options]     (from the repository: npm start -- [command] [options])

Commands:
  (none)               with --config (or KEEPER_CONFIG): run; without: the embedded demo on a local Anvil devnet
  run                  run the keeper against the chain the config names (needs --config and a key)
  demo                 the embedded demo
  status               print the open positions nearest to liquidation and exit (needs --config; no key)
  collateral           Perp v2: the liquidator's collateral in the Vault: collateral status, collateral deposit
                       <amount>, collateral withdraw <amount> (settlement-token units, e.g. 1000 USDC); the
                       liquidator is exchange.liquidator, else the signer; each transaction simulated first
  check-config         run's start-up checks, and what run would use: config, environment (keys included),
                       overrides, state directory writable, chain id, the exchange's code, start block, signers
                       and their balances; exit 0 (ok), 2 (bad) or 1 (the RPC did not answer); sends nothing
  rehearse             a dress rehearsal on a fork: --fork-url <rpc> [--fork-block N|latest] --config <file>
                       --shock BTC-USD=-10% [--shock ...] [--timeout <sec>] [--json]; Anvil forks the chain, the
                       shocks move the oracles on the fork, the keeper runs there with a funded Anvil key, and a
                       report says what it liquidated; nothing is sent to the live chain. Needs Anvil, a
                       devDependency (npm ci in a checkout): it does not run in the production image. --timeout
                       (default 120 s) bounds the whole rehearsal, backfill included; a backfill that did not
                       finish by then is exit 1 with no result. Ctrl-C stops the fork: exit 130

Options:
  --config <file>      keeper config (config/*.json); env KEEPER_CONFIG
  --rpc-url <url>      RPC endpoint, overrides the config's; env RPC_URL
  --dry-run            simulate liquidations, never send; env KEEPER_DRY_RUN=true
  --duration <sec>     stop cleanly after this many seconds; env KEEPER_RUN_SECONDS
  --status             the same as the status command
  --top <n>            rows of status (default 20)
  --exchange <name>    demo: perp-engine (the reference exchange, default) or perp-v2 (Perpetual Protocol v2 from
                       its npm bytecode: cross margin, partial liquidations, positions taken over and closed)
  --keep-running       demo: keep following after the scenario until Ctrl-C
  --precompute <mode>  demo: 1-second blocks, and liquidations prepared on the pending oracle updates
                       (backrun: in the update's own block; on-block: sent the instant it lands); docs/precompute.md
  --log-format <fmt>   json | pretty (default: pretty on a terminal, json otherwise); env LOG_FORMAT
  --dotenv <file>      read environment variables from this file (variables already set win); env
                       KEEPER_ENV_FILE. No .env is read unless asked for
  -v, --version        the version
  -h, --help           this text

Signer keys come only from the environment: KEEPER_PRIVATE_KEY, or KEEPER_PRIVATE_KEYS (comma-separated, one
nonce lane each; see .env.example).
SIGINT and SIGTERM stop the keeper cleanly: no new work, broadcasts under way get keeper.shutdownGraceMs;
pending transactions stay in the journal (keeper.stateDir) and are picked up at the next start.

Exit codes: 0 stopped cleanly; 1 failed (an RPC unreachable, an unexpected error: a restart may help); 2 a bad
setup a restart cannot fix (command line, config, environment, state directory, chain, exchange, signers, a
journal locked by another keeper); 130 stopped at once by a second signal.`;

/** The options every command takes (node:util parseArgs); anything else is an error (exit 2). */
const OPTIONS = {
  config: { type: "string" },
  "rpc-url": { type: "string" },
  "dry-run": { type: "boolean" },
  duration: { type: "string" },
  "keep-running": { type: "boolean" },
  precompute: { type: "string" },
  exchange: { type: "string" },
  status: { type: "boolean" },
  top: { type: "string" },
  "log-format": { type: "string" },
  dotenv: { type: "string" },
  "fork-url": { type: "string" },
  "fork-block": { type: "string" },
  timeout: { type: "string" },
  shock: { type: "string", multiple: true },
  json: { type: "boolean" },
  version: { type: "boolean", short: "v" },
  help: { type: "boolean", short: "h" },
} as const;

function parseCommandLine(args: string[]) {
  try {
    return parseArgs({ args, allowPositionals: true, options: OPTIONS });
  } catch (error) {
    // an unknown flag (run --dryrun), a flag without its value: a restart cannot fix the command line
    throw new ConfigError(`${(error as Error).message.split("\n")[0]} (see --help)`);
  }
}

async function main(): Promise<number> {
  const { values, positionals } = parseCommandLine(process.argv.slice(2));
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (values.version) {
    console.log(packageVersion());
    return 0;
  }
  // a .env file only where the operator asks for one: a copied development .env never reaches production. (Not
  // named --env-file: Node 20 reads its own --env-file even after the script's name.)
  const envFile = values.dotenv ?? process.env.KEEPER_ENV_FILE?.trim();
  if (envFile) {
    const loaded = loadDotenv({ path: envFile, quiet: true });
    if (loaded.error) throw new ConfigError(`cannot read the env file ${envFile}: ${loaded.error.message}`);
  }
  const [given, ...extra] = positionals;
  // collateral takes its action and an amount: collateral status | deposit <amount> | withdraw <amount>
  const collateralArgs = given === "collateral" ? extra.splice(0, 2) : [];
  if (extra.length > 0 || (given !== undefined && !COMMANDS.includes(given as Command))) {
    throw new ConfigError(`unknown command "${positionals.join(" ")}": ${COMMANDS.join(", ")} (see --help)`);
  }
  const command: Command | undefined = values.status ? "status" : (given as Command | undefined);
  // status and rehearse sign nothing with the operator's keys: they neither need one nor read one (a malformed key
  // does not stop them). check-config reads them as run does: it makes run's start-up checks.
  const keyless = command === "status" || command === "rehearse";
  const needsConfig = keyless || command === "run" || command === "check-config" || command === "collateral";
  const env = readEnv({
    ...process.env,
    ...(keyless ? { KEEPER_PRIVATE_KEY: undefined, KEEPER_PRIVATE_KEYS: undefined } : {}),
    ...(values["rpc-url"] ? { RPC_URL: values["rpc-url"] } : {}),
    ...(values["log-format"] ? { LOG_FORMAT: values["log-format"] } : {}),
  });
  const configPath = values.config ?? env.configPath;
  if (needsConfig && configPath === undefined) {
    throw new ConfigError(`${command} needs --config (or KEEPER_CONFIG)`);
  }
  const runSeconds = parseSeconds("--duration", values.duration) ?? env.runSeconds;
  const demo = command === "demo" || (command === undefined && configPath === undefined);
  const log = createLogger({
    level: env.logLevel,
    format: env.logFormat ?? (process.stdout.isTTY ? "pretty" : "json"),
    // rehearse prints its report on stdout: its own lines (a signal's shutdown_requested) go to stderr
    stderr: command === "rehearse",
  });
  // the command's own lines (a signal's shutdown_requested); the keeper's parts carry theirs (src/app.ts)
  const own = log.child({ component: "main" });

  const controller = new AbortController();
  const stopOn = (reason: string) => () => {
    if (!controller.signal.aborted) {
      own.info({ event: "shutdown_requested", reason }, `${reason}: shutting down`);
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
      own.warn({ event: "shutdown_requested", reason: `${signal} again` }, "second signal: exiting now");
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
      const { parseShock, rehearse, renderRehearsal, RehearsalInterrupted, DEFAULT_REHEARSAL_TIMEOUT_SECONDS } =
        await import("./ops/rehearse.ts");
      const shocks = (values.shock ?? []).map(parseShock);
      if (shocks.length === 0) throw new ConfigError("rehearse needs at least one --shock, e.g. --shock BTC-USD=-10%");
      const forkBlock = parseForkBlock(values["fork-block"]);
      const timeoutSeconds = parseSeconds("--timeout", values.timeout) ?? DEFAULT_REHEARSAL_TIMEOUT_SECONDS;
      const config = loadConfigFile(configPath as string);
      const rehearsal = exchangeCommands(config).rehearsal;
      if (!rehearsal) throw new ConfigError(`rehearse is not available for the ${config.exchange.adapter} adapter`);
      const exchange = await rehearsal();
      try {
        const report = await rehearse({
          config,
          exchange,
          forkUrl,
          forkBlock,
          shocks,
          timeoutSeconds,
          signal: controller.signal,
          progress: (message) => console.error(`rehearse: ${message}`),
        });
        console.log(values.json ? JSON.stringify(report) : renderRehearsal(report));
        if (report.settled) return 0;
        console.error(`rehearse: the deadline (--timeout ${timeoutSeconds} s) came before the keeper was done`);
        return 1;
      } catch (error) {
        if (!(error instanceof RehearsalInterrupted)) throw error;
        console.error(`rehearse: ${error.message}; nothing is left behind`);
        return 130;
      }
    }
    const inputs = {
      configPath: configPath as string,
      env,
      rpcFlag: values["rpc-url"] !== undefined,
      dryRunFlag: values["dry-run"],
    };
    if (command === "check-config") {
      console.log(await checkConfig(resolveRun(inputs)));
      return 0;
    }
    if (command === "collateral") {
      const { collateral } = await import("./protocol/perpV2/collateralCli.ts");
      console.log(
        await collateral(
          resolveRun(inputs),
          collateralArgs,
          createLogger({ level: "info", format: "json", stderr: true }),
        ),
      );
      return 0;
    }
    if (command === "status") {
      const top = Number(values.top ?? "20");
      if (!Number.isInteger(top) || top <= 0)
        throw new ConfigError(`--top must be a positive integer, got "${values.top}"`);
      const config = loadConfigFile(configPath as string);
      const rpcUrl = rpcUrlOf(config, env, configPath as string);
      const { statusReport } = await import("./ops/statusCommand.ts");
      const view = await exchangeCommands(config).statusView();
      console.log(await statusReport(config, rpcUrl, createLogger({ level: "warn", format: "json" }), top, view));
      return 0;
    }
    if (demo) {
      const exchange = values.exchange ?? "perp-engine";
      if (exchange !== "perp-engine" && exchange !== "perp-v2" && exchange !== "cross-margin") {
        throw new ConfigError(`--exchange takes perp-engine, perp-v2 or cross-margin, got "${exchange}"`);
      }
      if (exchange === "cross-margin") {
        if (values.precompute !== undefined) throw new ConfigError("--precompute is for the perp-engine demo");
        const { runCrossMarginDemo } = await import("./demo/crossMarginDemo.ts");
        const result = await runCrossMarginDemo({
          log,
          keepRunning: values["keep-running"] ?? false,
          signal: controller.signal,
        });
        const done = result.stillOpen === 0 && result.flaggedByKeeper === result.liquidatableAfterCrash;
        return (done && result.wronglyFlagged === 0) || controller.signal.aborted ? 0 : 1;
      }
      if (exchange === "perp-v2") {
        if (values.precompute !== undefined) throw new ConfigError("--precompute is for the perp-engine demo");
        const { runPerpV2Demo } = await import("./demo/perpV2Demo.ts");
        const result = await runPerpV2Demo({
          log,
          keepRunning: values["keep-running"] ?? false,
          signal: controller.signal,
        });
        return (result.stillLiquidatable === 0 && result.inventoryFlat) || controller.signal.aborted ? 0 : 1;
      }
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
    return await runConfigured(resolveRun(inputs), controller.signal, log);
  } finally {
    clearTimeout(timer);
    log.flush();
  }
}

const COMMANDS = ["run", "demo", "status", "check-config", "rehearse", "collateral"] as const;
type Command = (typeof COMMANDS)[number];

/** --fork-block: a block number, or "latest" (the default: the fork's head). */
function parseForkBlock(value: string | undefined): bigint | undefined {
  if (value === undefined || value.trim() === "latest") return undefined;
  if (!/^\d+$/.test(value.trim()))
    throw new ConfigError(`--fork-block takes a block number or "latest", got "${value}"`);
  return BigInt(value.trim());
}

/** The RPC endpoint(s) in use: RPC_URL(S) or --rpc-url, else the config's. */
function rpcUrlOf(config: KeeperConfig, env: ReturnType<typeof readEnv>, configPath: string): string {
  const rpcUrl = env.rpcUrl ?? config.network.rpcUrls?.join(",") ?? config.network.rpcUrl;
  if (!rpcUrl) throw new ConfigError(`no RPC endpoint: set RPC_URL or network.rpcUrl in ${configPath}`);
  return rpcUrl;
}

/**
 * check-config: run's start-up checks (src/ops/preflight.ts), the same functions run calls, and what run would
 * use. A bad config, environment, state directory, chain, address, start block or set of signers is exit 2; an
 * RPC that does not answer is exit 1, naming the endpoint (redacted). Nothing is signed or sent.
 */
async function checkConfig(settings: RunSettings): Promise<string> {
  checkStateDir(settings.config.keeper.stateDir);
  const endpoint = endpoints(settings.rpcUrl).map(redactUrl).join(", ");
  let connection: Connection;
  try {
    connection = await connect(settings.config, settings.rpcUrl);
  } catch (error) {
    if (!isRetryable(error)) throw error;
    throw new Error(`cannot reach the RPC at ${endpoint}: ${describeError(error)}`);
  }
  try {
    const facts = await checkChain(
      connection,
      settings.config,
      settings.signers,
      exchangeCommands(settings.config).describe,
    ).catch((error: unknown) => {
      if (!isRetryable(error)) throw error;
      throw new Error(`the RPC at ${endpoint} failed: ${describeError(error)}`);
    });
    return describeRun(settings, connection, facts);
  } finally {
    connection.close();
  }
}

async function runConfigured(settings: RunSettings, signal: AbortSignal, log: Logger): Promise<number> {
  checkStateDir(settings.config.keeper.stateDir);
  const adapter = settings.config.exchange.adapter;
  const start =
    adapter === "perp-v2"
      ? startPerpV2Keeper
      : adapter === "cross-margin"
        ? (await import("./protocol/crossMargin/run.ts")).startCrossMarginKeeper
        : startKeeper;
  const running = await start({
    config: settings.config,
    rpcUrl: settings.rpcUrl,
    rpcSource: settings.rpcSource,
    privateKeys: settings.privateKeys,
    log,
    signal,
    preflight: (connection) =>
      checkChain(connection, settings.config, settings.signers, exchangeCommands(settings.config).describe),
  }).catch((error: unknown) => {
    if (signal.aborted && error instanceof StartupError) return undefined; // asked to stop while still connecting
    throw error;
  });
  if (!running) return 0;
  // a signal stops the keeper within keeper.shutdownGraceMs, whatever the follow step under way waits for: done may
  // settle only when that step's RPC call times out, so it is not waited for once a stop was asked
  const asked = new Promise<void>((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener("abort", () => resolve(), { once: true });
  });
  await Promise.race([running.done, asked]);
  await running.stop();
  return 0;
}

// Exit explicitly once stopped: a request still retrying against a node that is gone must not hold the process.
main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    // viem's short message only: its details can carry the RPC URL, and with it a provider's API key
    // and every URL in it redacted: an RPC's or a child's (Anvil's) error text may quote one whole
    const message = redactUrls(describeError(error));
    // the keeper's own errors carry their exit code (2: a setup someone must fix); anything else is exit 1
    console.error(error instanceof SetupError ? `configuration error: ${message}` : `perp-keeper failed: ${message}`);
    process.exit(error instanceof KeeperError ? error.exitCode : 1);
  },
);
