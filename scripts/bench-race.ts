/**
 * Benchmark of the keeper racing competitors for the same liquidations (issue 18, "Winning the race").
 *
 *   npm run bench:race                                     readable report
 *   npm run bench:race -- --json                           the same, and one JSON object as the last line of stdout
 *   npm run bench:race -- --traders 40                     traders (default 40)
 *   npm run bench:race -- --positions 120                  positions over them (default three a trader, at most that)
 *   npm run bench:race -- --races vsDefault,vsNaive,selfRace   a subset of the races (default all three)
 *   npm run bench:race -- --keeper-log /tmp/race.log       the keepers' JSON log lines (with race and racer)
 *   npm run bench:race -- --gas-token-price 3000 --settle-blocks 20
 *   npm run bench:race -- --details                        each keeper's mined transactions (nonce, gas, tip, outcome)
 *
 * Each race runs on a fresh Anvil (2-second blocks, `--order fees`) with the same deployment, population and crashes
 * (scripts/lib/benchRaceScenario.ts): a calm oracle update, then a crash (every market -7%), both sent to the pool as
 * pending transactions and mined in the next block; the crash settled; then a second calm update and crash. Racers,
 * each with its own funded key and its own RPC endpoint (a proxy recording its raw transactions):
 * - vsDefault: the keeper (keeper.bidding defaults: bidding and the pool watch on; gasTokenPrice set) against a copy
 *   of it with today's policy, keeper.bidding { enabled: false };
 * - vsNaive: the keeper against a naive per-block bot (scripts/lib/benchRaceNaive.ts);
 * - selfRace: two keepers, both bidding.
 * Figures per race and racer (scripts/lib/benchRaceMeasure.ts): positions won, lost to the other, missed by both;
 * contested = liquidatable positions both racers sent a liquidation for (any raw transaction at their proxies: mined,
 * replaced or dropped); gas on lost races = gasUsed of its mined transactions that liquidated nothing (reverted, a
 * batch that skipped every position, cancels); net profit = keeper rewards of the PositionLiquidated events naming it
 * (WAD collateral) - gasUsed x effectiveGasPrice of all its mined transactions converted at the gas token price, as
 * src/executor/fees.ts expectedProfit converts (wei x price / 1e18): WAD collateral, 1e18 = one collateral token (the
 * JSON's "netProfitWei"); loss-making = liquidations mined in a transaction whose rewards were below its gas cost;
 * first broadcast = the keeper's tick that first saw the crash block (handleTick, wrapped) to the first
 * eth_sendRawTransaction after it at its proxy (the JSON: the median over every race and crash, the keeper under test).
 * winShare = contested positions the keeper won / contested; wastedGasShare = its gas on lost races / all its gas.
 * Progress goes to stderr. Every Anvil, proxy, bot and keeper is stopped on the way out, also on failure.
 */
import { createWriteStream, type WriteStream } from "node:fs";
import os from "node:os";
import { formatUnits } from "viem";
import { RACE_NAMES, type RaceName, type RaceResult, type RacerResult, runRace } from "./lib/benchRaceRun.ts";
import { MARKETS } from "./lib/benchRaceScenario.ts";
import { benchArgs, round } from "./lib/tools.ts";

const { json, intArg, stringArg, has } = benchArgs();
const details = has("--details");
const traders = intArg("--traders", 40);
const positions = intArg("--positions", traders * MARKETS.length);
if (positions > traders * MARKETS.length) {
  throw new Error(`--positions ${positions}: at most ${MARKETS.length} a trader (${traders * MARKETS.length})`);
}
const races = (stringArg("--races") ?? RACE_NAMES.join(",")).split(",").map((r) => r.trim()) as RaceName[];
for (const r of races) if (!RACE_NAMES.includes(r)) throw new Error(`unknown race ${r} (${RACE_NAMES.join(", ")})`);
const gasTokenPrice = stringArg("--gas-token-price") ?? "3000";
if (!/^\d+(\.\d+)?$/.test(gasTokenPrice)) throw new Error("--gas-token-price takes a decimal number");
const keeperLogPath = stringArg("--keeper-log");
const progress = (line: string) =>
  process.stderr.write(`[bench:race ${new Date().toISOString().slice(11, 23)}] ${line}\n`);

const TARGETS = { vsDefaultWin: 0.9, vsNaiveWin: 0.99, wastedGas: 0.05 };
const share = (a: number | bigint, b: number | bigint): number | null =>
  Number(b) > 0 ? round(Number(a) / Number(b)) : null;
