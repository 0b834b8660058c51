/**
 * Snapshots on disk: `<stateDir>/snapshot/<chainId>-<adapter tag><exchange>.jsonl`, written atomically (a temporary file,
 * fsynced, renamed over the old one, the directory fsynced), so that a crash at any point leaves the previous
 * snapshot or the new one, never a mix. Reading refuses anything that is not a whole, matching snapshot.
 */
import { mkdir, open, readFile, rename, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Address } from "viem";
import { type ParsedSnapshot, type SnapshotCodec, SnapshotError, type SnapshotProblem } from "./snapshotCodec.ts";

/** `fileTag`: the codec's (PerpEngine's is empty: its files keep the name they had before the seam). */
export function snapshotPath(stateDir: string, chainId: number, exchange: Address, fileTag = ""): string {
  return join(stateDir, "snapshot", `${chainId}-${fileTag}${exchange.toLowerCase()}.jsonl`);
}

/** Writes the snapshot's chunks atomically; returns its size in bytes. Between chunks the event loop runs. */
export async function writeSnapshotFile(path: string, chunks: Iterable<string>): Promise<number> {
  await mkdir(dirname(path), { recursive: true });
  const temporary = `${path}.${process.pid}.tmp`;
  const file = await open(temporary, "w", 0o600);
  let bytes = 0;
  try {
    for (const chunk of chunks) {
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

export type SnapshotRead<S> =
  | { readonly ok: true; readonly snapshot: ParsedSnapshot<S>; readonly bytes: number }
  | { readonly ok: false; readonly problem: SnapshotProblem | "missing" | "unreadable"; readonly detail: string };

/** Reads and checks a snapshot; every way it can be unusable is a reason, never an exception. */
export async function readSnapshotFile<S>(
  path: string,
  expected: { chainId: number; exchange: Address },
  codec: SnapshotCodec<S>,
): Promise<SnapshotRead<S>> {
  let content: string;
  try {
    content = await readFile(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return { ok: false, problem: "missing", detail: `no snapshot at ${path}` };
    return { ok: false, problem: "unreadable", detail: `${path}: ${(error as Error).message}` };
  }
  try {
    return { ok: true, snapshot: codec.parse(content, expected), bytes: Buffer.byteLength(content) };
  } catch (error) {
    if (error instanceof SnapshotError) return { ok: false, problem: error.problem, detail: error.message };
    throw error;
  }
}
