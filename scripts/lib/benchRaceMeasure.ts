/**
 * What a race left on chain (scripts/bench-race.ts): every mined transaction of each racer from the first crash block
 * on (eth_getBlockReceipts straight at Anvil), the engine's PositionLiquidated and LiquidationSkipped logs in them, and
 * from those, per racer: positions won and lost, gas on lost races, rewards and profit net of gas.
 *
 * Units: keeper rewards are WAD collateral (PositionLiquidated.keeperReward, 18 decimals whatever the token's); gas is
 * paid in wei of the gas token (gasUsed x effectiveGasPrice) and converted to WAD collateral at the gas token price
 * as src/executor/fees.ts expectedProfit does (costWei x price / 1e18). Profit is in WAD collateral.
 */
import { type Address, decodeEventLog, type Hex, toHex } from "viem";
import { perpEngineAbi } from "../../abi/PerpEngine.ts";
import { positionKey } from "../../src/protocol/perpEngine/book.ts";
import { rpcBatch } from "./rpc.ts";

const WAD = 10n ** 18n;

interface RpcLog {
  readonly address: Address;
  readonly topics: [Hex, ...Hex[]];
  readonly data: Hex;
}

interface RpcReceipt {
  readonly from: Address;
  readonly to: Address | null;
  readonly status: Hex;
  readonly gasUsed: Hex;
  readonly effectiveGasPrice: Hex;
  readonly blockNumber: Hex;
  readonly transactionHash: Hex;
  readonly logs: readonly RpcLog[];
}

interface RpcTx {
  readonly nonce: Hex;
  readonly gas: Hex;
  readonly maxPriorityFeePerGas?: Hex;
  readonly gasPrice?: Hex;
}

/** One mined transaction of a racer. */
export interface MinedTx {
  readonly hash: Hex;
  readonly block: bigint;
  readonly reverted: boolean;
  /** A transfer to itself: a cancel (or a nonce-gap filler). */
  readonly cancel: boolean;
  readonly gasUsed: bigint;
  readonly costWei: bigint;
  /** Positions it liquidated (keys), and their keeper rewards (WAD collateral). */
  readonly liquidated: readonly string[];
  readonly rewardWad: bigint;
  /** Positions a batch of it skipped (LiquidationSkipped). */
  readonly skipped: number;
  /** From the transaction itself: its nonce, gas limit and tip (a legacy one's gas price). */
  readonly nonce: number;
  readonly gasLimit: bigint;
  readonly tip: bigint;
}

export interface Liquidation {
  readonly keeper: Address;
  readonly block: bigint;
  readonly rewardWad: bigint;
}

export interface ChainRecord {
  /** By racer address (lower case): its mined transactions in the window. */
  readonly txs: Map<string, MinedTx[]>;
  /** Every liquidation in the window, by position key. */
  readonly liquidations: Map<string, Liquidation>;
}

/** Racers' mined transactions and every liquidation in blocks [from, to]. */
export async function readChain(
  url: string,
  engine: Address,
  racers: readonly Address[],
  from: bigint,
  to: bigint,
): Promise<ChainRecord> {
  const numbers: bigint[] = [];
  for (let b = from; b <= to; b++) numbers.push(b);
  const answers = await rpcBatch(
    url,
    numbers.map((b) => ({ method: "eth_getBlockReceipts", params: [toHex(b)] })),
    20,
  );
  const ours = new Set(racers.map((r) => r.toLowerCase()));
  const txs = new Map<string, MinedTx[]>(racers.map((r) => [r.toLowerCase(), []]));
  const liquidations = new Map<string, Liquidation>();
  const mined: (Omit<MinedTx, "nonce" | "gasLimit" | "tip"> & { from: string })[] = [];
  for (const [i, a] of answers.entries()) {
    if (a.error || !Array.isArray(a.result)) throw new Error(`block ${numbers[i]}: no receipts`);
    for (const r of a.result as RpcReceipt[]) {
      let rewardWad = 0n;
      let skipped = 0;
      const liquidated: string[] = [];
      for (const l of r.logs) {
        if (l.address.toLowerCase() !== engine.toLowerCase()) continue;
        let event: ReturnType<typeof decodeEventLog<typeof perpEngineAbi>>;
        try {
          event = decodeEventLog({ abi: perpEngineAbi, topics: l.topics, data: l.data });
        } catch {
          continue;
        }
        if (event.eventName === "LiquidationSkipped") skipped++;
        if (event.eventName !== "PositionLiquidated") continue;
        const { trader, marketId, keeper, keeperReward } = event.args;
        const key = positionKey(Number(marketId), trader);
        liquidations.set(key, {
          keeper: keeper.toLowerCase() as Address,
          block: BigInt(r.blockNumber),
          rewardWad: keeperReward,
        });
        if (keeper.toLowerCase() === r.from.toLowerCase()) {
          liquidated.push(key);
          rewardWad += keeperReward;
        }
      }
      const from = r.from.toLowerCase();
      if (!ours.has(from)) continue;
      const gasUsed = BigInt(r.gasUsed);
      mined.push({
        from,
        hash: r.transactionHash,
        block: BigInt(r.blockNumber),
        reverted: r.status !== "0x1",
        cancel: r.to?.toLowerCase() === from,
        gasUsed,
        costWei: gasUsed * BigInt(r.effectiveGasPrice),
        liquidated,
        rewardWad,
        skipped,
      });
    }
  }
  // the transactions themselves: nonce, gas limit, tip
  const answers2 = await rpcBatch(
    url,
    mined.map((m) => ({ method: "eth_getTransactionByHash", params: [m.hash] })),
  );
  for (const [i, m] of mined.entries()) {
    const tx = answers2[i]?.result as RpcTx | null | undefined;
    txs.get(m.from)?.push({
      ...m,
      nonce: Number(BigInt(tx?.nonce ?? "0x0")),
      gasLimit: BigInt(tx?.gas ?? "0x0"),
      tip: BigInt(tx?.maxPriorityFeePerGas ?? tx?.gasPrice ?? "0x0"),
    });
  }
  return { txs, liquidations };
}

