/**
 * `perp-keeper rehearse`: a dress rehearsal on a fork. Anvil forks the live chain at a pinned block, the shocks are
 * applied to the markets' oracles on the fork, and the keeper runs against the fork with a funded Anvil key. The
 * report says what the keeper would do: positions liquidatable after the shock, liquidated, rewards, gas, and what
 * was skipped and why. Nothing is sent to the live chain: the fork only reads from it.
 *
 * A shock moves a market's oracle answer by a percentage. A Chainlink MockV3Aggregator takes updateAnswer from
 * anyone; any other AggregatorV3Interface feed (a proxy, an OCR2 aggregator) gets Chainlink's MockV3Aggregator
 * code installed at its address (anvil_setCode), its decimals and round counter set in storage, and then the same
 * updateAnswer: it works for any protocol that reads the feed.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type Address,
  encodeDeployData,
  encodeFunctionData,
  formatUnits,
  type Hex,
  numberToHex,
  type PublicClient,
  pad,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { mockV3AggregatorAbi, mockV3AggregatorBytecode } from "../../abi/MockV3Aggregator.ts";
import { describeError } from "../chain/errors.ts";
import { httpPublicClient } from "../chain/httpClient.ts";
import { ConfigError, redactUrl, redactUrls } from "../config/load.ts";
import type { KeeperConfig } from "../config/schema.ts";
import { ANVIL_KEYS, anvilBinary, startAnvil } from "../devnet/anvil.ts";
import { placeCode } from "../devnet/exchange.ts";
import type { ExecutorStats } from "../executor/executor.ts";
import { createLogger, type Logger } from "./logger.ts";
import { sleep } from "./sleep.ts";

export interface Shock {
  readonly market: string;
  /** Percent move of the oracle answer, e.g. -10 for a 10% drop. */
  readonly percent: number;
}

/** "BTC-USD=-10%" (or without the %): a market name and a percent move. */
export function parseShock(text: string): Shock {
  const match = /^([^=]+)=([+-]?\d+(?:\.\d+)?)%?$/.exec(text.trim());
  if (!match) throw new ConfigError(`--shock must look like BTC-USD=-10%, got "${text}"`);
  const percent = Number(match[2]);
  if (percent <= -100) throw new ConfigError(`--shock ${text}: a move of ${percent}% leaves no price`);
  return { market: (match[1] as string).trim(), percent };
}

export interface RehearsalReport {
  readonly forkBlock: string;
  readonly shocks: readonly { market: string; percent: number; from: string; to: string; how: string }[];
  readonly positions: number;
  readonly liquidatableAfterShock: number;
  readonly liquidated: number;
  readonly lostRace: number;
  /** Keeper rewards in collateral units, an exact decimal string (from the chain's events, WAD). */
  readonly rewards: string;
  readonly gasPaidWei: string;
  readonly transactions: number;
  readonly reverted: number;
  readonly skipped: Record<string, number>;
  readonly stillLiquidatable: number;
  /** The keeper had nothing left to do before the deadline (false: the figures are as of the deadline). */
  readonly settled: boolean;
  /** Our transactions still unresolved at the end. */
  readonly pendingAtEnd: number;
}

/** What a rehearsal needs of one exchange: its adapter's (src/protocol/exchanges.ts). */
export interface RehearsalExchange {
  /** The exchange's markets by name, and the AggregatorV3Interface feed each one is priced by: what a shock moves. */
  oracles(client: PublicClient, exchange: Address): Promise<Map<string, Address>>;
  /** Starts the exchange's keeper on the fork, with the counts the report needs. */
  start(o: {
    readonly config: KeeperConfig;
    readonly rpcUrl: string;
    readonly privateKeys: readonly Hex[];
    readonly log: Logger;
    /** The keeper's signer: its rewards are the report's. */
    readonly keeperAddress: Address;
  }): Promise<RehearsedKeeper>;
}

