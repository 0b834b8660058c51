/** The fields and figures the executor's log lines share: ids of attempts and targets, fees, amounts, revert names. */
import { BaseError, type Hex } from "viem";
import { fromWad } from "../ops/decimals.ts";
import { big } from "../ops/logger.ts";
import type { LiquidationProtocol } from "../protocol/adapter.ts";
import type { Attempt, TargetPlan } from "./attempt.ts";
import type { Fees } from "./fees.ts";

export function attemptIds(a: Attempt) {
  const one = a.targets.length === 1 ? a.targets[0] : undefined;
  return {
    signer: a.signer,
    nonce: a.nonce,
    kind: a.kind,
    positions: a.targets.length,
    trader: one?.trader,
    marketId: one?.marketId,
  };
}

export function targetIds(t: TargetPlan) {
  return { trader: t.trader, marketId: t.marketId };
}

export function feeFields(f: Fees) {
  return { maxFeePerGas: big(f.maxFeePerGas), maxPriorityFeePerGas: big(f.maxPriorityFeePerGas) };
}

/** What these targets are expected to pay the keeper, WAD collateral. */
export function sumRewards(targets: readonly TargetPlan[]): bigint {
  return targets.reduce((s, t) => s + t.expectedReward, 0n);
}

/** Collateral amounts in log fields: 6 decimals, like the collateral itself. */
export function quote(wad: bigint): string {
  return fromWad(wad).toDecimalPlaces(6).toString();
}

/** Why a simulation refused: the protocol's custom error when the revert data names one. */
export function revertReason(error: unknown, protocol: LiquidationProtocol): string {
  if (error instanceof BaseError) {
    let data: Hex | undefined;
    error.walk((e) => {
      const d = (e as { data?: unknown }).data;
      if (typeof d === "string" && d.startsWith("0x")) data = d as Hex;
      else if (d && typeof d === "object" && typeof (d as { data?: unknown }).data === "string")
        data = (d as { data: Hex }).data;
      return false;
    });
    const name = protocol.revertName(data);
    if (name) return name;
  }
  return "simulation_failed";
}

/** "ETH-PERP position of 0x…" for one target, "3 positions" otherwise: for log messages. */
export function describeTargets(a: Attempt, marketName: (marketId: number) => string): string {
  if (a.targets.length !== 1) return `${a.targets.length} positions`;
  const t = a.targets[0] as TargetPlan;
  return `${marketName(t.marketId)} position of ${t.trader}`;
}
