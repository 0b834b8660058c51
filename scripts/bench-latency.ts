/**
 * Benchmark of same-block liquidations (issue 9): one oracle update makes N positions liquidatable (default 200,
 * within one block's gas); how many of their liquidations land in the update's own block, the next, or later?
 *
 *   npm run bench:latency                          readable report
 *   npm run bench:latency -- --json                the same, and one JSON object as the last line of stdout
 *   npm run bench:latency -- --positions 50        N
 *   npm run bench:latency -- --offset-ms 1500      when in the block interval the update is sent (default 500)
 *   npm run bench:latency -- --keeper-log F        the keepers' JSON log lines, for a post-mortem
 *
 * Three modes, each on a fresh Anvil (`--order fees`: the pool sorted by fees, Anvil's default) and deployment with
 * the same scenario, in one run:
 * - default: the keeper with keeper.precompute off: it reacts to the mined block;
 * - onBlock: keeper.precompute.mode "on-block";
 * - backrun: keeper.precompute.mode "backrun".
 * Scenario: N traders' 20x ETH longs, opened with automine; then Anvil mines a block every 2 s
 * (evm_setIntervalMining 2) and the keeper (startKeeper, in process, over WebSocket) follows. `--offset-ms` after
 * the keeper's tick of a block, the exchange owner sends the ETH oracle update to 2375 (5% down: every position below
 * maintenance), 20 gwei fee cap and 2 gwei tip. Per mode:
 * - sameBlock / nextBlock / later: our liquidations by the block they landed in, against the update's block;
 * - reverted: our mined transactions that reverted;
 * - firstBroadcastMs: from the keeper seeing the pending update (its oracle_update_pending line) to its first
 *   liquidation_sent line (the broadcast answered); for default, which sees no pending update, from the update's
 *   send; `fromUpdateSentMs` is the same from the update's send for every mode;
 * - lastBroadcastMs: the same to the last liquidation_sent line (every liquidation of the burst on its way);
 * - seenAfterSendMs: from the update's send to the keeper's oracle_update_pending line;
 * - fromUpdateBlockTickMs: from the keeper's tick of the update's block to the first liquidation_sent (negative
 *   for backrun: sent before the block existed).
 * Progress goes to stderr; every Anvil and keeper is stopped on the way out, also on failure.
 */
import { createWriteStream, mkdtempSync, rmSync, type WriteStream } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { type Address, decodeEventLog, encodeFunctionData, type Hex, parseGwei, parseUnits } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { mockV3AggregatorAbi } from "../abi/MockV3Aggregator.ts";
import { perpEngineAbi } from "../abi/PerpEngine.ts";
import { type RunningKeeper, startKeeper } from "../src/app.ts";
import { ANVIL_KEYS, startAnvil } from "../src/devnet/anvil.ts";
import { devnetConfig } from "../src/devnet/config.ts";
import { DevExchange, ORACLE_DECIMALS } from "../src/devnet/exchange.ts";
import { ETH, openPositions, type PositionSpec } from "../src/devnet/positions.ts";
import { createLogger } from "../src/ops/logger.ts";
import type { Tick } from "../src/watcher/watcher.ts";
import { rpc } from "./lib/rpc.ts";
import { benchArgs, now, round, sleep, untilEvery } from "./lib/tools.ts";

const args = benchArgs();
const JSON_OUT = args.json;
const N = args.intArg("--positions", 200);
const OFFSET_MS = args.intArg("--offset-ms", 500);
const KEEPER_LOG = args.stringArg("--keeper-log");
const BLOCK_SECONDS = 2;
const KEEPER_KEY = ANVIL_KEYS[1];
const KEEPER_ADDRESS = privateKeyToAccount(KEEPER_KEY).address;
const until = untilEvery(50);
const progress = (msg: string) => process.stderr.write(`${msg}\n`);
let keeperLogFile: WriteStream | undefined;

type Mode = "default" | "onBlock" | "backrun";
const PRECOMPUTE: Record<Mode, string> = { default: "off", onBlock: "on-block", backrun: "backrun" };

interface ModeResult {
  sameBlock: number;
  nextBlock: number;
  later: number;
  notLiquidated: number;
  reverted: number;
  firstBroadcastMs: number | null;
  fromUpdateSentMs: number | null;
  /** From the pending update seen (default: its send) to the last liquidation_sent line. */
  lastBroadcastMs: number | null;
  seenAfterSendMs: number | null;
  /** From the keeper's tick of the update's block to its first liquidation_sent (negative: sent before the block). */
  fromUpdateBlockTickMs: number | null;
  updateBlock: string;
  ourTransactions: number;
  prepared: number;
  simulation: string | undefined;
}

