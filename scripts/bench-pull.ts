/**
 * Benchmark of the pull-oracle path (issue 17, "The edge a pull oracle gives"): on the cross-margin exchange priced
 * by Pyth, one Hermes price move makes hundreds of accounts liquidatable at once; the keeper sees the price before the
 * chain does and brings it with its liquidations.
 *
 *   npm run bench:pull                               readable report
 *   npm run bench:pull -- --json                     the same, and one JSON object as the last line of stdout
 *   npm run bench:pull -- --accounts 200             accounts the crash makes liquidatable (default 200)
 *   npm run bench:pull -- --healthy 40               accounts it leaves healthy (default accounts / 5)
 *   npm run bench:pull -- --window-seconds 5 --multiplier 0.02     the markets' liquidation windows (70 ETH, 2.45 BTC)
 *   npm run bench:pull -- --phase-ms 250             when in the slot the price moves (after a new head is seen)
 *   npm run bench:pull -- --baseline-delay-blocks 0  the on-chain update the baseline waits for: 0, with the Hermes move
 *   npm run bench:pull -- --modes keeper,baseline    a subset
 *   npm run bench:pull -- --details                  per transaction, per block and per window, and the late accounts
 *   npm run bench:pull -- --keeper-log /tmp/k.log    the keeper's JSON log lines, for a post-mortem
 *
 * Each mode runs on a fresh Anvil (1-second blocks, 30M gas) with the same deployment and population
 * (scripts/lib/benchPullScenario.ts: large accounts beyond a window's cap, accounts over both markets, healthy ones);
 * the runs themselves: scripts/lib/benchPull.ts. Figures:
 * - firstBroadcastMs / lastBroadcastMs: from the crash's message reaching the keeper (the stream's receivedAt,
 *   performance.now()) to its first liquidation_sent, and to its last that carries the price (the flags);
 * - flaggedInFirstBlock / blocksToFlagMax: accounts flagged (AccountFlaggedForLiquidation) in the first block after
 *   the update (the head when it reached the keeper, + 1), and the most blocks from the update to a flag;
 * - windowsUsed / windowsNeeded: summed over the markets; needed = ceil(size to close / the window's cap), used =
 *   distinct windows (whole window lengths from the market's first close) with closes;
 * - txReverted: the keeper's mined transactions that reverted;
 * - feePerLiquidationWei: the value of the keeper's transactions (the oracle's fees) / its liquidations (one
 *   AccountLiquidationAttempt: an account flagged, or a continuation step, in one call);
 * - rpcPerLiquidation: the keeper's JSON-RPC calls (its rpcStats, read on its /metrics) from the move until two blocks
 *   after the last close / its liquidations;
 * - baseline: the same population on a fresh chain; a bot that reads on-chain prices only, after someone else's
 *   update lands (see benchPull.ts); its flags counted from the same update block.
 * Progress goes to stderr. Every Anvil, Hermes and keeper is stopped on the way out, also on failure.
 */
import os from "node:os";
import { type BaselineRun, type KeeperRun, type PullBenchOptions, runBaseline, runKeeper } from "./lib/benchPull.ts";
import { benchArgs, round } from "./lib/tools.ts";

const { json, intArg, stringArg, has } = benchArgs();
const accounts = intArg("--accounts", 200);
const modes = (stringArg("--modes") ?? "keeper,baseline").split(",").map((m) => m.trim());
for (const m of modes) if (!["keeper", "baseline"].includes(m)) throw new Error(`unknown mode ${m} (keeper, baseline)`);
const details = has("--details");
const progress = (line: string) =>
  process.stderr.write(`[bench:pull ${new Date().toISOString().slice(11, 23)}] ${line}\n`);
const delayArg = stringArg("--baseline-delay-blocks");
const options: PullBenchOptions = {
  accounts,
  healthy: has("--healthy") ? Number(stringArg("--healthy")) : Math.ceil(accounts / 5),
  windowSeconds: intArg("--window-seconds", 5),
  multiplier: stringArg("--multiplier") ?? "0.02",
  phaseMs: intArg("--phase-ms", 250),
  baselineDelayBlocks: delayArg === undefined ? 0 : Number(delayArg),
  keeperLog: stringArg("--keeper-log"),
  progress,
};
if (!Number.isInteger(options.healthy) || options.healthy < 0) throw new Error("--healthy takes an integer >= 0");
if (!Number.isInteger(options.baselineDelayBlocks) || options.baselineDelayBlocks < 0) {
  throw new Error("--baseline-delay-blocks takes an integer >= 0");
}