const pct = (x: number | null) => (x === null ? "n/a" : `${(x * 100).toFixed(1)}%`);
const collateral = (wad: bigint) => Number(formatUnits(wad, 18)).toFixed(2);
const eth = (wei: bigint) => Number(formatUnits(wei, 18)).toFixed(6);
const gwei = (wei: bigint, gas: bigint) => (gas > 0n ? (Number(wei / gas) / 1e9).toFixed(2) : "-");
const ms = (x: number | undefined) => (x === undefined ? "-" : x.toFixed(1));

function winShare(r: RaceResult): number | null {
  return share(r.racers[0].figures.contestedWon, r.contested);
}
function wastedGasShare(x: RacerResult): number | null {
  return share(x.figures.lostGasUsed, x.figures.gasUsed);
}

function table(r: RaceResult): string[] {
  const rows: [string, (x: RacerResult, i: number) => string][] = [
    ["positions won", (x) => String(x.figures.won)],
    ["won per crash", (_x, i) => r.crashes.map((c) => `${c.won[i]}/${c.liquidatable.length}`).join(", ")],
    ["lost to the other", (x) => String(x.figures.lost)],
    [
      "contested won",
      (x) => `${x.figures.contestedWon} of ${r.contested} (${pct(share(x.figures.contestedWon, r.contested))})`,
    ],
    ["transactions sent (raw)", (x) => String(x.rawSends)],
    ["mined / reverted / cancels", (x) => `${x.figures.txMined} / ${x.figures.txReverted} / ${x.figures.cancels}`],
    ["skipped inside batches", (x) => String(x.figures.skippedInBatch)],
    ["gas used", (x) => x.figures.gasUsed.toLocaleString("en-US")],
    ["gas on lost races", (x) => `${x.figures.lostGasUsed.toLocaleString("en-US")} (${pct(wastedGasShare(x))})`],
    ["gas paid, ETH (lost races)", (x) => `${eth(x.figures.costWei)} (${eth(x.figures.lostCostWei)})`],
    ["mean gas price, gwei", (x) => gwei(x.figures.costWei, x.figures.gasUsed)],
    ["rewards, collateral", (x) => collateral(x.figures.rewardWad)],
    ["net profit, collateral", (x) => collateral(x.figures.netProfitWad)],
    ["loss-making liquidations", (x) => String(x.figures.lossMaking)],
    ["first broadcast, ms (per crash)", (_x, i) => r.crashes.map((c) => ms(c.firstBroadcastMs[i])).join(", ")],
  ];
  const header = ["", ...r.racers.map((x) => x.name)];
  const body = rows.map(([label, f]) => [label, ...r.racers.map((x, i) => f(x, i))]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => (row[i] as string).length)));
  const line = (cells: readonly string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join("  ");
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...body.map(line)];
}

const INTERESTING = /competitor|outbid|withdrawn|lost_race|cancel|replaced|reverted|skipped|unprofitable|bid/;

function report(results: readonly RaceResult[]): string {
  const cpu = os.cpus()[0]?.model ?? "unknown CPU";
  const out = [
    `bench:race on ${cpu}, ${os.cpus().length} cores, Node ${process.version}; Anvil 2-s blocks, --order fees; ` +
      `${traders} traders, ${positions} positions; gas token at ${gasTokenPrice} collateral`,
  ];
  for (const r of results) {
    const crashes = r.crashes
      .map((c, i) => `crash ${i + 1} block ${c.block}: ${c.liquidatable.length}, settled in ${c.blocksToSettle} blocks`)
      .join("; ");
    out.push(
      "",
      `${r.name}: ${r.racers[0].name} against ${r.racers[1].name}; ${r.positions} positions liquidatable (${crashes}); ` +
        `contested ${r.contested}; missed by both ${r.missed}`,
      ...table(r),
    );
    for (const x of r.racers) {
      const events = Object.entries(x.events)
        .filter(([e]) => INTERESTING.test(e))
        .map(([e, n]) => `${e} ${n}`)
        .join(", ");
      if (events) out.push(`  ${x.name} log: ${events}`);
      if (x.stats) {
        const stats = Object.entries(x.stats)
          .map(([k, v]) => `${k} ${v}`)
          .join(", ");
        out.push(`  ${x.name} own counters: ${stats}`);
      }
      for (const p of x.problems) out.push(`  ${x.name} ${p}`);
    }
    for (const n of r.notes) out.push(`  note: ${n}`);
    if (details) out.push(...txLines(r));
  }
  const by = (name: RaceName) => results.find((r) => r.name === name);
  const verdict = (ok: boolean | undefined) => (ok === undefined ? "not run" : ok ? "met" : "NOT MET");
  const d = by("vsDefault");
  const n = by("vsNaive");
  const s = by("selfRace");
  const dw = d ? winShare(d) : null;
  const nw = n ? winShare(n) : null;
  const wasted = [d, n].filter((r): r is RaceResult => r !== undefined).map((r) => wastedGasShare(r.racers[0]));
  out.push(
    "",
    "targets:",
    `  vsDefault: >= 90% of contested won: ${pct(dw)}, ${verdict(d && dw !== null && dw >= TARGETS.vsDefaultWin)}`,
    `  vsNaive: >= 99% of contested won: ${pct(nw)}, ${verdict(n && nw !== null && nw >= TARGETS.vsNaiveWin)}`,
    `  wasted gas <= 5% (vsDefault, vsNaive): ${wasted.map(pct).join(", ") || "n/a"}, ` +
      `${verdict(wasted.length === 0 ? undefined : wasted.every((w) => w !== null && w <= TARGETS.wastedGas))}`,
    `  selfRace: no loss-making liquidation: ${s ? lossMaking(s) : "n/a"}, ${verdict(s && lossMaking(s) === 0)}`,
    `  vsDefault: net profit above the competitor's: ${d ? `${collateral(d.racers[0].figures.netProfitWad)} vs ${collateral(d.racers[1].figures.netProfitWad)}` : "n/a"}, ` +
      verdict(d && d.racers[0].figures.netProfitWad > d.racers[1].figures.netProfitWad),
  );
  return out.join("\n");
}