/** Log lines with the time (performance.now()) each reached the tap. */
function tap(mode: Mode) {
  const lines: { at: number; line: Record<string, unknown> }[] = [];
  if (KEEPER_LOG && !keeperLogFile) keeperLogFile = createWriteStream(KEEPER_LOG, { flags: "w" });
  const log = createLogger({
    level: "info",
    destination: {
      write(line: string) {
        const at = now();
        keeperLogFile?.write(`${line.trimEnd().replace(/^\{/, `{"benchMode":"${mode}",`)}\n`);
        lines.push({ at, line: JSON.parse(line) as Record<string, unknown> });
      },
    },
  });
  return { log, lines, first: (event: string) => lines.find((l) => l.line.event === event) };
}

function specs(n: number): PositionSpec[] {
  return Array.from({ length: n }, (_, i) => ({
    trader: 2 + i,
    marketId: ETH,
    side: "long" as const,
    margin: "200",
    leverage: 20,
  }));
}

async function runMode(mode: Mode): Promise<ModeResult> {
  progress(`mode ${mode}: ${N} positions, 2-second blocks, the pool ordered by fees`);
  const anvil = await startAnvil({ accounts: N + 4, startTimeoutMs: 60_000, extraArgs: ["--order", "fees"] });
  const stateDir = mkdtempSync(join(os.tmpdir(), "perp-keeper-bench-latency-"));
  let keeper: RunningKeeper | undefined;
  try {
    const ex = await DevExchange.deploy(anvil.rpcUrl);
    const started = now();
    await openPositions(ex, specs(N));
    progress(`  ${N} positions opened in ${((now() - started) / 1000).toFixed(1)} s`);
    const t = tap(mode);
    const config = devnetConfig(ex.d, anvil.rpcUrl, {
      stateDir,
      metricsPort: 0,
      heartbeatSeconds: 0,
      precompute: { mode: PRECOMPUTE[mode] },
    });
    keeper = await startKeeper({
      // heads and pending transactions over WebSocket, as a keeper on a live chain would follow them
      config: { ...config, network: { ...config.network, wsUrl: anvil.rpcUrl.replace("http://", "ws://") } },
      rpcUrl: anvil.rpcUrl,
      privateKeys: [KEEPER_KEY],
      log: t.log,
    });
    let failure: unknown;
    keeper.done.catch((error: unknown) => {
      failure = error;
    });
    const k = keeper;
    let lastTickAt = 0;
    let lastTick: Tick | undefined;
    const tickAt = new Map<bigint, number>();
    const handleTick = k.keeper.handleTick.bind(k.keeper);
    k.keeper.handleTick = (tick: Tick) => {
      lastTickAt = now();
      lastTick = tick;
      tickAt.set(tick.blockNumber, lastTickAt);
      handleTick(tick);
    };
    await until(
      "the keeper to index every position",
      () => failure !== undefined || k.book.positions.size === N,
      120_000,
    );
    if (failure) throw new Error(`the keeper failed: ${String(failure)}`);
    await rpc(anvil.rpcUrl, "evm_setAutomine", [false]);
    await rpc(anvil.rpcUrl, "evm_setIntervalMining", [BLOCK_SECONDS]);
    // two ticks of interval blocks: the keeper knows the block interval
    const firstTick = lastTick?.blockNumber ?? 0n;
    await until("interval blocks", () => (lastTick?.blockNumber ?? 0n) >= firstTick + 2n, 20_000);
    await sleep(300); // the pending subscription is up
    const tickBefore = lastTick?.blockNumber ?? 0n;
    await until("a fresh block", () => (lastTick?.blockNumber ?? 0n) > tickBefore, 10_000);
    const wait = OFFSET_MS - (now() - lastTickAt);
    if (wait > 0) await sleep(wait);
    // the update, signed beforehand: its send is one request
    const owner = ex.owner.account;
    const raw = await ex.owner.signTransaction({
      account: owner,
      chain: ex.owner.chain,
      type: "eip1559",
      to: ex.d.markets[ETH]?.aggregator as Address,
      data: encodeFunctionData({
        abi: mockV3AggregatorAbi,
        functionName: "updateAnswer",
        args: [parseUnits("2375", ORACLE_DECIMALS)],
      }),
      gas: 200_000n,
      nonce: await ex.publicClient.getTransactionCount({ address: owner.address, blockTag: "pending" }),
      maxFeePerGas: parseGwei("20"),
      maxPriorityFeePerGas: parseGwei("2"),
    });
    const sentAt = now();
    const updateHash = await rpc<Hex>(anvil.rpcUrl, "eth_sendRawTransaction", [raw]);
    progress(`  update ${updateHash} sent ${Math.round(sentAt - lastTickAt)} ms after block ${lastTick?.blockNumber}`);
    const receipt = await ex.publicClient.waitForTransactionReceipt({ hash: updateHash, timeout: 30_000 });
    const updateBlock = receipt.blockNumber;
    // every position liquidated, or 10 blocks after the update
    await until(
      "the liquidations",
      async () =>
        k.book.positions.size === 0 || (await ex.publicClient.getBlockNumber({ cacheTime: 0 })) >= updateBlock + 10n,
      60_000,
      200,
    );
    await sleep(BLOCK_SECONDS * 1000 + 500); // the last block's receipts
    const head = await ex.publicClient.getBlockNumber({ cacheTime: 0 });
    const byDistance = { sameBlock: 0, nextBlock: 0, later: 0 };
    let reverted = 0;
    let ours = 0;
    for (let b = updateBlock - 1n; b <= head; b++) {
      const block = await ex.publicClient.getBlock({ blockNumber: b, includeTransactions: true });
      for (const tx of block.transactions) {
        if (tx.from.toLowerCase() !== KEEPER_ADDRESS.toLowerCase()) continue;
        ours++;
        const r = await ex.publicClient.getTransactionReceipt({ hash: tx.hash });
        if (r.status !== "success") reverted++;
        for (const l of r.logs) {
          try {
            const e = decodeEventLog({ abi: perpEngineAbi, data: l.data, topics: l.topics });
            if (e.eventName !== "PositionLiquidated") continue;
            const d = b - updateBlock;
            if (d <= 0n) byDistance.sameBlock++;
            else if (d === 1n) byDistance.nextBlock++;
            else byDistance.later++;
          } catch {}
        }
      }
    }
    const pending = t.first("oracle_update_pending");
    const sent = t.first("liquidation_sent");
    const sends = t.lines.filter((l) => l.line.event === "liquidation_sent");
    const lastSent = sends[sends.length - 1];
    const seenAt = pending?.at;
    const fromSeen =
      sent && typeof sent.line.msSinceUpdateSeen === "number" ? (sent.line.msSinceUpdateSeen as number) : undefined;
    const result: ModeResult = {
      ...byDistance,
      notLiquidated: N - byDistance.sameBlock - byDistance.nextBlock - byDistance.later,
      reverted,
      firstBroadcastMs: round(fromSeen ?? (sent ? sent.at - sentAt : Number.NaN), 4),
      fromUpdateSentMs: sent ? round(sent.at - sentAt, 4) : null,
      lastBroadcastMs: lastSent ? round(lastSent.at - (seenAt ?? sentAt), 4) : null,
      seenAfterSendMs: seenAt === undefined ? null : round(seenAt - sentAt, 4),
      fromUpdateBlockTickMs: (() => {
        const at = tickAt.get(updateBlock);
        return sent && at !== undefined ? round(sent.at - at, 4) : null;
      })(),
      updateBlock: updateBlock.toString(),
      ourTransactions: ours,
      prepared: k.executor.updateStats.prepared,
      simulation: k.precomputer?.simulation,
    };
    if (result.firstBroadcastMs !== null && !Number.isFinite(result.firstBroadcastMs)) result.firstBroadcastMs = null;
    progress(
      `  same block ${result.sameBlock}, next ${result.nextBlock}, later ${result.later}, not liquidated ` +
        `${result.notLiquidated}, reverted ${reverted}, first broadcast ${result.firstBroadcastMs} ms`,
    );
    return result;
  } finally {
    await keeper?.stop("bench finished").catch(() => {});
    await anvil.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const modes: Record<Mode, ModeResult> = {
    default: await runMode("default"),
    onBlock: await runMode("onBlock"),
    backrun: await runMode("backrun"),
  };
  const targets = {
    backrunSameBlock: modes.backrun.sameBlock >= Math.ceil(0.95 * N) && modes.backrun.reverted === 0,
    onBlockNextBlock: modes.onBlock.nextBlock === N,
    firstBroadcastWithin20Ms: modes.backrun.firstBroadcastMs !== null && modes.backrun.firstBroadcastMs <= 20,
  };
  const summary = {
    bench: "latency",
    liquidatable: N,
    modes,
    targetsMissed: Object.entries(targets)
      .filter(([, ok]) => !ok)
      .map(([name]) => name),
    blockSeconds: BLOCK_SECONDS,
    updateOffsetMs: OFFSET_MS,
    machine: { cpu: os.cpus()[0]?.model.trim(), cores: os.cpus().length, node: process.version },
  };
  const rows = (["default", "onBlock", "backrun"] as const).map(
    (m) =>
      `${m.padEnd(8)} same block ${String(modes[m].sameBlock).padStart(4)}  next ${String(modes[m].nextBlock).padStart(4)}  later ${String(
        modes[m].later,
      ).padStart(4)}  reverted ${modes[m].reverted}  first broadcast ${modes[m].firstBroadcastMs} ms`,
  );
  console.log(`\nSame-block liquidations: ${N} positions made liquidatable by one update\n${rows.join("\n")}`);
  console.log(`targets missed: ${summary.targetsMissed.length ? summary.targetsMissed.join(", ") : "none"}`);
  keeperLogFile?.end();
  if (JSON_OUT) console.log(JSON.stringify(summary));
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
