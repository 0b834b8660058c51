/**
 * npm run devnet:perp-v2: a standing local chain with Perpetual Protocol v2 ("Curie") deployed from its npm bytecode.
 * Starts Anvil on 127.0.0.1 (port 8545 or --port, one block a second or --block-time, 0 for automine), deploys
 * (src/devnet/perpV2), has a maker (account 4) add full-range liquidity to every market, deploys the keeper's
 * PerpV2Liquidator (operator: .env.example's key), optionally opens --traders leveraged positions, writes the keeper
 * config to --out (default data/devnet-perp-v2.json, untracked), prints {deployment, keeperConfig} as JSON on stdout
 * (progress goes to stderr) and keeps the chain up until Ctrl-C. Also `npm run devnet -- --exchange perp-v2`.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { parseArgs } from "node:util";
import { startAnvil } from "../src/devnet/anvil.ts";
import { perpV2DeploymentJson, perpV2KeeperConfig } from "../src/devnet/perpV2/deploy.ts";
import { PerpV2Devnet } from "../src/devnet/perpV2/scenario.ts";
import { stageLiquidator } from "../src/devnet/perpV2/stage.ts";

const { values } = parseArgs({
  options: {
    port: { type: "string", default: "8545" },
    "block-time": { type: "string", default: "1" },
    accounts: { type: "string", default: "160" },
    "mark-price": { type: "string", default: "fast" },
    traders: { type: "string", default: "0" },
    out: { type: "string" },
  },
});
const int = (name: string, value: string | undefined, min: number, max: number) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be an integer in [${min}, ${max}]`);
  return n;
};
const port = int("port", values.port, 1, 65535);
const blockTime = int("block-time", values["block-time"], 0, 3600);
const accounts = int("accounts", values.accounts, 10, 10_000);
const traders = int("traders", values.traders, 0, accounts - 10);
const markPrice = values["mark-price"];
if (markPrice !== "fast" && markPrice !== "protocol") throw new Error("--mark-price must be fast or protocol");
const log = (line: string) => process.stderr.write(`${line}\n`);

const anvil = await startAnvil({ port, accounts, blockTime: blockTime > 0 ? blockTime : undefined });
let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await anvil.stop();
  log("devnet stopped");
  process.exit(0);
};
process.once("SIGINT", stop);
process.once("SIGTERM", stop);

try {
  const started = performance.now();
  const dev = await PerpV2Devnet.deploy(anvil.rpcUrl, { markPrice });
  log(`Perp v2 deployed at ${anvil.rpcUrl} in ${((performance.now() - started) / 1000).toFixed(1)} s`);

  // a maker so that the markets trade: full range, ~$40M of depth per market at its initial price (account 4:
  // account 1 is .env.example's keeper key)
  const maker = dev.account(4);
  await dev.fund(maker, String(8_000_000 * dev.d.markets.length));
  for (const m of dev.d.markets) {
    const price = Number(m.initialPrice);
    await dev.addLiquidity(maker, m.baseToken, String(Math.round(20_000_000 / price)), "20000000");
  }
  log(`maker ${maker.account.address} added liquidity to ${dev.d.markets.map((m) => m.name).join(", ")}`);

  if (traders > 0) {
    // accounts 10.. : alternately long and short, 5x to 9x, spread over the markets
    const wallets = Array.from({ length: traders }, (_, i) => dev.account(10 + i));
    await dev.fundMany(wallets.map((trader) => ({ trader, usdc: "1000" })));
    await dev.openPositions(
      wallets.map((trader, i) => ({
        trader,
        base: (dev.d.markets[i % dev.d.markets.length] ?? dev.d.markets[0])?.baseToken ?? "",
        args:
          i % 2 === 0
            ? { isBaseToQuote: false, isExactInput: true, amount: String(5000 + (i % 5) * 1000) }
            : { isBaseToQuote: true, isExactInput: false, amount: String(5000 + (i % 5) * 1000) },
      })),
    );
    log(`${traders} traders opened 5x-9x positions (accounts 10..${9 + traders}, 1000 USDC each)`);
  }

  // the keeper's PerpV2Liquidator, owned by account 3, with .env.example's key (account 1) as its operator
  const operator = dev.account(1).account.address;
  const liquidator = await stageLiquidator(dev, dev.account(3), [operator], "2000000");
  log(`PerpV2Liquidator ${liquidator}: 2,000,000 USDC deposited; operator ${operator} (.env.example's key)`);

  const raw = perpV2KeeperConfig(dev.d, anvil.rpcUrl);
  const keeperConfig = { ...raw, exchange: { ...(raw.exchange as object), liquidator } };
  const out = values.out ?? "data/devnet-perp-v2.json";
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(keeperConfig, null, 2)}\n`);
  log(`wrote the keeper config to ${out}`);
  log(
    `run the keeper: cp .env.example .env && npm start -- --config ${out} --dotenv .env   (Ctrl-C here stops the chain)`,
  );
  process.stdout.write(`${JSON.stringify({ deployment: perpV2DeploymentJson(dev.d), keeperConfig }, null, 2)}\n`);
  log("running; Ctrl-C stops the chain");
} catch (error) {
  log(`devnet:perp-v2 failed: ${(error as Error).message}`);
  await anvil.stop();
  process.exit(1);
}
