import { readFileSync } from "node:fs";
import { type Hex, isHex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { z } from "zod";
import { ConfigError } from "./errors.ts";
import { type KeeperConfig, keeperConfigSchema } from "./schema.ts";

export { ConfigError } from "./errors.ts";

/** Reads and validates a config file; every problem is named with its path in the file. */
export function loadConfigFile(path: string): KeeperConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new ConfigError(`cannot read config ${path}: ${(error as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`config ${jsonErrorAt(path, text, error as Error)}`);
  }
  return parseConfig(raw, path);
}

/**
 * Where a JSON syntax error is, as `file:line:column: message`, with the offending line and a caret under the
 * column (V8 says only "at position N", or "line L column C").
 */
export function jsonErrorAt(path: string, text: string, error: Error): string {
  const message = error.message;
  let offset: number | undefined;
  const position = /position (\d+)/.exec(message);
  const lineColumn = /line (\d+) column (\d+)/.exec(message);
  if (position) offset = Number(position[1]);
  else if (lineColumn) {
    const lines = text.split("\n");
    offset =
      lines.slice(0, Number(lineColumn[1]) - 1).reduce((n, l) => n + l.length + 1, 0) + Number(lineColumn[2]) - 1;
  } else if (/end of JSON input/i.test(message)) offset = text.length;
  if (offset === undefined) return `${path}: not valid JSON (${message.split("\n")[0]?.slice(0, 80)})`;
  const before = text.slice(0, offset);
  const line = before.split("\n").length;
  const column = offset - before.lastIndexOf("\n");
  const source = text.split("\n")[line - 1] ?? "";
  const reason = message.replace(/\s*(in JSON )?at position \d+.*$/s, "").replace(/ \(line \d+ column \d+\)$/, "");
  return `${path}:${line}:${column}: ${reason}\n  ${source}\n  ${" ".repeat(Math.max(0, column - 1))}^`;
}

export function parseConfig(raw: unknown, source = "config"): KeeperConfig {
  const result = keeperConfigSchema.safeParse(raw);
  if (!result.success) {
    const problems = result.error.issues.map((i) => `  ${i.path.join(".") || "(root)"}: ${i.message}`);
    throw new ConfigError(`invalid ${source}:\n${problems.join("\n")}`);
  }
  return result.data;
}

/** What the keeper takes from the environment (after dotenv). */
export interface KeeperEnv {
  readonly rpcUrl: string | undefined;
  /** RPC_WS_URL: a WebSocket endpoint to subscribe to new heads. */
  readonly wsUrl: string | undefined;
  readonly configPath: string | undefined;
  /** KEEPER_STATE_DIR: overrides keeper.stateDir (a container's volume, a systemd StateDirectory). */
  readonly stateDir: string | undefined;
  /** The signers' keys (KEEPER_PRIVATE_KEYS, or KEEPER_PRIVATE_KEY); never logged, never in an error message. */
  readonly privateKeys: readonly Hex[];
  readonly dryRun: boolean | undefined;
  readonly runSeconds: number | undefined;
  readonly logLevel: string;
  readonly logFormat: "json" | "pretty" | undefined;
  /** HERMES_URLS (comma-separated): the pull oracle's price service; a URL may hold an API key, never logged whole. */
  readonly hermesUrls: readonly string[] | undefined;
}

/** JSON-RPC over HTTP(S): the transport the keeper uses. */
export const httpUrl = z.url({ protocol: /^https?$/ });

function isValidKey(key: Hex): boolean {
  try {
    privateKeyToAccount(key);
    return true;
  } catch {
    return false;
  }
}

/** A URL without what may carry a provider's API key (path, query, credentials), for error messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname.length > 1 || u.search ? "/…" : ""}`;
  } catch {
    return "(not a URL)";
  }
}

/** Every URL in a text (an error message, a child's stderr) redacted as redactUrl does. */
export function redactUrls(text: string): string {
  return text.replace(/\b[a-z][a-z0-9+.-]*:\/\/[^\s"'<>()[\]{},;]+/gi, (url) => {
    const redacted = redactUrl(url.replace(/[.:]+$/, ""));
    return redacted === "(not a URL)" ? "(a URL)" : redacted + (url.match(/[.:]+$/)?.[0] ?? "");
  });
}

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

