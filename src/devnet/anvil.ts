/**
 * Starts and stops a local Anvil (from the npm package @foundry-rs/anvil) on a loopback port.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The package root: where node_modules is, from src/devnet (run by tsx) or dist/src/devnet (built). */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, "package.json")) && existsSync(join(dir, "node_modules"))) return dir;
    dir = resolve(dir, "..");
  }
  return resolve(dirname(fileURLToPath(import.meta.url)), "../..");
}
const root = packageRoot();

/** Anvil's well-known development accounts (mnemonic "test test ... junk"): devnet only, never real funds. */
export const ANVIL_KEYS = [
  "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
  "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
  "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
  "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
  "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
  "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
  "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
  "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
  "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
  "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
] as const;

export interface AnvilOptions {
  /** Loopback port; a free one is picked when omitted. */
  port?: number;
  /** Seconds between blocks; omitted: a block per transaction (automine). */
  blockTime?: number;
  /** Number of funded dev accounts (default 10). */
  accounts?: number;
  /** Start timestamp of the chain (unix seconds). */
  timestamp?: bigint;
  /** Milliseconds to wait for the node to answer. */
  startTimeoutMs?: number;
  /** More command-line options (e.g. `--prune-history 256` for a benchmark's large chain). */
  extraArgs?: readonly string[];
  /** Anvil's environment (default: this process's). A rehearsal passes a clean one: no signer key inherited. */
  env?: NodeJS.ProcessEnv;
  /** Aborting it while Anvil is still starting stops it (and startAnvil rejects). */
  signal?: AbortSignal;
}

export interface Anvil {
  readonly rpcUrl: string;
  readonly port: number;
  stop(): Promise<void>;
}

/**
 * The Anvil executable: the platform binary that @foundry-rs/anvil installs as an optional dependency, started
 * directly so that stopping it stops the node itself (the package's bin is a Node wrapper that would stay between
 * us and the node); the wrapper only when no platform package fits.
 */
export function anvilBinary(): string {
  const arch = process.arch === "x64" ? "amd64" : process.arch;
  const platformBinary = join(root, "node_modules", "@foundry-rs", `anvil-${process.platform}-${arch}`, "bin", "anvil");
  if (existsSync(platformBinary)) return platformBinary;
  const wrapper = join(root, "node_modules", ".bin", "anvil");
  if (!existsSync(wrapper))
    throw new Error(`anvil not found at ${wrapper}: run npm ci (it comes with @foundry-rs/anvil)`);
  return wrapper;
}

/** A TCP port that was free on 127.0.0.1 a moment ago. */
export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => (port ? resolvePort(port) : reject(new Error("no free port"))));
    });
  });
}

const running = new Set<ChildProcess>();
// Whatever way this process ends short of SIGKILL, its nodes end with it.
process.once("exit", () => {
  for (const child of running) child.kill("SIGKILL");
});

/** Starts Anvil on 127.0.0.1 and waits until it answers JSON-RPC. Always pair with stop(). */
export async function startAnvil(options: AnvilOptions = {}): Promise<Anvil> {
  const port = options.port ?? (await freePort());
  const args = ["--host", "127.0.0.1", "--port", String(port), "--accounts", String(options.accounts ?? 10)];
  if (options.blockTime !== undefined) args.push("--block-time", String(options.blockTime));
  if (options.timestamp !== undefined) args.push("--timestamp", options.timestamp.toString());
  args.push(...(options.extraArgs ?? []));
  const child = spawn(anvilBinary(), args, { stdio: ["ignore", "ignore", "pipe"], env: options.env ?? process.env });
  running.add(child);
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const exited = new Promise<void>((done) => child.once("exit", () => done()));
  const rpcUrl = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
      await exited;
      clearTimeout(timer);
    }
    running.delete(child);
  };

  const deadline = Date.now() + (options.startTimeoutMs ?? 15_000);
  while (Date.now() < deadline) {
    if (options.signal?.aborted) {
      await stop();
      throw new Error("anvil: stopped while starting");
    }
    if (child.exitCode !== null) {
      running.delete(child);
      throw new Error(`anvil exited with code ${child.exitCode} on port ${port}: ${stderr.trim()}`);
    }
    try {
      const res = await fetch(rpcUrl, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_chainId", params: [] }),
        signal: AbortSignal.timeout(1000),
      });
      if (res.ok) return { rpcUrl, port, stop };
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  await stop();
  throw new Error(`anvil did not answer on ${rpcUrl} within ${options.startTimeoutMs ?? 15_000} ms: ${stderr.trim()}`);
}
