/**
 * The signers' funds: the floor under which a signer takes no new work (the configured minimum, at least one
 * liquidation at the fees of the start), set at start, where a signer that cannot pay is left out (signers.ts); while
 * running, a signer that falls under it is skipped (signer_low_balance) until funded again (signer_balance_ok).
 */
import { big } from "../ops/logger.ts";
import { type FeeContext, planFees } from "./fees.ts";
import type { NonceLane } from "./lane.ts";
import { excludeUnfunded } from "./signers.ts";
import { type ExecutorOptions, INITIAL_GAS_PER_POSITION } from "./types.ts";

export class SignerFunds {
  /** Balance (wei) under which a signer takes no new work: the configured floor, at least one liquidation's cost. */
  private floor = 0n;

  constructor(private readonly o: ExecutorOptions) {}

  /** Sets the floor from the fees at start and leaves out the signers under it (exit 2 when none can pay). */
  check(ctx: FeeContext): void {
    const plan = planFees(ctx, this.o.fees);
    const oneLiquidation = INITIAL_GAS_PER_POSITION * 2n * (plan.ok ? plan.maxFeePerGas : ctx.baseFeePerGas * 2n);
    this.floor = this.o.minSignerBalance > oneLiquidation ? this.o.minSignerBalance : oneLiquidation;
    excludeUnfunded(this.o.lanes, this.floor, this.o.log);
  }

  /** Reads the signer's balance again: under the floor it is skipped, above it takes work again. */
  async refresh(lane: NonceLane): Promise<void> {
    const balance = await this.o.client.getBalance({ address: lane.address });
    lane.balance = balance;
    if (balance < this.floor) this.markLow(lane, balance);
    else if (lane.lowBalance) {
      lane.lowBalance = false;
      this.o.log.info(
        { event: "signer_balance_ok", signer: lane.address, balanceWei: big(balance) },
        `signer ${lane.address} is funded again and takes work`,
      );
    }
  }

  markLow(lane: NonceLane, balance: bigint, error?: string): void {
    if (lane.lowBalance) return;
    lane.lowBalance = true;
    const others = this.o.lanes.filter((l) => !l.lowBalance).length;
    this.o.log.warn(
      {
        event: "signer_low_balance",
        signer: lane.address,
        balanceWei: big(balance),
        floorWei: big(this.floor),
        error,
        signersLeft: others,
      },
      `signer ${lane.address} is low on funds and is skipped; ${others} other signer(s) take over`,
    );
  }
}