/** A keeper running on the fork, as the rehearsal reads it. */
export interface RehearsedKeeper {
  readonly executor: {
    readonly stats: Readonly<ExecutorStats>;
    readonly pendingAttempts: readonly unknown[];
  };
  /** Resolves when the keeper has stopped; rejects with a fatal error. */
  readonly done: Promise<void>;
  stop(reason?: string): Promise<void>;
  /** Positions liquidatable at the first head the keeper judged (the shocks are applied before it starts). */
  liquidatableAfterShock(): number | undefined;
  /** Keeper rewards the chain's events credited to keeperAddress, WAD collateral. */
  rewardsWad(): bigint;
  /** Positions open in the keeper's book. */
  openPositions(): number;
  /** Positions liquidatable at the last head the keeper saw. */
  stillLiquidatable(): number;
}

export interface RehearseOptions {
  readonly config: KeeperConfig;
  /** The configured exchange's part (src/protocol/exchanges.ts). */
  readonly exchange: RehearsalExchange;
  readonly forkUrl: string;
  readonly forkBlock?: bigint;
  readonly shocks: readonly Shock[];
  /**
   * The rehearsal's deadline, the keeper's backfill on the fork included (default 120 s, --timeout). A backfill
   * that did not finish by then is RehearsalIncomplete, never a result.
   */
  readonly timeoutSeconds?: number;
  /** Aborting it (Ctrl-C) stops the keeper and the fork and removes the rehearsal's state: RehearsalInterrupted. */
  readonly signal?: AbortSignal;
  /** Where a line of progress goes (the command line: stderr). */
  readonly progress?: (message: string) => void;
}

const rpc = (client: PublicClient, method: string, params: unknown[]) =>
  client.request({ method: method as never, params: params as never });

/** Moves one oracle's answer on the fork; returns how. */
async function shockOracle(client: PublicClient, oracle: Address, answer: bigint, sender: Address): Promise<string> {
  const send = async () => {
    const hash = (await rpc(client, "eth_sendTransaction", [
      {
        from: sender,
        to: oracle,
        data: encodeFunctionData({ abi: mockV3AggregatorAbi, functionName: "updateAnswer", args: [answer] }),
        // a limit of its own: the node's estimate came out short under load, the update reverted out of gas and the
        // rehearsal fell back to installing a mock over a feed that takes updateAnswer
        gas: "0x493e0",
      },
    ])) as Hex;
    return client.waitForTransactionReceipt({ hash });
  };
  const latest = async () =>
    (await client.readContract({ address: oracle, abi: mockV3AggregatorAbi, functionName: "latestRoundData" }))[1];
  try {
    const receipt = await send();
    if (receipt.status === "success" && (await latest()) === answer) return "updateAnswer";
  } catch {
    // not a MockV3Aggregator: a mock is installed at its address below
  }
  const decimals = await client.readContract({ address: oracle, abi: mockV3AggregatorAbi, functionName: "decimals" });
  await placeCode(
    client,
    oracle,
    encodeDeployData({ abi: mockV3AggregatorAbi, bytecode: mockV3AggregatorBytecode, args: [decimals, answer] }),
  );
  // MockV3Aggregator's storage: slot 0 decimals, 3 latestRound (counted from 0 again)
  await rpc(client, "anvil_setStorageAt", [oracle, numberToHex(0, { size: 32 }), pad(numberToHex(decimals))]);
  await rpc(client, "anvil_setStorageAt", [oracle, numberToHex(3, { size: 32 }), pad("0x0")]);
  const receipt = await send();
  if (receipt.status !== "success" || (await latest()) !== answer) {
    throw new Error(`could not set the answer of the feed at ${oracle}`);
  }
  return "mock installed at the feed's address";
}

/** Ctrl-C during a rehearsal: the fork and the keeper were stopped, nothing is left behind (exit 130). */
export class RehearsalInterrupted extends Error {
  override name = "RehearsalInterrupted";
}

/** The keeper's backfill on the fork did not finish within the deadline: there is no result to report. */
export class RehearsalIncomplete extends Error {
  override name = "RehearsalIncomplete";
}

/** What Anvil may inherit: enough to run and reach the fork (a proxy), never a signer key or another RPC URL. */
const ANVIL_ENV = [
  "PATH",
  "HOME",
  "TMPDIR",
  "LANG",
  "TZ",
  "SSL_CERT_FILE",
  "SSL_CERT_DIR",
  "HTTP_PROXY",
  "HTTPS_PROXY",
  "NO_PROXY",
  "http_proxy",
  "https_proxy",
  "no_proxy",
];

