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
  createPublicClient,
  encodeDeployData,
  encodeFunctionData,
  type Hex,
  hexToString,
  http,
  numberToHex,
  type PublicClient,
  pad,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { mockV3AggregatorAbi, mockV3AggregatorBytecode } from "../../abi/MockV3Aggregator.ts";
import { perpEngineAbi } from "../../abi/PerpEngine.ts";
import { startKeeper } from "../app.ts";
import { ConfigError } from "../config/load.ts";
import type { KeeperConfig } from "../config/schema.ts";
import { ANVIL_KEYS, startAnvil } from "../devnet/anvil.ts";
import { placeCode } from "../devnet/exchange.ts";
import type { Tick } from "../watcher/watcher.ts";
import { createLogger } from "./logger.ts";
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
  readonly rewards: string;
  readonly gasPaidWei: string;
  readonly transactions: number;
  readonly reverted: number;
  readonly skipped: Record<string, number>;
  readonly stillLiquidatable: number;
}

export interface RehearseOptions {
  readonly config: KeeperConfig;
  readonly forkUrl: string;
  readonly forkBlock?: bigint;
  readonly shocks: readonly Shock[];
  /** Give up waiting for the keeper after this long. */
  readonly timeoutSeconds?: number;
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

export async function rehearse(o: RehearseOptions): Promise<RehearsalReport> {
  const args = [
    "--fork-url",
    o.forkUrl,
    ...(o.forkBlock === undefined ? [] : ["--fork-block-number", `${o.forkBlock}`]),
  ];
  const anvil = await startAnvil({ extraArgs: args, startTimeoutMs: 60_000 });
  const stateDir = mkdtempSync(join(tmpdir(), "perp-keeper-rehearsal-"));
  try {
    const client = createPublicClient({ transport: http(anvil.rpcUrl) }) as PublicClient;
    const forkBlock = await client.getBlockNumber();
    const engine = o.config.exchange.address as Address;
    const count = await client.readContract({ address: engine, abi: perpEngineAbi, functionName: "marketCount" });
    const markets = new Map<string, Address>();
    for (let id = 0n; id < count; id++) {
      const m = (await client.readContract({
        address: engine,
        abi: perpEngineAbi,
        functionName: "market",
        args: [id],
      })) as unknown as { name: Hex; oracle: Address };
      markets.set(hexToString(m.name, { size: 32 }).replace(/\0+$/, ""), m.oracle);
    }
    const key = ANVIL_KEYS[1];
    const keeperAddress = privateKeyToAccount(key).address;
    const sender = privateKeyToAccount(ANVIL_KEYS[2]).address;
    for (const a of [keeperAddress, sender]) await rpc(client, "anvil_setBalance", [a, numberToHex(10n ** 21n)]);
    await rpc(client, "anvil_impersonateAccount", [sender]);
    const shocks = [];
    for (const s of o.shocks) {
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
    const running = await startKeeper({ config, rpcUrl: anvil.rpcUrl, privateKeys: [key], log });
    let liquidatableAfterShock: number | undefined;
    const handleTick = running.keeper.handleTick.bind(running.keeper);
    running.keeper.handleTick = (tick: Tick) => {
      handleTick(tick);
      // after the keeper's own pass (which brings its index up to date): nothing of it is mined yet
      if (liquidatableAfterShock === undefined) {
        liquidatableAfterShock = [...tick.prices].reduce(
          (n, [market, price]) => n + running.risk.liquidatable(market, price, tick.timestamp).length,
          0,
        );
      }
    };
    // time moves on the fork (a block a second) until the keeper has nothing left to do
    const deadline = Date.now() + (o.timeoutSeconds ?? 120) * 1000;
    let quietSince = Date.now();
    let last = "";
    const never = new AbortController().signal; // the rehearsal's wait is bounded by its deadline, not a signal
    while (Date.now() < deadline) {
      await sleep(1000, never);
      await rpc(client, "evm_mine", []);
      const now = JSON.stringify(running.executor.stats, (_k, v) => (typeof v === "bigint" ? v.toString() : v));
      if (now !== last || running.executor.pendingAttempts.length > 0 || liquidatableAfterShock === undefined) {
        last = now;
        quietSince = Date.now();
      } else if (Date.now() - quietSince > 3000) break;
    }
    await running.stop("rehearsal finished");
    const tick = running.watcher.latestTick;
    let stillLiquidatable = 0;
    for (const p of running.book.positions.values()) {
      const price = tick?.prices.get(p.marketId);
      if (tick && price !== undefined && running.risk.isLiquidatable(p, price, tick.timestamp)) stillLiquidatable++;
    }
    const skipped: Record<string, number> = {};
    for (const l of lines.filter((x) => x.event === "liquidation_skipped")) {
      const reason = String(l.reason);
      skipped[reason] = (skipped[reason] ?? 0) + 1;
    }
    const rewards = lines
      .filter((x) => x.event === "liquidation_confirmed")
      .reduce((sum, l) => sum + Number(l.reward ?? 0), 0);
    const s = running.executor.stats;
    return {
      forkBlock: forkBlock.toString(),
      shocks,
      positions: running.book.positions.size + s.confirmed,
      liquidatableAfterShock: liquidatableAfterShock ?? 0,
      liquidated: s.confirmed,
      lostRace: s.lostRace,
      rewards: rewards.toString(),
      gasPaidWei: s.gasPaidWei.toString(),
      transactions: s.sent,
      reverted: s.reverted,
      skipped,
      stillLiquidatable,
    };
  } finally {
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
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join("\n");
}