const fmt = (x: bigint, decimals = 18) => {
  const s = (Number(x) / 10 ** decimals).toFixed(4);
  return s.replace(/\.?0+$/, "");
};

function show(k: KeeperRun | undefined, b: BaselineRun | undefined): void {
  const cpu = os.cpus()[0]?.model ?? "unknown CPU";
  console.log(
    `bench:pull on ${cpu}, ${os.cpus().length} cores, Node ${process.version}; Anvil 1-s blocks, 30M gas; ` +
      `windows of ${options.windowSeconds} s (multiplier ${options.multiplier}); move ${options.phaseMs} ms after a head`,
  );
  if (k) {
    console.log(
      `keeper    ${k.liquidatable}/${k.accounts} liquidatable after one Hermes message (update block ${k.updateBlock}); ` +
        `first broadcast ${round(k.firstBroadcastMs, 3)} ms after it reached the keeper, last flag broadcast ` +
        `${round(k.lastBroadcastMs, 3)} ms (${k.priceSends} transactions carrying the price; the next block was seen ` +
        `${round(k.nextBlockMs, 4)} ms after it; load average ${round(k.load, 3)})`,
    );
    console.log(
      `          flagged in the first block after the update: ${k.flaggedInFirstBlock}/${k.liquidatable}; blocks to ` +
        `flag max ${k.blocksToFlagMax}; to close each position p50 ${k.blocksToCloseP50}, max ${k.blocksToCloseMax}; ` +
        `not flagged ${k.unflagged}, still open ${k.stillOpen}, safe accounts flagged ${k.wronglyFlagged}`,
    );
    for (const w of k.windows) {
      console.log(
        `          ${w.name}: ${fmt(w.total)} to close, cap ${fmt(w.cap)} per ${w.seconds} s window: ` +
          `${w.needed} window(s) needed, ${w.used.length} used (${w.used.map((u) => `#${u.index} ${fmt(u.amount)}`).join(", ")})`,
      );
    }
    const perTx = k.txs.length > 0 ? k.feePaidWei / BigInt(k.txs.length) : 0n;
    console.log(
      `          ${k.txs.length} transactions, ${k.txReverted} reverted; ${k.liquidations} liquidations ` +
        `(flags and continuation steps); fees ${k.feePaidWei} wei: ${feePer(k)} a liquidation, ${perTx} a transaction; ` +
        `${k.rpcCalls} RPC calls: ${rpcPer(k)} a liquidation`,
    );
  }
  if (b) {
    console.log(
      `baseline  ${b.liquidatable} liquidatable; the crash landed on chain in block ${b.priceBlock} (update block ` +
        `${b.updateBlock}); flagged in the first block after the update: ${b.flaggedInFirstBlock}; blocks to flag ` +
        `p50 ${b.blocksToFlagP50}, max ${b.blocksToFlagMax}; not flagged ${b.unflagged}; ${b.txs} transactions, ` +
        `${b.txReverted} reverted; load average ${round(b.load, 3)}`,
    );
  }
}

const feePer = (k: KeeperRun) => (k.liquidations > 0 ? k.feePaidWei / BigInt(k.liquidations) : 0n);
const rpcPer = (k: KeeperRun) => (k.liquidations > 0 ? round(k.rpcCalls / k.liquidations, 3) : k.rpcCalls);

