/**
 * npm run devnet: a standing local chain for the keeper. Starts Anvil on 127.0.0.1 (port 8545, or --port),
 * deploys the reference exchange, opens the devnet's positions, writes config/devnet.json and keeps the chain
 * up until Ctrl-C. Then, in another terminal: cp .env.example .env && npm start -- --config config/devnet.json --dotenv .env
 * With --exchange perp-v2: Perpetual Protocol v2 instead (scripts/devnet-perp-v2.ts), its config written to
 * data/devnet-perp-v2.json (untracked). With --exchange cross-margin: the Pyth-priced cross-margin exchange and a local
 * Hermes (scripts/devnet-cross-margin.ts), its config written to data/devnet-cross-margin.json (untracked).
 */
import { writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { startAnvil } from "../src/devnet/anvil.ts";
import { devnetConfig } from "../src/devnet/config.ts";
import { DevExchange } from "../src/devnet/exchange.ts";
import { accountsNeeded, devnetPositions, openPositions } from "../src/devnet/positions.ts";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
// --exchange perp-v2: Perpetual Protocol v2 instead (scripts/devnet-perp-v2.ts takes the other options)
const exchangeAt = process.argv.findIndex((a) => a === "--exchange" || a.startsWith("--exchange="));
const exchange =
  exchangeAt < 0
    ? "perp-engine"
    : (process.argv[exchangeAt]?.split("=")[1] ?? process.argv[exchangeAt + 1] ?? "").trim();
if (exchange !== "perp-engine" && exchange !== "perp-v2" && exchange !== "cross-margin")
  throw new Error(`--exchange takes perp-engine, perp-v2 or cross-margin, got "${exchange}"`);
if (exchangeAt >= 0) process.argv.splice(exchangeAt, process.argv[exchangeAt]?.includes("=") ? 1 : 2);
if (exchange === "perp-v2") {
  await import("./devnet-perp-v2.ts");
} else if (exchange === "cross-margin") {
  await import("./devnet-cross-margin.ts");
} else {
  await perpEngineDevnet();
}

async function perpEngineDevnet(): Promise<void> {
  const { values } = parseArgs({
    options: { port: { type: "string", default: "8545" }, out: { type: "string", default: "config/devnet.json" } },
  });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port <= 0 || port > 65535)
    throw new Error(`--port must be a TCP port, got ${values.port}`);

  const specs = devnetPositions();
  const anvil = await startAnvil({ port, accounts: accountsNeeded(specs) + 1 });
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await anvil.stop();
    console.log("devnet stopped");
    process.exit(0);
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);

  try {
    const ex = await DevExchange.deploy(anvil.rpcUrl);
    await openPositions(ex, specs);
    // validated as the keeper will read it, but written as a person would: only what differs from the defaults. The
    // devnet deploys deterministically, so the file is the same at every run (the tracked copy stays unchanged).
    const config = devnetConfig(ex.d, anvil.rpcUrl);
    const file = {
      network: { name: config.network.name, chainId: config.network.chainId, rpcUrl: config.network.rpcUrl },
      exchange: config.exchange,
      keeper: { pollIntervalMs: config.keeper.pollIntervalMs },
    };
    const out = resolve(root, values.out);
    writeFileSync(out, `${JSON.stringify(file, null, 2)}\n`);
    console.log(`devnet up at ${anvil.rpcUrl} (chain ${ex.d.chainId})`);
    console.log(`PerpEngine ${ex.d.engine}, collateral ${ex.d.collateral}, deployed at block ${ex.d.deployBlock}`);
    for (const m of ex.d.markets) console.log(`market ${m.id} ${m.name}: oracle ${m.oracle}`);
    console.log(`${specs.length} positions open; wrote ${values.out}`);
    console.log(`run the keeper: npm start -- --config ${values.out} --dotenv .env   (Ctrl-C here stops the chain)`);
  } catch (error) {
    console.error(`devnet failed: ${(error as Error).message}`);
    await anvil.stop();
    process.exit(1);
  }
}
