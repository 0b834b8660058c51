/**
 * The signer keys: one nonce lane and one journal per key. Keys come only from the environment and stop here:
 * the lane gets a signing callback and an address, never the key.
 */
import { join } from "node:path";
import type { Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { SetupError } from "../errors.ts";
import { big, type Logger } from "../ops/logger.ts";
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

/**
 * Opens each key's lane on its journal. With `readOnly` (a dry run) each journal is opened read-only
 * (Journal.openReadOnly): no lock is taken or waited for and nothing is written to the state directory, so a dry run
 * can run beside the live keeper of the same keys. The attempts such a journal holds are the live keeper's: they are
 * reported (`journal_read_only`) but not recovered, since following them would mean re-sending or replacing them.
 */
export async function openLanes(
  keys: readonly Hex[],
  chainId: number,
  stateDir: string,
  log: Logger,
  /** Aborts a wait for a journal lock's lease to expire (journalLock.ts). */
  signal?: AbortSignal,
  readOnly = false,
): Promise<OpenedLane[]> {
  const opened: OpenedLane[] = [];
  try {
    for (const key of keys) {
      const account = privateKeyToAccount(key);
      const path = journalPath(stateDir, chainId, account.address);
      const { journal, attempts } = readOnly
        ? await Journal.openReadOnly(path, { log })
        : await Journal.open(path, { log, signal });
      const lane = new NonceLane(account.address, (tx) => account.signTransaction(tx), chainId, journal);
      if (readOnly) {
        log.info(
          { event: "journal_read_only", signer: account.address, file: path, unresolved: attempts.length },
          `dry run: journal of ${account.address} read without its lock and never written; its ${attempts.length} ` +
            "unresolved attempt(s) are left to the keeper that holds it",
        );
      }
      opened.push({ lane, recovered: readOnly ? [] : attempts });
    }
  } catch (error) {
    await Promise.all(opened.map((o) => o.lane.journal.close().catch(() => {})));
    throw error;
  }
  return opened;
}

/** No signer can pay: a setup problem (exit 2), named by address. */
export class SignerError extends SetupError {
  override name = "SignerError";
}

/**
 * Leaves out the signers whose balance (as last read) is under `floor` (signer_excluded), and refuses to go on when
 * none is left, naming the addresses, never the keys.
 */
export function excludeUnfunded(lanes: readonly NonceLane[], floor: bigint, log: Logger): void {
  const able = lanes.filter((lane) => {
    if ((lane.balance ?? 0n) >= floor) return true;
    lane.lowBalance = true;
    log.warn(
      { event: "signer_excluded", signer: lane.address, balanceWei: big(lane.balance ?? 0n), neededWei: big(floor) },
      `signer ${lane.address} cannot pay for a liquidation at current fees; it takes no work until funded`,
    );
    return false;
  });
  if (able.length === 0) {
    throw new SignerError(
      `no signer can pay for a liquidation at current fees (${big(floor)} wei needed): fund ${lanes
        .map((l) => l.address)
        .join(", ")}`,
    );
  }
}
