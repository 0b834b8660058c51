/**
 * At start: the snapshot of the book, if there is a usable one, becomes the watcher's starting point. A snapshot
 * that is missing, unreadable, damaged, of another format version, chain or exchange, from before the configured
 * deployment block, or of a block the chain no longer has at its height, is reported in one line and ignored: the
 * keeper then backfills from the deployment block.
 */
import { type Address, BlockNotFoundError, type PublicClient } from "viem";
import { big, type Logger } from "../ops/logger.ts";
import type { SnapshotCodec } from "../state/snapshotCodec.ts";
import { readSnapshotFile } from "../state/snapshotFile.ts";
import { describeCounts } from "../state/snapshotter.ts";
import type { WatchedEvent } from "./types.ts";
import type { Watcher } from "./watcher.ts";

export interface ResumeOptions<S> {
  readonly path: string;
  readonly chainId: number;
  readonly exchange: Address;
  readonly deployBlock: bigint;
  readonly client: PublicClient;
  // biome-ignore lint/suspicious/noExplicitAny: any exchange's events and changes; the state type is what matters
  readonly watcher: Watcher<WatchedEvent, any, S>;
  readonly codec: SnapshotCodec<S>;
  readonly log: Logger;
}

/** Resumes the watcher from the snapshot when it can be trusted; returns whether it did. */
export async function resumeFromSnapshot<S>(o: ResumeOptions<S>): Promise<boolean> {
  const started = performance.now();
  const read = await readSnapshotFile(o.path, { chainId: o.chainId, exchange: o.exchange }, o.codec);
  const ignore = (reason: string, detail: string, level: "info" | "warn" = "warn") => {
    o.log[level](
      { event: "snapshot_ignored", reason, detail, path: o.path },
      `snapshot not used (${reason}): backfilling from the deployment block`,
    );
    return false;
  };
  if (!read.ok) return ignore(read.problem, read.detail, read.problem === "missing" ? "info" : "warn");
  const s = read.snapshot;
  if (s.blockNumber < o.deployBlock) {
    return ignore("before_deploy_block", `block ${s.blockNumber} is before exchange.deployBlock ${o.deployBlock}`);
  }
  const canonical = await o.client.getBlock({ blockNumber: s.blockNumber }).then(
    (b) => b.hash,
    (error: unknown) => {
      if (error instanceof BlockNotFoundError) return undefined;
      throw error;
    },
  );
  if (canonical !== s.blockHash) {
    return ignore(
      "reorged",
      canonical === undefined
        ? `the chain has no block ${s.blockNumber}`
        : `block ${s.blockNumber} is ${canonical} on the chain, the snapshot's is ${s.blockHash}`,
    );
  }
  o.watcher.resume({ blockNumber: s.blockNumber, blockHash: s.blockHash, state: s.state });
  const counts = o.codec.counts(s.state);
  o.log.info(
    {
      event: "snapshot_loaded",
      blockNumber: big(s.blockNumber),
      ...counts,
      bytes: read.bytes,
      ms: Math.round(performance.now() - started),
      path: o.path,
    },
    `resuming from the snapshot at block ${s.blockNumber} (${describeCounts(counts)})`,
  );
  return true;
}
