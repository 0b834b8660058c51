/**
 * `npm run devnet -- --exchange cross-margin`: a standing local chain with the reference cross-margin exchange priced
 * by a Pyth pull oracle. Starts Anvil on 127.0.0.1 (port 8545 or --port, one block a second or --block-time) and a
 * local Hermes (port 8546 or --hermes-port) that publishes every feed each second as Pythnet does; deploys MockPyth,
 * TestUSD and CrossMarginEngine with ETH and BTC; opens the demo's accounts; writes the keeper config to --out
 * (default data/devnet-cross-margin.json, untracked) and keeps both up until Ctrl-C.
 *
 * Prices move through Hermes only (the chain learns them from whoever brings them): type `ETH 2600` (or
 * `BTC 52000 ETH 2600`) and Enter on this terminal.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { CROSS_MARGIN_DEMO_ACCOUNTS, demoMarkets } from "../src/demo/crossMarginDemo.ts";
import { startAnvil } from "../src/devnet/anvil.ts";
import { openCrossMarginAccounts } from "../src/devnet/crossMargin/deploy.ts";
import { crossMarginKeeperConfig, stageCrossMargin } from "../src/devnet/crossMargin/stage.ts";

const { values } = parseArgs({
  options: {
    port: { type: "string", default: "8545" },
    "hermes-port": { type: "string", default: "8546" },
    "block-time": { type: "string", default: "1" },
    out: { type: "string", default: "data/devnet-cross-margin.json" },
  },
});
const int = (name: string, value: string | undefined, min: number, max: number) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be an integer in [${min}, ${max}]`);
  return n;
};
const port = int("port", values.port, 1, 65535);
const hermesPort = int("hermes-port", values["hermes-port"], 1, 65535);
const blockTime = int("block-time", values["block-time"], 1, 3600);
const log = (line: string) => process.stderr.write(`${line}\n`);

const FIRST_TRADER = 10;
const anvil = await startAnvil({ port, accounts: FIRST_TRADER + CROSS_MARGIN_DEMO_ACCOUNTS.length + 2, blockTime });
let stage: Awaited<ReturnType<typeof stageCrossMargin>> | undefined;
let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await stage?.close();
  await anvil.stop();
  log("devnet stopped");
  process.exit(0);
};
process.once("SIGINT", stop);
process.once("SIGTERM", stop);

try {
  stage = await stageCrossMargin(anvil.rpcUrl, { markets: demoMarkets(), hermesPort });
  const d = stage.deployment;
  log(`CrossMarginEngine ${d.engine} (MockPyth ${d.pyth}, TestUSD ${d.quoteToken}) at ${anvil.rpcUrl}`);
  log(`Hermes at ${stage.hermes.url}: ${d.markets.map((m) => `${m.name} ${m.feedId}`).join(", ")}`);
  const opened = await openCrossMarginAccounts(
    d,
    anvil.rpcUrl,
    CROSS_MARGIN_DEMO_ACCOUNTS.map((a, i) => ({ ...a, trader: FIRST_TRADER + i })),
  );
  log(`${opened.length} accounts opened (ids from ${opened[0]?.accountId})`);
  const config = crossMarginKeeperConfig(d, anvil.rpcUrl, [stage.hermes.url]);
  mkdirSync(dirname(values.out), { recursive: true });
  writeFileSync(values.out, `${JSON.stringify(config, null, 2)}\n`);
  log(`wrote the keeper config to ${values.out}`);
  log(`run the keeper: cp .env.example .env && npm start -- --config ${values.out} --dotenv .env`);
  log("move prices on Hermes: type e.g. `ETH 2600` or `BTC 52000 ETH 2600` and Enter; Ctrl-C stops the devnet");
  const lines = createInterface({ input: process.stdin });
  lines.on("line", (line) => {
    const words = line.trim().split(/\s+/).filter(Boolean);
    if (words.length === 0) return;
    const moves: Record<string, string> = {};
    for (let i = 0; i + 1 < words.length; i += 2) moves[(words[i] as string).toUpperCase()] = words[i + 1] as string;
    try {
      if (words.length % 2 !== 0 || Object.values(moves).some((p) => !/^\d+(\.\d+)?$/.test(p))) {
        throw new Error("write market and price pairs, e.g. ETH 2600");
      }
      stage?.move(moves);
      log(
        `Hermes: ${Object.entries(moves)
          .map(([m, p]) => `${m} ${p}`)
          .join(", ")}`,
      );
    } catch (error) {
      log(`not moved: ${(error as Error).message}`);
    }
  });
} catch (error) {
  log(`devnet (cross-margin) failed: ${(error as Error).message}`);
  await stage?.close();
  await anvil.stop();
  process.exit(1);
}
