export type { Certificate } from "./certificates.ts";
export {
  CrossRiskEngine,
  type CrossRiskOptions,
  type Flagged,
  type TickResult,
  type TickStats,
  type Tier,
  type Verdict,
} from "./engine.ts";
export {
  type LinearAccount,
  type LinearMarket,
  LinearModel,
  type LinearModelOptions,
  type LinearPosition,
  linearAccount,
} from "./linearModel.ts";
