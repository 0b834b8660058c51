/** The cross-margin records in snapshots (format 2, src/state/recordSnapshot.ts). */
import { recordSnapshotCodec } from "../../state/recordSnapshot.ts";
import {
  CROSS_MARGIN_ADAPTER,
  type CrossMarginAccount,
  type CrossMarginGlobal,
  type CrossMarginMarket,
} from "./records.ts";

/** The cross-margin records, written to snapshots (format 2). Bumped when a record's shape changes. */
export const crossMarginSnapshots = recordSnapshotCodec<CrossMarginAccount, CrossMarginMarket, CrossMarginGlobal>({
  adapter: CROSS_MARGIN_ADAPTER,
  codec: 1,
  check: {
    account(a) {
      if (typeof a.id !== "bigint" || typeof a.collateral !== "bigint" || !(a.positions instanceof Map)) {
        throw new Error("not a cross-margin account record");
      }
    },
  },
});
