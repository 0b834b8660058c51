/**
 * Perp v2's status view (`perp-keeper status`): the accounts nearest to maintenance margin at the head, and the
 * liquidator's collateral and inventory (what `perp-keeper collateral status` shows).
 *
 * The book (rebuilt from the deployment's events) ranks the accounts by a lower bound of their margin ratio (account
 * value / total position value, liquidatable below mmRatio): its figures are exact but for the pending funding, which
 * they bound, and a maker's pool share, which they leave open. The rows shown are the chain's own figures at the head
 * (ClearingHouse.getAccountValue, AccountBalance.getTotalAbsPositionValue, getMarginRequirementForLiquidation), read
 * for the lowest bounds until no account left unread can be nearer than the last row: the rows are the exact nearest.
 */
import { type Address, decodeFunctionResult, encodeFunctionData, formatUnits, getAddress, type Hex } from "viem";
import { readPinned } from "../../chain/pinnedReads.ts";
import type { StatusView } from "../../ops/statusCommand.ts";
import { renderTable } from "../../ops/table.ts";
import { RecordBook } from "../../state/recordBook.ts";
import { ViewPrices } from "../../watcher/viewPrices.ts";
import { Watcher } from "../../watcher/watcher.ts";
import type { PriceView, ReadCall } from "../types.ts";
import { accountBalanceAbi, clearingHouseAbi } from "./abi.ts";
import { perpV2PriceMarkets, perpV2Rules } from "./adapter.ts";
import { quote, readCollateral, renderCollateral } from "./collateralFigures.ts";
import { discoverPerpV2, type PerpV2Contracts, ratioPercent } from "./discover.ts";
import { type PerpV2Event, perpV2Decoder, type TimedChainLog } from "./events.ts";
import { accountFigures, UNBOUNDED } from "./figures.ts";
import { DUST, RATIO_ONE } from "./math.ts";
import { perpV2Deployment } from "./prices.ts";
import type { PerpV2Account, PerpV2BookView, PerpV2Global, PerpV2Market } from "./records.ts";

/** An account's figures as the chain gives them at one block (18 decimals). */
export interface ChainFigures {
  readonly accountValue: bigint;
  readonly totalAbsPositionValue: bigint;
  readonly requirement: bigint;
}

/** An account to rank: a lower bound of its margin ratio by the book (undefined: the book cannot bound it). */
export interface Candidate {
  readonly key: string;
  readonly bound: number | undefined;
}

/**
 * The accounts the book can rank (lower bound of the margin ratio), and those it cannot (a maker, an unbounded
 * funding, a market without a price): every account that holds something, but `exclude` (the liquidator).
 */
export function candidates(book: PerpV2BookView, view: PriceView, exclude?: string): Candidate[] {
  const out: Candidate[] = [];
  for (const account of book.accounts.values()) {
    if (account.key === exclude) continue;
    const held = [...account.positions.values()].some((p) => p.orders.length > 0 || p.takerSize !== 0n);
    if (!held) continue;
    const f = accountFigures(account, book, view);
    if (f.kind === "unpriced" || f.accountValue[0] === -UNBOUNDED) {
      out.push({ key: account.key, bound: undefined });
    } else if (f.totalAbsPositionValue > 0n) {
      out.push({ key: account.key, bound: Number(f.accountValue[0]) / Number(f.totalAbsPositionValue) });
    }
  }
  return out;
}

/** a's margin ratio is below b's (exact: cross-multiplied; both have positions). */
function nearer(a: ChainFigures, b: ChainFigures): boolean {
  return a.accountValue * b.totalAbsPositionValue < b.accountValue * a.totalAbsPositionValue;
}

/**
 * The `top` accounts with the lowest margin ratio, exactly, by the chain's figures (`read`), nearest first; reading
 * the fewest: first every account the book cannot bound and the `top` lowest bounds, then any whose bound is below
 * the last row so far, until none is. An account without positions on chain (or whose read failed) is left out.
 */
