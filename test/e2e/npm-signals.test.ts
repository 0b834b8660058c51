/**
 * The real `npm start` (the embedded demo) under the signals an operator and a supervisor send. A terminal's
 * Ctrl-C reaches the whole process group and npm forwards it once more: that is one request, so the keeper stops
 * cleanly (keeper_stopped) and npm exits 0. A supervisor that tracks only npm's PID sends it SIGTERM: the keeper
 * and its Anvil stop too, nothing is left running.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { resolve } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { until } from "../helpers/wait.ts";

const ROOT = resolve(import.meta.dirname, "../..");
let running: ChildProcess | undefined;

afterEach(() => {
  if (running?.pid) {
    try {
      process.kill(-running.pid, "SIGKILL");
    } catch {
      // gone
    }
  }
  running = undefined;
});

function npmStart() {
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith("KEEPER_") && !k.startsWith("LOG_") && k !== "RPC_URL"),
  );
  // its own process group, as a terminal's foreground job
  const child = spawn("npm", ["start"], {
    cwd: ROOT,
    env: { ...clean, LOG_FORMAT: "json" },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  running = child;
  let out = "";
  child.stdout?.on("data", (c: Buffer) => {
    out += c.toString();
  });
  const exited = new Promise<number | null>((done) => child.once("close", (code) => done(code)));
  return { child, exited, out: () => out };
}

/** The processes of a group still alive (ps), as "pid command" lines. */
async function groupMembers(pgid: number): Promise<string[]> {
  const ps = spawn("ps", ["-eo", "pgid=,pid=,args="]);
  let text = "";
  ps.stdout.on("data", (c: Buffer) => {
    text += c.toString();
  });
  await new Promise((r) => ps.once("close", r));
  return text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l.startsWith(`${pgid} `));
}

describe("npm start under signals", () => {
  it("Ctrl-C (SIGINT to the whole group, npm forwarding it again): one clean stop, exit 0, no Anvil left", async () => {
    const npm = npmStart();
    await until("the keeper started", () => npm.out().includes('"event":"keeper_started"'), 60_000);
    process.kill(-(npm.child.pid as number), "SIGINT");
    expect(await npm.exited).toBe(0);
    expect(npm.out()).toContain('"event":"keeper_stopped"');
    expect(npm.out()).not.toContain("second signal");
    expect(await groupMembers(npm.child.pid as number)).toEqual([]);
  }, 90_000);

  it("SIGTERM to npm alone (a supervisor tracking one PID): the keeper and its Anvil stop, exit 0", async () => {
    const npm = npmStart();
    await until("the keeper started", () => npm.out().includes('"event":"keeper_started"'), 60_000);
    process.kill(npm.child.pid as number, "SIGTERM");
    expect(await npm.exited).toBe(0);
    expect(npm.out()).toContain('"event":"keeper_stopped"');
    await until("the group gone", async () => (await groupMembers(npm.child.pid as number)).length === 0, 5_000);
  }, 90_000);
});
