/**
 * Price-update bytes that the devnet's MockPyth (npm @pythnetwork/pyth-sdk-solidity, MockPyth.sol) accepts, encoded
 * in TypeScript exactly as its `createPriceFeedUpdateData` does: `abi.encode(PythStructs.PriceFeed, uint64
 * prevPublishTime)`, where PriceFeed is `(bytes32 id, Price price, Price emaPrice)` and Price is `(int64 price, uint64
 * conf, int32 expo, uint256 publishTime)`; the EMA price takes the same expo and publish time. MockPyth's
 * `updatePriceFeeds` decodes each entry as a PriceFeed (the trailing word is ignored there), its
 * `parsePriceFeedUpdates` as (PriceFeed, uint64). Not the real Pyth wire format (no Wormhole proof): devnet only.
 *
 * The MockPyth artifact is read at run time from the npm package (its prebuilt `build/MockPyth_sol_MockPyth.bin` and
 * `abis/MockPyth.json`), never copied into this repository.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { type Abi, decodeAbiParameters, encodeAbiParameters, type Hex, parseAbi } from "viem";

/** One price as MockPyth stores it (fixed-point: value x 10^expo). */
export interface PythPriceFeedUpdate {
  /** 32-byte feed id, 0x-prefixed. */
  readonly id: Hex;
  readonly price: bigint;
  readonly conf: bigint;
  readonly expo: number;
  /** Defaults to price and conf. */
  readonly emaPrice?: bigint;
  readonly emaConf?: bigint;
  /** Unix seconds. */
  readonly publishTime: bigint;
  /** Unix seconds of the feed's previous update (default publishTime - 1). */
  readonly prevPublishTime?: bigint;
}

const PRICE_COMPONENTS = [
  { name: "price", type: "int64" },
  { name: "conf", type: "uint64" },
  { name: "expo", type: "int32" },
  { name: "publishTime", type: "uint256" },
] as const;

/** The ABI parameters of one MockPyth update: `(PriceFeed, uint64 prevPublishTime)`. */
export const MOCK_PYTH_UPDATE_PARAMS = [
  {
    name: "priceFeed",
    type: "tuple",
    components: [
      { name: "id", type: "bytes32" },
      { name: "price", type: "tuple", components: PRICE_COMPONENTS },
      { name: "emaPrice", type: "tuple", components: PRICE_COMPONENTS },
    ],
  },
  { name: "prevPublishTime", type: "uint64" },
] as const;

/** The bytes MockPyth.createPriceFeedUpdateData returns for the same arguments. */
export function encodeMockPythUpdate(update: PythPriceFeedUpdate): Hex {
  const publishTime = update.publishTime;
  return encodeAbiParameters(MOCK_PYTH_UPDATE_PARAMS, [
    {
      id: update.id,
      price: { price: update.price, conf: update.conf, expo: update.expo, publishTime },
      emaPrice: {
        price: update.emaPrice ?? update.price,
        conf: update.emaConf ?? update.conf,
        expo: update.expo,
        publishTime,
      },
    },
    update.prevPublishTime ?? (publishTime > 0n ? publishTime - 1n : 0n),
  ]);
}

/** The inverse of encodeMockPythUpdate (for tests and for a keeper that wants to read its own bytes). */
export function decodeMockPythUpdate(data: Hex): Required<PythPriceFeedUpdate> {
  const [feed, prevPublishTime] = decodeAbiParameters(MOCK_PYTH_UPDATE_PARAMS, data);
  return {
    id: feed.id,
    price: feed.price.price,
    conf: feed.price.conf,
    expo: feed.price.expo,
    emaPrice: feed.emaPrice.price,
    emaConf: feed.emaPrice.conf,
    publishTime: feed.price.publishTime,
    prevPublishTime,
  };
}

/** The part of MockPyth (IPyth) the devnet, keeper and tests call, typed for viem. */
export const mockPythAbi = parseAbi([
  "constructor(uint256 _validTimePeriod, uint256 _singleUpdateFeeInWei)",
  "function getUpdateFee(bytes[] updateData) view returns (uint256 feeAmount)",
  "function updatePriceFeeds(bytes[] updateData) payable",
  "function parsePriceFeedUpdates(bytes[] updateData, bytes32[] priceIds, uint64 minPublishTime, uint64 maxPublishTime) payable returns ((bytes32 id, (int64 price, uint64 conf, int32 expo, uint256 publishTime) price, (int64 price, uint64 conf, int32 expo, uint256 publishTime) emaPrice)[] feeds)",
  "function getPriceUnsafe(bytes32 id) view returns ((int64 price, uint64 conf, int32 expo, uint256 publishTime) price)",
  "function getPriceNoOlderThan(bytes32 id, uint256 age) view returns ((int64 price, uint64 conf, int32 expo, uint256 publishTime) price)",
  "function priceFeedExists(bytes32 id) view returns (bool)",
  "function createPriceFeedUpdateData(bytes32 id, int64 price, uint64 conf, int32 expo, int64 emaPrice, uint64 emaConf, uint64 publishTime, uint64 prevPublishTime) pure returns (bytes priceFeedData)",
  "event PriceFeedUpdate(bytes32 indexed id, uint64 publishTime, int64 price, uint64 conf)",
  "error InsufficientFee()",
  "error PriceFeedNotFound()",
  "error PriceFeedNotFoundWithinRange()",
  "error StalePrice()",
]);

export interface MockPythArtifact {
  /** The package it comes from, with its installed version. */
  readonly source: string;
  readonly abi: Abi;
  /** Creation code; constructor `(uint256 validTimePeriod, uint256 singleUpdateFeeInWei)`. */
  readonly bytecode: Hex;
}

const require = createRequire(import.meta.url);
const PACKAGE = "@pythnetwork/pyth-sdk-solidity";
let artifact: MockPythArtifact | undefined;

/** MockPyth's full ABI and creation code, from the installed npm package (a devDependency). */
export function mockPythArtifact(): MockPythArtifact {
  if (artifact) return artifact;
  let manifestPath: string;
  try {
    manifestPath = require.resolve(`${PACKAGE}/package.json`);
  } catch {
    throw new Error(`${PACKAGE} is not installed: run npm ci (it is a devDependency)`);
  }
  const root = dirname(manifestPath);
  const version = (JSON.parse(readFileSync(manifestPath, "utf8")) as { version: string }).version;
  const bin = readFileSync(join(root, "build", "MockPyth_sol_MockPyth.bin"), "utf8").trim();
  const abi = JSON.parse(readFileSync(join(root, "abis", "MockPyth.json"), "utf8")) as Abi;
  artifact = { source: `${PACKAGE}@${version}`, abi, bytecode: `0x${bin.replace(/^0x/, "")}` as Hex };
  return artifact;
}