export async function nearestToMaintenance(
  all: readonly Candidate[],
  top: number,
  read: (keys: readonly string[]) => Promise<ReadonlyMap<string, ChainFigures>>,
): Promise<{ key: string; figures: ChainFigures }[]> {
  const bounded = all
    .filter((c): c is Candidate & { bound: number } => c.bound !== undefined)
    .sort((a, b) => a.bound - b.bound);
  let rows: { key: string; figures: ChainFigures }[] = [];
  let next = [
    ...all.filter((c) => c.bound === undefined).map((c) => c.key),
    ...bounded.slice(0, top).map((c) => c.key),
  ];
  let unread = bounded.slice(top);
  while (next.length > 0) {
    const figures = await read(next);
    for (const key of next) {
      const f = figures.get(key);
      if (f && f.totalAbsPositionValue > 0n) rows.push({ key, figures: f });
    }
    rows.sort((a, b) =>
      nearer(a.figures, b.figures) ? -1 : nearer(b.figures, a.figures) ? 1 : a.key < b.key ? -1 : 1,
    );
    rows = rows.slice(0, top);
    const last = rows.length < top ? undefined : rows[rows.length - 1]?.figures;
    const threshold = last === undefined ? Number.POSITIVE_INFINITY : ratioOf(last);
    // a bound at or below the last row's ratio may hide an account nearer than it (a float's rounding included)
    const cut = unread.findIndex((c) => c.bound > threshold + Math.abs(threshold) * 1e-9 + 1e-12);
    next = (cut < 0 ? unread : unread.slice(0, cut)).map((c) => c.key);
    unread = cut < 0 ? [] : unread.slice(cut);
  }
  return rows;
}

const ratioOf = (f: ChainFigures) => Number(f.accountValue) / Number(f.totalAbsPositionValue);

const READS_AT_ONCE = 300;

/** The chain's figures of these traders, pinned to the block (three reads each; a failed one leaves it out). */
async function readFigures(
  client: Parameters<typeof readPinned>[0],
  contracts: Pick<PerpV2Contracts, "clearingHouse" | "accountBalance">,
  traders: readonly string[],
  blockHash: Hex,
  multicall3: Hex | undefined,
): Promise<Map<string, ChainFigures>> {
  const callsOf = (trader: Address): ReadCall[] => [
    {
      to: contracts.clearingHouse,
      data: encodeFunctionData({ abi: clearingHouseAbi, functionName: "getAccountValue", args: [trader] }),
    },
    {
      to: contracts.accountBalance,
      data: encodeFunctionData({ abi: accountBalanceAbi, functionName: "getTotalAbsPositionValue", args: [trader] }),
    },
    {
      to: contracts.accountBalance,
      data: encodeFunctionData({
        abi: accountBalanceAbi,
        functionName: "getMarginRequirementForLiquidation",
        args: [trader],
      }),
    },
  ];
  const out = new Map<string, ChainFigures>();
  const per = Math.max(1, Math.floor(READS_AT_ONCE / 3));
  for (let i = 0; i < traders.length; i += per) {
    const chunk = traders.slice(i, i + per);
    const results = await readPinned(
      client,
      chunk.flatMap((t) => callsOf(t as Address)),
      blockHash,
      multicall3,
    );
    chunk.forEach((trader, j) => {
      const [av, abs, req] = results.slice(3 * j, 3 * j + 3);
      if (av?.status !== "fulfilled" || abs?.status !== "fulfilled" || req?.status !== "fulfilled") return;
      out.set(trader, {
        accountValue: decodeFunctionResult({ abi: clearingHouseAbi, functionName: "getAccountValue", data: av.value }),
        totalAbsPositionValue: decodeFunctionResult({
          abi: accountBalanceAbi,
          functionName: "getTotalAbsPositionValue",
          data: abs.value,
        }),
        requirement: decodeFunctionResult({
          abi: accountBalanceAbi,
          functionName: "getMarginRequirementForLiquidation",
          data: req.value,
        }),
      });
    });
  }
  return out;
}

/** A size (18 decimals) shown with at most 6 decimals, truncated. */
function size(x18: bigint): string {
  const abs = x18 < 0n ? -x18 : x18;
  return formatUnits(abs - (abs % 10n ** 12n), 18);
}

/** What an account holds, by the book: "vETH long 4.41, vBTC short 0.1", a maker's markets said so. */
export function holdings(account: PerpV2Account, names: ReadonlyMap<string, string>): string {
  return [...account.positions.values()]
    .flatMap((p) => {
      const name = names.get(p.baseToken.toLowerCase()) ?? p.baseToken;
      const maker = p.orders.length > 0 ? " (maker)" : "";
      if (p.takerSize <= -DUST || p.takerSize >= DUST) {
        return [`${name} ${p.takerSize > 0n ? "long" : "short"} ${size(p.takerSize)}${maker}`];
      }
      return maker ? [`${name}${maker}`] : [];
    })
    .join(", ");
}

/** Each market's name (vETH) by its base token, lower case. */
export function marketNames(contracts: Pick<PerpV2Contracts, "markets">): Map<string, string> {
  return new Map(contracts.markets.map((m) => [m.baseToken.toLowerCase(), m.name]));
}

