/**
 * Perp v2's margin model: the liquidation condition `getAccountValue(trader) < getMarginRequirementForLiquidation(trader)`
 * (ClearingHouse._isLiquidatable, ClearingHouse.sol:1112-1115) on the book, at a PriceView whose prices are, per
 * market (records.ts marketIds):
 *   priceId       AccountBalance.getMarkPrice(base): the reference price of an open market (a paused market's is its
 *                 paused index price, a closed one's its closed price: AccountBalance.sol:489-498);
 *   indexTwapId   BaseToken.getIndexPrice(interval), the interval the Exchange's funding uses (ClearingHouseConfig's
 *                 twapInterval, shortened to the time since the market's first swap: Exchange.sol:559-567); any
 *                 value at or above it keeps the bound sound;
 *   marketTwapId  Exchange.getSqrtMarketTwapX96(base, interval) as a WAD price (formatX96ToX10_18 of its square):
 *                 optional, makes the funding since the market's last update exact to a wei.
 *
 * Evaluations: exact when the funding is pinned to one integer (no tail since the market's last FundingUpdated, or
 * both TWAPs read) and the account has no open order and no non-settlement collateral; bounded otherwise; an account
 * with open orders is bounded open-ended on both sides (its pool balances, pending fees and liquidity funding move with
 * the pool's price and fee growth, which the book does not follow: its evaluation is the confirmation read, and its
 * sensitivity has horizon 0 so that it is evaluated again at every head).
 */
import { type Address, decodeFunctionResult, encodeFunctionData, type Hex } from "viem";
import type { Evaluation, MarginModel, PriceId, PriceView, ReadCall, Sensitivity } from "../types.ts";
import { accountBalanceAbi, clearingHouseAbi, exchangeAbi } from "./abi.ts";
import { type AccountFigures, accountFigures, UNBOUNDED } from "./figures.ts";
import { abs, FUNDING_PERIOD, Q96, RATIO_ONE } from "./math.ts";
import type { PerpV2Account, PerpV2BookView } from "./records.ts";

export interface PerpV2MarginOptions {
  /** Seconds the sensitivity's funding terms are valid for (default 600). */
  readonly horizon?: bigint;
  /** The contracts the confirmation reads go to. */
  readonly contracts: { readonly clearingHouse: Address; readonly accountBalance: Address; readonly exchange: Address };
}

/** What a confirmation read says: the chain's evaluation, and the pending funding it read (for checking the bound). */
export interface PerpV2Confirmation {
  readonly evaluation: Extract<Evaluation, { kind: "exact" }>;
  readonly pendingFunding: bigint | undefined;
}

export interface PerpV2MarginModel extends MarginModel<PerpV2Account> {
  /** The account value range, requirement and per-position values behind an evaluation. */
  figures(account: PerpV2Account, at: PriceView): AccountFigures;
  readonly confirm: {
    /** getAccountValue, getMarginRequirementForLiquidation, getAllPendingFundingPayment, to be read at one block. */
    reads(account: PerpV2Account): readonly ReadCall[];
    decode(account: PerpV2Account, results: readonly (Hex | undefined)[]): Evaluation;
    /** decode, with the pending funding the chain reported. */
    decodeDetail(account: PerpV2Account, results: readonly (Hex | undefined)[]): PerpV2Confirmation;
  };
}

/** The evaluation the figures give. */
export function evaluationOf(f: AccountFigures): Evaluation {
  if (f.kind === "unpriced") return f;
  const [lo, hi] = f.accountValue;
  if (lo === hi) return { kind: "exact", balance: lo, requirement: f.requirement };
  return {
    kind: "bounded",
    low: lo === -UNBOUNDED ? -UNBOUNDED : lo - f.requirement,
    high: hi === UNBOUNDED ? UNBOUNDED : hi - f.requirement,
    requirement: f.requirement,
  };
}

const EPSILON = 1 + 1e-9;
const WAD_NUMBER = 1e18;

/**
 * Sensitivity from the figures (docs/protocols.md 3.2): a long of s loses s·(1 − mm) per unit fall of its mark, a
 * short of a loses a·(1 + mm) per unit rise. Funding: the tail since the market's last update is re-weighted at every
 * call by the TWAPs of that moment (Exchange.sol:597-601), so from an evaluation at t̂ the pending funding of base b can
 * grow at most by |b|·r·[U·(t − t_last) − Û·(t̂ − t_last)]/86400 against the clamp's worst case, where U is the index
 * TWAP (its rise: `up` of the index id, k·(t̂ + horizon − t_last)) and time (`perSecond`, k·Û); where the evaluation
 * used a narrower rate than the clamp's worst (the market TWAP read), the difference over the tail is a jump that may
 * happen in the next second, carried in `rounding`, as are the contract's roundings (a position value, a funding
 * division, the requirement's ratio, and the account value's floor to the settlement token: 1e12 wei for USDC).
 */
