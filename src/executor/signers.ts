/**
 * The signer keys: one nonce lane and one journal per key. Keys come only from the environment and stop here:
 * the lane gets a signing callback and an address, never the key.
 */
import { join } from "node:path";
import type { Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import type { Attempt } from "./attempt.ts";
import { Journal } from "./journal.ts";
import { NonceLane } from "./lane.ts";

export interface OpenedLane {
  readonly lane: NonceLane;
  /** Unresolved attempts the journal held from an earlier run. */
  readonly recovered: Attempt[];
}

/** The journal file of one signer on one chain. */
export function journalPath(stateDir: string, chainId: number, address: string): string {
  return join(stateDir, "journal", `${chainId}-${address.toLowerCase()}.jsonl`);
}

export async function openLanes(keys: readonly Hex[], chainId: number, stateDir: string): Promise<OpenedLane[]> {
  const opened: OpenedLane[] = [];
  try {
    for (const key of keys) {
      const account = privateKeyToAccount(key);
      const { journal, attempts } = await Journal.open(journalPath(stateDir, chainId, account.address));
      const lane = new NonceLane(account.address, (tx) => account.signTransaction(tx), chainId, journal);
      opened.push({ lane, recovered: attempts });
    }
  } catch (error) {
    await Promise.all(opened.map((o) => o.lane.journal.close().catch(() => {})));
    throw error;
  }
  return opened;
}