/** One racer's figures over some crashes. */
export interface RacerFigures {
  /** Liquidatable positions it liquidated, and the ones the other racer did. */
  won: number;
  lost: number;
  /** Contested positions (both sent for them) it won. */
  contestedWon: number;
  txMined: number;
  txReverted: number;
  cancels: number;
  skippedInBatch: number;
  gasUsed: bigint;
  /** Gas of its mined transactions that liquidated nothing (reverted, skipped all, cancels). */
  lostGasUsed: bigint;
  costWei: bigint;
  lostCostWei: bigint;
  rewardWad: bigint;
  netProfitWad: bigint;
  /** Liquidations in a transaction whose rewards were below its gas cost (at the gas token price). */
  lossMaking: number;
}

export function emptyFigures(): RacerFigures {
  return {
    won: 0,
    lost: 0,
    contestedWon: 0,
    txMined: 0,
    txReverted: 0,
    cancels: 0,
    skippedInBatch: 0,
    gasUsed: 0n,
    lostGasUsed: 0n,
    costWei: 0n,
    lostCostWei: 0n,
    rewardWad: 0n,
    netProfitWad: 0n,
    lossMaking: 0,
  };
}

/** Gas cost (wei of the gas token) in WAD collateral, as fees.ts expectedProfit converts it. */
export const costInCollateral = (costWei: bigint, gasTokenPriceWad: bigint): bigint =>
  (costWei * gasTokenPriceWad) / WAD;

/**
 * Adds one crash to a racer's figures: `liquidatable` the positions the crash made liquidatable, `contested` those
 * both racers sent for, `txs` its mined transactions in the crash's blocks.
 */
export function addCrash(
  f: RacerFigures,
  o: {
    readonly address: Address;
    readonly other: Address | undefined;
    readonly liquidatable: readonly string[];
    readonly contested: ReadonlySet<string>;
    readonly liquidations: ReadonlyMap<string, Liquidation>;
    readonly txs: readonly MinedTx[];
    readonly gasTokenPriceWad: bigint;
  },
): void {
  const me = o.address.toLowerCase();
  const other = o.other?.toLowerCase();
  for (const key of o.liquidatable) {
    const by = o.liquidations.get(key)?.keeper;
    if (by === me) {
      f.won++;
      if (o.contested.has(key)) f.contestedWon++;
    } else if (by !== undefined && by === other) f.lost++;
  }
  for (const t of o.txs) {
    f.txMined++;
    if (t.reverted) f.txReverted++;
    if (t.cancel) f.cancels++;
    f.skippedInBatch += t.skipped;
    f.gasUsed += t.gasUsed;
    f.costWei += t.costWei;
    f.rewardWad += t.rewardWad;
    if (t.liquidated.length === 0) {
      f.lostGasUsed += t.gasUsed;
      f.lostCostWei += t.costWei;
    } else if (t.rewardWad < costInCollateral(t.costWei, o.gasTokenPriceWad)) {
      f.lossMaking += t.liquidated.length;
    }
  }
  f.netProfitWad = f.rewardWad - costInCollateral(f.costWei, o.gasTokenPriceWad);
}
