/**
 * The keeper as a real OS process (`tsx src/main.ts --config <file>`), its stdout read as JSON lines.
 *
 * tsx runs the program in a child node process of its own (the keeper proper), which has two consequences here:
 * - a SIGKILL of the tsx process would leave the keeper running (and holding stdout open). So each keeper gets a
 *   process group of its own (detached) and `kill()` SIGKILLs the whole group: the keeper really dies.
 * - tsx relays a SIGTERM it receives to the keeper, but SIGKILLs it (and exits 143) when the keeper's event loop
 *   does not acknowledge the signal within 30 ms, i.e. whenever it is busy for a moment. A test of the keeper's
 *   own shutdown must not depend on that race, so `signal()` sends the signal to the keeper process itself, as a
 *   supervisor running `node --import tsx src/main.ts` would; tsx then exits with the keeper's code.
 * Every group started here is SIGKILLed when the test process exits, whatever happened; tests kill theirs in
 * afterEach too.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { resolve } from "node:path";

const ROOT = resolve(import.meta.dirname, "../..");
const TSX = resolve(ROOT, "node_modules/.bin/tsx");

export interface KeeperProcess {
  readonly child: ChildProcess;
  /** Parsed stdout lines, in order. */
  readonly lines: Record<string, unknown>[];
  /** Stdout lines that were not JSON objects. */
  readonly unparsed: string[];
  /** The last 8 kB of stderr. */
  stderr(): string;
  /** Lines whose `event` is `name`. */
  events(name: string): Record<string, unknown>[];
  /** Resolves once the process has exited (and its stdout is fully read). */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly running: () => boolean;
  /** Waits until `check` holds on the lines read so far; throws naming `what` (with the log tail) otherwise. */
  waitFor(what: string, check: (p: KeeperProcess) => boolean, timeoutMs?: number): Promise<void>;
  /** Sends `signal` to the keeper process (tsx's child; tsx itself when it has none). */
  signal(signal: "SIGTERM" | "SIGINT"): void;
  /** SIGKILLs the whole process group (tsx and the keeper under it) and waits for it to be gone. */
  kill(): Promise<void>;
}

const children = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of children) killGroup(child);
});

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, "SIGKILL");
  } catch {
    // already gone
  }
}

/** Starts `tsx src/main.ts --config <configPath>` in the repository root with a clean keeper environment. */
export function spawnKeeper(configPath: string, env: Record<string, string>): KeeperProcess {
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith("KEEPER_") && !k.startsWith("LOG_") && k !== "RPC_URL"),
  );
  const child = spawn(TSX, ["src/main.ts", "--config", configPath], {
    cwd: ROOT,
    env: { ...clean, ...env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  children.add(child);
  const lines: Record<string, unknown>[] = [];
  const unparsed: string[] = [];
  let stderr = "";
  let partial = "";
  const onLine = (line: string) => {
    if (line.trim() === "") return;
    try {
      const parsed = JSON.parse(line) as unknown;
      if (parsed && typeof parsed === "object") lines.push(parsed as Record<string, unknown>);
      else unparsed.push(line);
    } catch {
      unparsed.push(line);
    }
  };
  child.stdout?.setEncoding("utf8");
  child.stdout?.on("data", (chunk: string) => {
    const parts = (partial + chunk).split("\n");
    partial = parts.pop() ?? "";
    for (const line of parts) onLine(line);
  });
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (chunk: string) => {
    stderr = (stderr + chunk).slice(-8000);
  });
  // "close": the process is gone and its pipes are drained, so every line it wrote has been read
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) => {
    child.once("close", (code, signal) => {
      if (partial !== "") onLine(partial);
      partial = "";
      children.delete(child);
      done({ code, signal });
    });
  });
  let gone = false;
  void exited.then(() => {
    gone = true;
  });
  const p: KeeperProcess = {
    child,
    lines,
    unparsed,
    stderr: () => stderr,
    events: (name) => lines.filter((l) => l.event === name),
    exited,
    running: () => !gone,
    async waitFor(what, check, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      while (!check(p)) {
        if (gone) throw new Error(`keeper exited while waiting for ${what}\n${tail(p)}`);
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${tail(p)}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    signal(signal) {
      const keeper = child.pid === undefined ? undefined : childrenOf(child.pid)[0];
      if (keeper === undefined) child.kill(signal);
      else process.kill(keeper, signal);
    },
    async kill() {
      // the group too when tsx itself is gone: its child may not be
      killGroup(child);
      if (!gone) await exited;
    },
  };
  return p;
}

/** The processes whose parent is `pid` (Linux /proc). */
function childrenOf(pid: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so read after the last ")"
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid) found.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

function tail(p: KeeperProcess): string {
  const last = p.lines.slice(-15).map((l) => JSON.stringify(l));
  return `last log lines:\n${last.join("\n")}\nstderr:\n${p.stderr().slice(-2000)}`;
}