function sensitivityOf(
  f: AccountFigures,
  account: PerpV2Account,
  book: Pick<PerpV2BookView, "markets" | "global">,
  at: PriceView,
  horizon: bigint,
): Sensitivity {
  const down = new Map<PriceId, number>();
  const up = new Map<PriceId, number>();
  const none: Sensitivity = { down, up, perSecond: 0, horizon: 0n, rounding: 0n };
  if (f.kind === "unpriced" || f.maker || f.otherCollateral || f.accountValue[0] === -UNBOUNDED) return none;
  const g = book.global;
  const mm = Number(g.mmRatio) / Number(RATIO_ONE);
  const r = Number(g.maxFundingRate) / Number(RATIO_ONE);
  const unit = 10n ** BigInt(18 - g.settlementDecimals);
  let perSecond = 0;
  let rounding = 2n * unit + 4n;
  for (const p of f.positions) {
    rounding += 8n;
    const s = Number(p.size) / WAD_NUMBER;
    if (p.size > 0n) down.set(p.priceId, (down.get(p.priceId) ?? 0) + s * (1 - mm) * EPSILON);
    else if (p.size < 0n) up.set(p.priceId, (up.get(p.priceId) ?? 0) - s * (1 + mm) * EPSILON);
    const m = book.markets.get(p.priceId);
    const position = account.positions.get(p.baseToken);
    if (!m || !position || position.takerSize === 0n || m.lastSettled === 0n) continue;
    const base = position.takerSize;
    const k = (Math.abs(Number(base)) / WAD_NUMBER) * (r / Number(FUNDING_PERIOD)) * EPSILON;
    const index = at.prices.get(m.indexTwapId);
    // no index TWAP: the funding from now on has no bound, evaluate again at the next head
    if (index === undefined && m.status === "open") return none;
    if (index !== undefined && m.status === "open") {
      perSecond += k * Number(index);
      const span = Number(p.tail + horizon);
      up.set(m.indexTwapId, (up.get(m.indexTwapId) ?? 0) + k * span);
    }
    if (p.rate && p.tail > 0n) {
      // the jump: the clamp's worst rate against the rate the bound used, over the tail
      const used = base > 0n ? p.rate.max - p.rate.hi : p.rate.lo + p.rate.max;
      rounding += (abs(base) * used * p.tail) / (Q96 * FUNDING_PERIOD) + 2n;
    }
  }
  return { down, up, perSecond, horizon, rounding };
}

/** The Perp v2 margin model over a book (read through `book()` at each call: the markets' funding moves). */
export function perpV2Margin(
  book: () => Pick<PerpV2BookView, "markets" | "global">,
  options: PerpV2MarginOptions,
): PerpV2MarginModel {
  const horizon = options.horizon ?? 600n;
  const { clearingHouse, accountBalance, exchange } = options.contracts;
  const decodeDetail = (account: PerpV2Account, results: readonly (Hex | undefined)[]): PerpV2Confirmation => {
    const [av, req, funding] = results;
    if (av === undefined || req === undefined) throw new Error(`confirmation of ${account.key}: a read failed`);
    const balance = decodeFunctionResult({ abi: clearingHouseAbi, functionName: "getAccountValue", data: av });
    const requirement = decodeFunctionResult({
      abi: accountBalanceAbi,
      functionName: "getMarginRequirementForLiquidation",
      data: req,
    });
    const pendingFunding =
      funding === undefined
        ? undefined
        : decodeFunctionResult({ abi: exchangeAbi, functionName: "getAllPendingFundingPayment", data: funding });
    return { evaluation: { kind: "exact", balance, requirement }, pendingFunding };
  };
  return {
    figures: (account, at) => accountFigures(account, book(), at),
    evaluate: (account, at) => evaluationOf(accountFigures(account, book(), at)),
    sensitivity: (account, at) => {
      const b = book();
      return sensitivityOf(accountFigures(account, b, at), account, b, at, horizon);
    },
    confirm: {
      reads: (account) => [
        {
          to: clearingHouse,
          data: encodeFunctionData({ abi: clearingHouseAbi, functionName: "getAccountValue", args: [account.trader] }),
        },
        {
          to: accountBalance,
          data: encodeFunctionData({
            abi: accountBalanceAbi,
            functionName: "getMarginRequirementForLiquidation",
            args: [account.trader],
          }),
        },
        {
          to: exchange,
          data: encodeFunctionData({
            abi: exchangeAbi,
            functionName: "getAllPendingFundingPayment",
            args: [account.trader],
          }),
        },
      ],
      decode: (account, results) => decodeDetail(account, results).evaluation,
      decodeDetail,
    },
  };
}