/** The rows as a table: the chain's figures at the settlement token's precision. */
export function renderAccounts(
  rows: readonly { key: string; figures: ChainFigures }[],
  book: PerpV2BookView,
  contracts: PerpV2Contracts,
  names: ReadonlyMap<string, string> = marketNames(contracts),
): string {
  return renderTable(
    ["trader", "positions", "margin ratio", "account value", "maint. req.", "room"],
    rows.map(({ key, figures: f }) => {
      const account = book.accounts.get(key);
      return [
        getAddress(key),
        account ? holdings(account, names) : "",
        ratioPercent((f.accountValue * RATIO_ONE) / f.totalAbsPositionValue),
        quote(f.accountValue, contracts),
        quote(f.requirement, contracts),
        quote(f.accountValue - f.requirement, contracts),
      ];
    }),
  );
}

/** The status view: the deployment indexed up to the head, its nearest accounts and the liquidator's figures. */
export const perpV2Status: StatusView = async ({ config, connection, log, top }) => {
  const exchange = config.exchange;
  if (exchange.adapter !== "perp-v2") throw new Error("perpV2Status needs exchange.adapter perp-v2");
  const client = connection.publicClient;
  const head = await client.getBlock({ blockTag: "latest" });
  const discovered = await discoverPerpV2(client, connection.engine, {
    blockHash: head.hash ?? undefined,
    deployBlock: BigInt(exchange.deployBlock),
    maxLogRange: config.keeper.maxLogRange,
    logConcurrency: config.keeper.logConcurrency,
  });
  const { contracts, global } = perpV2Deployment(discovered);
  const book = new RecordBook<PerpV2Account, PerpV2Market, PerpV2Global, PerpV2Event>(perpV2Rules(global));
  const decoder = perpV2Decoder(contracts);
  const watcherLog = log.child({ component: "watcher" });
  const watcher = new Watcher({
    client,
    addresses: decoder.addresses,
    fromBlock: BigInt(exchange.deployBlock),
    book,
    prices: new ViewPrices({
      markets: () => perpV2PriceMarkets(book, contracts.accountBalance),
      log: watcherLog,
      multicall3: connection.multicall3,
    }),
    log: watcherLog,
    decode: (l) => decoder.decode(l as readonly TimedChainLog[]),
    removesListing: (applied) => applied.changes.some((c) => c.type === "market" && c.before === undefined),
    onEvent: (event) => book.apply(event),
    onRollback: (changes, cursor) => book.rewind(changes, cursor),
    onTick: () => {},
    onReorg: () => book.reset(),
    endpoints: connection.endpoints,
    logsClient: connection.logsClient,
    maxLogRange: BigInt(config.keeper.maxLogRange),
    pollIntervalMs: config.keeper.pollIntervalMs,
    reorgDepth: BigInt(config.keeper.reorgDepth),
    logConcurrency: config.keeper.logConcurrency,
  });
  await watcher.backfill();
  await watcher.poll();
  const tick = watcher.latestTick;
  if (!tick) throw new Error("no block to read prices at");
  const blockHash = tick.blockHash ?? (await client.getBlock({ blockNumber: tick.blockNumber })).hash;
  const liquidator = exchange.liquidator?.toLowerCase();
  const all = candidates(book, tick, liquidator);
  const names = marketNames(discovered);
  const rows = await nearestToMaintenance(all, top, (keys) =>
    readFigures(client, contracts, keys, blockHash, connection.multicall3),
  );
  const prices = [...book.markets.values()]
    .map((m) => {
      const price = tick.prices.get(m.priceId);
      const name = names.get(m.baseToken.toLowerCase()) ?? m.name;
      return `${name} ${price === undefined ? "no valid price" : quote(price, discovered)}`;
    })
    .join(", ");
  const mm = ratioPercent(global.mmRatio);
  return [
    `${config.network.name} block ${tick.blockNumber}: ${all.length} accounts with positions in ${book.markets.size} markets (${prices})`,
    `the ${rows.length} nearest to maintenance (margin ratio: account value / total position value; liquidatable below mmRatio ${mm}):`,
    renderAccounts(rows, book, discovered, names),
    "",
    exchange.liquidator
      ? renderCollateral(
          await readCollateral(client, discovered, exchange.liquidator, tick.blockNumber),
          discovered,
          exchange.minFreeCollateral,
        )
      : "no exchange.liquidator: each signer liquidates from its own Vault account (perp-keeper collateral status)",
  ].join("\n");
};