/** --details: each keeper's mined transactions, by block (the naive bot's: only its count, in the table). */
function txLines(r: RaceResult): string[] {
  return r.racers
    .filter((x) => x.stats && "outbid" in x.stats)
    .flatMap((x) => [
      `  ${x.name}'s mined transactions (block, nonce: liquidated, skipped, gas used/limit, tip, paid):`,
      ...x.txs.map(
        (t) =>
          `    ${t.block} n${t.nonce}: ${t.cancel ? "cancel" : `${t.liquidated.length} liquidated, ${t.skipped} skipped`}` +
          `${t.reverted ? " REVERTED" : ""}, gas ${t.gasUsed.toLocaleString("en-US")}/${t.gasLimit.toLocaleString("en-US")}, ` +
          `tip ${gwei(t.tip, 1n)} gwei, paid ${eth(t.costWei)} ETH, rewards ${collateral(t.rewardWad)}`,
      ),
    ]);
}

const lossMaking = (r: RaceResult) => r.racers[0].figures.lossMaking + r.racers[1].figures.lossMaking;

function firstBroadcast(results: readonly RaceResult[]): number | null {
  const xs = results
    .flatMap((r) => r.crashes.map((c) => c.firstBroadcastMs[0]))
    .filter((x): x is number => x !== undefined)
    .sort((a, b) => a - b);
  return xs.length === 0 ? null : round(xs[Math.floor((xs.length - 1) / 2)] as number);
}

async function main(): Promise<void> {
  let keeperLog: WriteStream | undefined;
  if (keeperLogPath) keeperLog = createWriteStream(keeperLogPath, { flags: "w" });
  try {
    const results: RaceResult[] = [];
    for (const race of RACE_NAMES.filter((r) => races.includes(r))) {
      results.push(
        await runRace(race, {
          traders,
          positions,
          gasTokenPrice,
          settleBlocks: intArg("--settle-blocks", 20),
          keeperLog,
          progress,
        }),
      );
    }
    process.stdout.write(`${report(results)}\n`);
    if (json) {
      const by = (name: RaceName) => results.find((r) => r.name === name);
      const d = by("vsDefault");
      const n = by("vsNaive");
      const s = by("selfRace");
      const out = {
        bench: "race",
        positions: results[0]?.positions ?? 0,
        vsDefault: d
          ? {
              winShare: winShare(d),
              wastedGasShare: wastedGasShare(d.racers[0]),
              netProfitWei: d.racers[0].figures.netProfitWad.toString(),
              competitorNetProfitWei: d.racers[1].figures.netProfitWad.toString(),
            }
          : null,
        vsNaive: n ? { winShare: winShare(n), wastedGasShare: wastedGasShare(n.racers[0]) } : null,
        selfRace: s ? { lossMaking: lossMaking(s) } : null,
        firstBroadcastMs: firstBroadcast(results),
      };
      process.stdout.write(`${JSON.stringify(out)}\n`);
    }
  } finally {
    if (keeperLog) await new Promise<void>((r) => keeperLog?.end(() => r()));
  }
}

// Ctrl-C or a TERM: exit, and Anvil goes with the process (src/devnet/anvil.ts kills its nodes on exit)
for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => process.exit(130));

main().then(
  () => process.exit(0),
  (error: unknown) => {
    progress(`failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    process.exit(1);
  },
);