/** --details: the keeper's transactions, its blocks' gas, its windows, and the accounts it did not flag at once. */
function showDetails(k: KeeperRun): void {
  console.log(`details: blocks after the update (${k.updateBlock})`);
  for (const g of k.blockGas) {
    console.log(
      `  block ${g.block} (+${g.block - k.updateBlock}): gas used ${g.gasUsed} of ${g.gasLimit}, ${g.ours} of our transactions`,
    );
  }
  console.log("details: the keeper's transactions (block +n #index nonce: call, accounts, value, gas used/limit)");
  for (const t of k.txs) {
    const sent = k.sentMs.get(t.hash.toLowerCase());
    console.log(
      `  +${t.block - k.updateBlock} #${t.index} n${t.nonce}: ${t.fn} ${t.accounts.length} account(s), ` +
        `${t.attempts} liquidated (${t.emptyAttempts} closing nothing), ${t.skipped} skipped, value ${t.value}, ` +
        `gas ${t.gasUsed}/${t.gasLimit}${t.reverted ? " REVERTED" : ""}` +
        (sent === undefined ? "" : `, sent ${round(sent, 4)} ms after the update`),
    );
  }
  for (const w of k.windows) {
    console.log(`details: ${w.name} windows (cap ${fmt(w.cap)} per ${w.seconds} s)`);
    for (const u of w.used) {
      console.log(
        `  #${u.index}: ${fmt(u.amount)} in blocks ${u.blocks.map((b) => `+${b - k.updateBlock}`).join(", ")}`,
      );
    }
  }
  const late = k.expected.filter((id) => k.flags.get(id)?.block !== k.updateBlock + 1n);
  if (late.length > 0) {
    console.log(`details: ${late.length} account(s) not flagged in the first block`);
    for (const id of late.slice(0, 20)) {
      const i = k.ids.indexOf(id);
      const spec = k.specs[i];
      const f = k.flags.get(id);
      console.log(
        `  ${id - (k.ids[0] ?? 0n)} (${spec?.kind}, ${spec?.positions?.map((p) => `${p.market} ${p.size}`).join(" + ")} on ${spec?.collateral}): ` +
          (f ? `flagged at +${f.block - k.updateBlock} by ${f.txHash}` : "never flagged"),
      );
    }
  }
  console.log(
    "details: the keeper's JSON-RPC requests around the update (ms from it reaching the keeper: sent-answered)",
  );
  for (const r of k.rpc) {
    const counts = new Map<string, number>();
    for (const m of r.methods) counts.set(m, (counts.get(m) ?? 0) + 1);
    const what = [...counts].map(([m, n]) => (n > 1 ? `${m} x${n}` : m)).join(", ");
    console.log(`  ${round(r.start, 4)}-${round(r.end, 4)} (${round(r.end - r.start, 3)} ms): ${what}`);
  }
  console.log("details: keeper log events after the update (count; first and last, ms from the update reaching it)");
  for (const [e, n] of Object.entries(k.events).sort((a, b) => b[1] - a[1])) {
    const t = k.eventTimes.get(e);
    console.log(`  ${e} ${n}${t ? `: ${round(t.first, 4)} .. ${round(t.last, 4)}` : ""}`);
  }
}

/** --details: the baseline bot's heads (ms from the move) and the blocks after the update. */
function showBaselineDetails(b: BaselineRun): void {
  console.log(`details: baseline heads with sends (ms from the move: head seen, canLiquidate read, signed, sent)`);
  for (const h of b.heads) {
    console.log(
      `  block ${h.block} (+${h.block - b.updateBlock}): seen ${round(h.seen, 4)}, read ${round(h.read, 4)}, ` +
        `signed ${round(h.signed, 4)}, sent ${round(h.sent, 4)}: ${h.txs} transactions`,
    );
  }
  console.log("details: baseline blocks after the update");
  for (const x of b.blocks) {
    if (x.txs === 0 && x.flags === 0) continue;
    console.log(
      `  block ${x.block} (+${x.block - b.updateBlock}): gas used ${x.gasUsed}, ${x.txs} bot transactions, ${x.flags} flags`,
    );
  }
}

async function main(): Promise<void> {
  const keeper = modes.includes("keeper") ? await runKeeper(options) : undefined;
  const baseline = modes.includes("baseline") ? await runBaseline(options) : undefined;
  show(keeper, baseline);
  if (details && keeper) showDetails(keeper);
  if (details && baseline) showBaselineDetails(baseline);
  if (json) {
    const finite = (x: number) => (Number.isFinite(x) ? x : null);
    console.log(
      JSON.stringify({
        bench: "pull",
        accounts: keeper?.liquidatable ?? baseline?.liquidatable,
        firstBroadcastMs: keeper ? finite(round(keeper.firstBroadcastMs, 3)) : null,
        lastBroadcastMs: keeper ? finite(round(keeper.lastBroadcastMs, 3)) : null,
        flaggedInFirstBlock: keeper?.flaggedInFirstBlock ?? null,
        blocksToFlagMax: keeper ? finite(keeper.blocksToFlagMax) : null,
        windowsUsed: keeper ? keeper.windows.reduce((n, w) => n + w.used.length, 0) : null,
        windowsNeeded: keeper ? keeper.windows.reduce((n, w) => n + w.needed, 0) : null,
        txReverted: keeper?.txReverted ?? null,
        feePerLiquidationWei: keeper ? feePer(keeper).toString() : null,
        rpcPerLiquidation: keeper ? rpcPer(keeper) : null,
        baseline: baseline
          ? { flaggedInFirstBlock: baseline.flaggedInFirstBlock, blocksToFlagMax: finite(baseline.blocksToFlagMax) }
          : null,
      }),
    );
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    progress(`failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    process.exit(1);
  },
);
