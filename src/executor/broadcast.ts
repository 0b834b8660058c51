/**
 * Broadcasts one signed transaction and says what became of it, never guessing: "already known" with our hash is
 * success; a reply that is lost, garbled or names another hash is settled by looking our hash up at the node.
 */
import { BaseError, type Hex, type PublicClient, RpcRequestError } from "viem";
import { describeError, TX_FEE_CAP_REFUSAL } from "../chain/errors.ts";
import { redactUrls } from "../config/load.ts";

export type SendResult =
  /** The node has it. */
  | { readonly kind: "accepted" }
  /** The nonce is already used on chain: someone else (or an earlier send of ours) took it. */
  | { readonly kind: "nonce_too_low"; readonly error: string }
  /** Another transaction at this nonce is in the pool and ours does not outbid it by the node's rule. */
  | { readonly kind: "underpriced"; readonly error: string }
  | { readonly kind: "insufficient_funds"; readonly error: string }
  /**
   * gas x maxFeePerGas above the node's own cap (geth, Erigon `rpc.txfeecap`, 1 ETH by default): the same transaction
   * is refused every time; it must be smaller (fewer positions) or wait for lower fees, and keeper.txFeeCapEth is
   * above the node's cap.
   */
  | { readonly kind: "tx_fee_cap"; readonly error: string }
  /** Fee cap under the node's minimum (base fee): it will not take it. */
  | { readonly kind: "fee_too_low"; readonly error: string }
  /** The node answered no, for another reason, and does not know the hash. */
  | { readonly kind: "rejected"; readonly error: string }
  /** No usable answer and the node does not know the hash (yet): it may still be in flight. */
  | { readonly kind: "uncertain"; readonly error: string };

const PATTERNS: readonly [SendResult["kind"], RegExp][] = [
  ["accepted", /already known|known transaction|already imported|alreadyknown|already exists/],
  ["nonce_too_low", /nonce too low|nonce is too low|oldnonce|nonce has already been used/],
  ["underpriced", /replacement transaction underpriced|replacement underpriced|replacement transaction/],
  ["insufficient_funds", /insufficient funds|insufficient balance/],
  // geth and Erigon: "tx fee (1.23 ether) exceeds the configured cap (1.00 ether)"
  ["tx_fee_cap", TX_FEE_CAP_REFUSAL],
  [
    "fee_too_low",
    /less than (the )?block base fee|fee cap less than|max fee per gas less than|feecap too low|transaction underpriced/,
  ],
];

/** What a send error means, from the node's words (shortMessage and details). */
export function classifySendError(error: unknown): SendResult["kind"] | undefined {
  const text =
    error instanceof BaseError
      ? `${error.shortMessage} ${error.details ?? ""} ${error.message}`.toLowerCase()
      : String(error).toLowerCase();
  for (const [kind, pattern] of PATTERNS) if (pattern.test(text)) return kind;
  return undefined;
}

/**
 * What the node said, for the log: its own reason (the JSON-RPC error's message, which viem keeps as `details`)
 * rather than viem's generic summary of the error code ("Missing or invalid parameters"), with any URL redacted.
 */
export function nodeReason(error: unknown): string {
  if (!(error instanceof BaseError)) return redactUrls(describeError(error));
  const rpc = error.walk((e) => e instanceof RpcRequestError);
  const reason = (rpc instanceof BaseError ? rpc.details : undefined) || error.details;
  return redactUrls(reason ? reason : error.shortMessage);
}

export async function broadcast(client: PublicClient, raw: Hex, hash: Hex): Promise<SendResult> {
  let failure: unknown;
  try {
    const answer = await client.request({ method: "eth_sendRawTransaction", params: [raw] });
    if (typeof answer === "string" && answer.toLowerCase() === hash.toLowerCase()) return { kind: "accepted" };
    failure = new Error(`the node answered ${String(answer).slice(0, 80)} for ${hash}`);
  } catch (error) {
    const kind = classifySendError(error);
    if (kind === "accepted") return { kind };
    if (kind !== undefined && kind !== "nonce_too_low") return { kind, error: nodeReason(error) };
    failure = error;
    // "nonce too low" may be our own transaction already mined (a retried send): the lookup below tells
    if (kind === "nonce_too_low") {
      return (await known(client, hash)) ? { kind: "accepted" } : { kind, error: nodeReason(error) };
    }
  }
  if ((await known(client, hash)) === true) return { kind: "accepted" };
  const answered = failure instanceof BaseError && failure.walk((e) => e instanceof RpcRequestError);
  return { kind: answered ? "rejected" : "uncertain", error: nodeReason(failure) };
}

/** Whether the node knows the transaction (pending or mined); undefined when it could not be asked. */
export async function known(client: PublicClient, hash: Hex): Promise<boolean | undefined> {
  try {
    const tx = await client.request({ method: "eth_getTransactionByHash", params: [hash] });
    return tx !== null && tx !== undefined;
  } catch {
    return undefined;
  }
}

/**
 * Which answer stands, when no endpoint took the transaction. "uncertain" first: an endpoint that gave no clear
 * answer may have it in its pool (and passed it on), so no other endpoint's refusal may give its nonce back; then the
 * refusal that says most.
 */
const TELLING: readonly SendResult["kind"][] = [
  "uncertain",
  "nonce_too_low",
  "underpriced",
  "insufficient_funds",
  "tx_fee_cap",
  "fee_too_low",
  "rejected",
];

/**
 * Broadcasts to every endpoint at once: the first that takes the transaction settles it (the others go on, their
 * answers unneeded); when none does, "uncertain" if any endpoint gave no clear answer (the transaction may be in
 * its pool: tracked as pending, never given back), else the most telling refusal (a used nonce over a generic one).
 */
export function broadcastAll(clients: readonly PublicClient[], raw: Hex, hash: Hex): Promise<SendResult> {
  const [only] = clients;
  if (clients.length === 1 && only) return broadcast(only, raw, hash);
  return new Promise((resolve) => {
    const results: SendResult[] = [];
    let settled = false;
    const done = (result: SendResult) => {
      if (settled) return;
      results.push(result);
      if (result.kind === "accepted") {
        settled = true;
        resolve(result);
      } else if (results.length === clients.length) {
        settled = true;
        const ranked = [...results].sort((a, b) => TELLING.indexOf(a.kind) - TELLING.indexOf(b.kind));
        resolve(ranked[0] as SendResult);
      }
    };
    for (const client of clients) {
      broadcast(client, raw, hash).then(done, (error: unknown) =>
        done({ kind: "uncertain", error: describeError(error) }),
      );
    }
  });
}
