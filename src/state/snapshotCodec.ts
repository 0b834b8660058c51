/**
 * How an exchange's book is written to a snapshot and read back: the seam between the snapshot's life (when it is
 * written, atomically, where, and whether a restart trusts it: snapshotter.ts, snapshotFile.ts, watcher/resume.ts)
 * and what it holds, which is the exchange's. Every codec parses strictly: a snapshot that does not parse, is cut
 * short, or fails its checksum is refused whole (SnapshotError), never half-trusted.
 */
import type { Address, Hex } from "viem";

/** Where a snapshot was taken. */
export interface SnapshotMeta {
  readonly chainId: number;
  readonly exchange: Address;
  readonly blockNumber: bigint;
  readonly blockHash: Hex;
}

/** A snapshot read back: where it was taken, and the book's state there. */
export interface ParsedSnapshot<S> extends SnapshotMeta {
  readonly state: S;
}

export type SnapshotProblem = "corrupt" | "version" | "other_chain" | "other_exchange" | "other_adapter";

/** A snapshot that cannot be used; `problem` says why, the message says where. */
export class SnapshotError extends Error {
  override name = "SnapshotError";
  constructor(
    readonly problem: SnapshotProblem,
    message: string,
  ) {
    super(message);
  }
}

export interface SnapshotCodec<S> {
  /** The file name's adapter part: `<chainId>-<name><exchange>.jsonl` ("" for PerpEngine, whose files keep their name). */
  readonly fileTag: string;
  /** The snapshot as chunks of whole lines, ending with a checksummed trailer; lazy (the writer yields between). */
  chunks(meta: SnapshotMeta, state: S): Generator<string>;
  /** Parses a whole snapshot, checking it belongs to `expected`. Throws SnapshotError. */
  parse(content: string, expected: { readonly chainId: number; readonly exchange: Address }): ParsedSnapshot<S>;
  /** What a state holds, for log lines (snapshot_written, snapshot_loaded). */
  counts(state: S): Record<string, number>;
}
