/**
 * Helpers of the same-block liquidation tests (test/e2e/precompute*.test.ts): oracle updates put in the pool, the
 * blocks mined by hand read back with their receipts, and what the keeper's log says it sent and prepared.
 */
import { type Address, decodeEventLog, type Hex, parseGwei, parseUnits } from "viem";
import { mockV3AggregatorAbi } from "../../abi/MockV3Aggregator.ts";
import { perpEngineAbi } from "../../abi/PerpEngine.ts";
import { type DevExchange, ORACLE_DECIMALS } from "../../src/devnet/exchange.ts";
import { ETH } from "../../src/devnet/positions.ts";
import type { CapturedLog } from "./logs.ts";

export const UPDATE_FEES = { maxFeePerGas: parseGwei("20"), maxPriorityFeePerGas: parseGwei("2") } as const;

/** Puts an ETH oracle update in the pool (not mined), from the exchange's owner, at these fees. */
export async function sendUpdate(
  ex: DevExchange,
  price: string,
  fees: { maxFeePerGas: bigint; maxPriorityFeePerGas: bigint } = UPDATE_FEES,
  nonce?: number,
): Promise<Hex> {
  return ex.owner.writeContract({
    address: ex.d.markets[ETH]?.aggregator as Address,
    abi: mockV3AggregatorAbi,
    functionName: "updateAnswer",
    args: [parseUnits(price, ORACLE_DECIMALS)],
    gas: 200_000n,
    ...fees,
    ...(nonce === undefined ? {} : { nonce }),
  });
}

/** Positions covered by the liquidation_sent lines so far. */
export function positionsSent(logs: CapturedLog): number {
  return logs.events("liquidation_sent").reduce((n, l) => n + Number(l.positions ?? 1), 0);
}

/** Positions covered by the liquidation_prepared lines so far. */
export function positionsPrepared(logs: CapturedLog): number {
  return logs.events("liquidation_prepared").reduce((n, l) => n + Number(l.positions ?? 1), 0);
}

/** A block (the latest, or this number) with its transactions and their receipts, in block order. */
export async function minedBlock(ex: DevExchange, blockNumber?: bigint) {
  const client = ex.publicClient;
  const block =
    blockNumber === undefined
      ? await client.getBlock({ blockTag: "latest", includeTransactions: true })
      : await client.getBlock({ blockNumber, includeTransactions: true });
  const receipts = await Promise.all(block.transactions.map((tx) => client.getTransactionReceipt({ hash: tx.hash })));
  return { block, txs: block.transactions, receipts };
}

export type Receipts = Awaited<ReturnType<typeof minedBlock>>["receipts"];

/** The traders (lower-cased) of the PositionLiquidated events in these receipts. */
export function liquidatedTraders(receipts: Receipts): string[] {
  const out: string[] = [];
  for (const r of receipts) {
    for (const log of r.logs) {
      try {
        const e = decodeEventLog({ abi: perpEngineAbi, data: log.data, topics: log.topics });
        if (e.eventName === "PositionLiquidated") out.push((e.args as { trader: Address }).trader.toLowerCase());
      } catch {}
    }
  }
  return out;
}

/** A signer's latest and pending nonces: equal when nothing of it waits and no nonce is left unused. */
export async function nonces(ex: DevExchange, address: Address): Promise<{ latest: number; pending: number }> {
  const [latest, pending] = await Promise.all([
    ex.publicClient.getTransactionCount({ address, blockTag: "latest" }),
    ex.publicClient.getTransactionCount({ address, blockTag: "pending" }),
  ]);
  return { latest, pending };
}