/** Anvil's environment: the few variables of ANVIL_ENV, nothing else (no KEEPER_*, no RPC_*). */
export function anvilEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(ANVIL_ENV.filter((k) => env[k] !== undefined).map((k) => [k, env[k]]));
}

/** A message with the fork URL, and any other URL, redacted (Anvil's own error text quotes the URL whole). */
export function redactForkUrl(text: string, forkUrl: string): string {
  return redactUrls(text.split(forkUrl).join(redactUrl(forkUrl)));
}

/** The default deadline of a rehearsal (--timeout): the backfill on the fork included. */
export const DEFAULT_REHEARSAL_TIMEOUT_SECONDS = 120;

export async function rehearse(o: RehearseOptions): Promise<RehearsalReport> {
  const signal = o.signal ?? new AbortController().signal;
  const progress = o.progress ?? (() => {});
  const timeoutSeconds = o.timeoutSeconds ?? DEFAULT_REHEARSAL_TIMEOUT_SECONDS;
  const interrupted = () => {
    if (signal.aborted) throw new RehearsalInterrupted("rehearsal interrupted: the fork and the keeper were stopped");
  };
  const args = [
    "--fork-url",
    o.forkUrl,
    ...(o.forkBlock === undefined ? [] : ["--fork-block-number", `${o.forkBlock}`]),
  ];
  try {
    anvilBinary();
  } catch {
    throw new ConfigError(
      "rehearse needs Anvil, a devDependency (@foundry-rs/anvil): run it from a checkout after npm ci, " +
        "not in the production image",
    );
  }
  progress(`forking ${redactUrl(o.forkUrl)} at ${o.forkBlock ?? "its latest block"}`);
  let anvil: Awaited<ReturnType<typeof startAnvil>>;
  try {
    anvil = await startAnvil({ extraArgs: args, startTimeoutMs: 60_000, env: anvilEnv(process.env), signal });
  } catch (error) {
    interrupted();
    throw new Error(redactForkUrl(`cannot fork: ${describeError(error)}`, o.forkUrl));
  }
  const stateDir = mkdtempSync(join(tmpdir(), "perp-keeper-rehearsal-"));
  let running: RehearsedKeeper | undefined;
  try {
    interrupted();
    const client = httpPublicClient(anvil.rpcUrl);
    const forkBlock = await client.getBlockNumber();
    const markets = await o.exchange.oracles(client, o.config.exchange.address as Address);
    const key = ANVIL_KEYS[1];
    const keeperAddress = privateKeyToAccount(key).address;
    const sender = privateKeyToAccount(ANVIL_KEYS[2]).address;
    for (const a of [keeperAddress, sender]) await rpc(client, "anvil_setBalance", [a, numberToHex(10n ** 21n)]);
    await rpc(client, "anvil_impersonateAccount", [sender]);
    const shocks = [];
    for (const s of o.shocks) {
      interrupted();
      const oracle = markets.get(s.market);
      if (!oracle) {
        throw new ConfigError(
          `--shock ${s.market}: no such market (the exchange has ${[...markets.keys()].join(", ")})`,
        );
      }
      const [, from] = await client.readContract({
        address: oracle,
        abi: mockV3AggregatorAbi,
        functionName: "latestRoundData",
      });
      const to = (from * BigInt(Math.round((100 + s.percent) * 10_000))) / 1_000_000n;
      const how = await shockOracle(client, oracle, to, sender);
      shocks.push({ market: s.market, percent: s.percent, from: from.toString(), to: to.toString(), how });
    }
    interrupted();

    const lines: Record<string, unknown>[] = [];
    const log = createLogger({
      level: "info",
      destination: { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
    });
    const config: KeeperConfig = {
      ...o.config,
      network: { ...o.config.network, rpcUrl: anvil.rpcUrl, rpcUrls: undefined, wsUrl: undefined },
      keeper: { ...o.config.keeper, stateDir, metricsEnabled: false, snapshotIntervalSeconds: 0, dryRun: false },
    };
    progress(`fork at block ${forkBlock}, shocks applied; the keeper backfills and runs on the fork`);
    const keeper = await o.exchange.start({ config, rpcUrl: anvil.rpcUrl, privateKeys: [key], log, keeperAddress });
    running = keeper;
    let failed: { error: unknown } | undefined;
    keeper.done.catch((error: unknown) => {
      failed = { error };
    });
    const backfilled = () => lines.some((l) => l.event === "backfill_completed");
    // time moves on the fork (a block a second) until the keeper has nothing left to do, or the deadline
    const deadline = Date.now() + timeoutSeconds * 1000;
    let quietSince = Date.now();
    let last = "";
    let settled = false;
    while (Date.now() < deadline) {
      await sleep(1000, signal);
      interrupted();
      if (failed) throw failed.error;
      await rpc(client, "evm_mine", []);
      const now = JSON.stringify(keeper.executor.stats, (_k, v) => (typeof v === "bigint" ? v.toString() : v));
      if (
        now !== last ||
        keeper.executor.pendingAttempts.length > 0 ||
        !backfilled() ||
        keeper.liquidatableAfterShock() === undefined
      ) {
        last = now;
        quietSince = Date.now();
      } else if (Date.now() - quietSince > 3000) {
        settled = true;
        break;
      }
    }
    const liquidatableAfterShock = keeper.liquidatableAfterShock();
    if (!backfilled() || liquidatableAfterShock === undefined) {
      throw new RehearsalIncomplete(
        `the keeper's backfill on the fork did not finish within --timeout ${timeoutSeconds} s: no result. ` +
          "Raise --timeout (a fork backfills from exchange.deployBlock, every range fetched from the live RPC)",
      );
    }
    await keeper.stop("rehearsal finished");
    const skipped: Record<string, number> = {};
    for (const l of lines.filter((x) => x.event === "liquidation_skipped")) {
      const reason = String(l.reason);
      skipped[reason] = (skipped[reason] ?? 0) + 1;
    }
    const s = keeper.executor.stats;
    return {
      forkBlock: forkBlock.toString(),
      shocks,
      positions: keeper.openPositions() + s.confirmed,
      liquidatableAfterShock,
      liquidated: s.confirmed,
      lostRace: s.lostRace,
      rewards: formatUnits(keeper.rewardsWad(), 18),
      gasPaidWei: s.gasPaidWei.toString(),
      transactions: s.sent,
      reverted: s.reverted,
      skipped,
      stillLiquidatable: keeper.stillLiquidatable(),
      settled,
      pendingAtEnd: keeper.executor.pendingAttempts.length,
    };
  } catch (error) {
    if (signal.aborted) throw new RehearsalInterrupted("rehearsal interrupted: the fork and the keeper were stopped");
    if (error instanceof ConfigError || error instanceof RehearsalIncomplete) throw error;
    throw new Error(redactForkUrl(describeError(error), o.forkUrl));
  } finally {
    await running?.stop("rehearsal over").catch(() => {});
    await anvil.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

/** The report as a table for a terminal. */
export function renderRehearsal(r: RehearsalReport): string {
  const rows: [string, string][] = [
    ["fork block", r.forkBlock],
    ...r.shocks.map((s): [string, string] => [`shock ${s.market}`, `${s.percent}%: ${s.from} -> ${s.to} (${s.how})`]),
    ["positions open before", String(r.positions)],
    ["liquidatable after the shock", String(r.liquidatableAfterShock)],
    ["liquidated by the keeper", String(r.liquidated)],
    ["lost to another keeper", String(r.lostRace)],
    ["keeper rewards", r.rewards],
    ["gas paid (wei)", r.gasPaidWei],
    ["transactions sent / reverted", `${r.transactions} / ${r.reverted}`],
    [
      "skipped",
      Object.entries(r.skipped)
        .map(([k, v]) => `${k}: ${v}`)
        .join(", ") || "none",
    ],
    ["still liquidatable at the end", String(r.stillLiquidatable)],
    [
      "finished",
      r.settled ? "yes: nothing left to do" : `no: the deadline came first (${r.pendingAtEnd} transactions pending)`,
    ],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join("\n");
}