export function readEnv(env: NodeJS.ProcessEnv = process.env): KeeperEnv {
  const privateKeys = readKeys(env);
  if (env.RPC_URL?.trim() && env.RPC_URLS?.trim()) throw new ConfigError("set RPC_URL or RPC_URLS, not both");
  const rpcName = env.RPC_URLS?.trim() ? "RPC_URLS" : "RPC_URL";
  const rpcUrl = env.RPC_URLS?.trim() || env.RPC_URL?.trim() || undefined;
  for (const url of rpcUrl?.split(",").map((u) => u.trim()) ?? []) {
    if (!httpUrl.safeParse(url).success) {
      throw new ConfigError(`${rpcName} must be http(s) URLs (comma-separated), got "${redactUrl(url)}"`);
    }
  }
  const wsUrl = env.RPC_WS_URL?.trim() || undefined;
  if (wsUrl !== undefined && !z.url({ protocol: /^wss?$/ }).safeParse(wsUrl).success) {
    throw new ConfigError(`RPC_WS_URL must be a ws(s) URL, got "${redactUrl(wsUrl)}"`);
  }
  const hermesUrls = env.HERMES_URLS?.split(",")
    .map((u) => u.trim())
    .filter((u) => u !== "");
  for (const url of hermesUrls ?? []) {
    if (!httpUrl.safeParse(url).success) {
      throw new ConfigError(`HERMES_URLS must be http(s) URLs (comma-separated), got "${redactUrl(url)}"`);
    }
  }
  const logLevel = env.LOG_LEVEL?.trim() || "info";
  if (!LOG_LEVELS.includes(logLevel)) throw new ConfigError(`LOG_LEVEL must be one of ${LOG_LEVELS.join(", ")}`);
  const logFormat = env.LOG_FORMAT?.trim() || undefined;
  if (logFormat !== undefined && logFormat !== "json" && logFormat !== "pretty") {
    throw new ConfigError(`LOG_FORMAT must be "json" or "pretty", got "${logFormat}"`);
  }
  return {
    rpcUrl,
    wsUrl,
    configPath: env.KEEPER_CONFIG?.trim() || undefined,
    stateDir: env.KEEPER_STATE_DIR?.trim() || undefined,
    privateKeys,
    dryRun: parseBool("KEEPER_DRY_RUN", env.KEEPER_DRY_RUN),
    runSeconds: parseSeconds("KEEPER_RUN_SECONDS", env.KEEPER_RUN_SECONDS),
    logLevel,
    logFormat,
    hermesUrls: hermesUrls && hermesUrls.length > 0 ? hermesUrls : undefined,
  };
}

/** KEEPER_PRIVATE_KEYS (comma-separated) or KEEPER_PRIVATE_KEY; each checked, none ever echoed. */
function readKeys(env: NodeJS.ProcessEnv): Hex[] {
  const many = env.KEEPER_PRIVATE_KEYS?.trim();
  const one = env.KEEPER_PRIVATE_KEY?.trim();
  if (many && one) throw new ConfigError("set KEEPER_PRIVATE_KEYS or KEEPER_PRIVATE_KEY, not both");
  const name = many ? "KEEPER_PRIVATE_KEYS" : "KEEPER_PRIVATE_KEY";
  const keys = (many ? many.split(",") : one ? [one] : []).map((k) => k.trim());
  keys.forEach((key, i) => {
    if (!(isHex(key) && key.length === 66 && isValidKey(key))) {
      const which = many ? ` (entry ${i + 1} of ${keys.length})` : "";
      throw new ConfigError(
        `${name}${which} must be a valid 0x-prefixed 32-byte secp256k1 private key (value not shown)`,
      );
    }
  });
  const addresses = keys.map((k) => privateKeyToAccount(k as Hex).address);
  if (new Set(addresses).size !== addresses.length) throw new ConfigError(`${name} lists the same key twice`);
  return keys as Hex[];
}

function parseBool(name: string, value: string | undefined): boolean | undefined {
  const v = value?.trim().toLowerCase();
  if (!v) return undefined;
  if (["1", "true", "yes"].includes(v)) return true;
  if (["0", "false", "no"].includes(v)) return false;
  throw new ConfigError(`${name} must be true or false, got "${value}"`);
}

export function parseSeconds(name: string, value: string | undefined): number | undefined {
  const v = value?.trim();
  if (!v) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0)
    throw new ConfigError(`${name} must be a positive number of seconds, got "${value}"`);
  return n;
}
