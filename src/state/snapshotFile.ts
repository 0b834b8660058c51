/**
 * Snapshots on disk: `<stateDir>/snapshot/<chainId>-<exchange>.jsonl`, written atomically (a temporary file,
 * fsynced, renamed over the old one, the directory fsynced), so that a crash at any point leaves the previous
 * snapshot or the new one, never a mix. Reading refuses anything that is not a whole, matching snapshot.
 */
import { mkdir, open, readFile, rename, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Address } from "viem";
import { parseSnapshot, type Snapshot, SnapshotError, type SnapshotProblem, snapshotChunks } from "./snapshot.ts";

export function snapshotPath(stateDir: string, chainId: number, exchange: Address): string {
  return join(stateDir, "snapshot", `${chainId}-${exchange.toLowerCase()}.jsonl`);
}

/** Writes the snapshot atomically; returns its size in bytes. Between chunks the event loop runs. */
export async function writeSnapshotFile(path: string, snapshot: Snapshot): Promise<number> {
  await mkdir(dirname(path), { recursive: true });
  const temporary = `${path}.${process.pid}.tmp`;
  const file = await open(temporary, "w", 0o600);
  let bytes = 0;
  try {
    for (const chunk of snapshotChunks(snapshot)) {
      const buffer = Buffer.from(chunk);
      await file.write(buffer);
      bytes += buffer.length;
    }
    await file.sync();
  } catch (error) {
    await file.close().catch(() => {});
    await rm(temporary, { force: true });
    throw error;
  }
  await file.close();
  await rename(temporary, path);
  const dir = await open(dirname(path), "r");
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
  return bytes;
}

export type SnapshotRead =
  | { readonly ok: true; readonly snapshot: Snapshot; readonly bytes: number }
  | { readonly ok: false; readonly problem: SnapshotProblem | "missing" | "unreadable"; readonly detail: string };

/** Reads and checks a snapshot; every way it can be unusable is a reason, never an exception. */
export async function readSnapshotFile(
  path: string,
  expected: { chainId: number; exchange: Address },
): Promise<SnapshotRead> {
  let content: string;
  try {
    content = await readFile(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return { ok: false, problem: "missing", detail: `no snapshot at ${path}` };
    return { ok: false, problem: "unreadable", detail: `${path}: ${(error as Error).message}` };
  }
  try {
    return { ok: true, snapshot: parseSnapshot(content, expected), bytes: Buffer.byteLength(content) };
  } catch (error) {
    if (error instanceof SnapshotError) return { ok: false, problem: error.problem, detail: error.message };
    throw error;
  }
}
