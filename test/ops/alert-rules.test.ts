/**
 * docs/prometheus-alerts.yml: well formed (groups -> rules with alert, expr, for, labels.severity,
 * annotations.summary), and every perp_keeper_* metric an expression names is one the keeper exports. The YAML is
 * read with a small parser for the subset a rule file uses (no YAML library is a dependency of this package).
 */

import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { newStats } from "../../src/executor/types.ts";
import { LeftBehind } from "../../src/ops/leftBehind.ts";
import { keeperMetrics, type OpsSources } from "../../src/ops/metrics.ts";
import { Book } from "../../src/protocol/perpEngine/book.ts";

const RULES_PATH = new URL("../../docs/prometheus-alerts.yml", import.meta.url);
const SIGNER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8" as const;

type Yaml = string | Yaml[] | { [key: string]: Yaml };

interface Line {
  readonly indent: number;
  readonly text: string;
  readonly no: number;
}

/**
 * Block mappings, block sequences, plain and quoted scalars, `|` and `>` block scalars, comments: the subset of
 * YAML a Prometheus rule file needs. Anything else (flow collections, anchors, multi-line plain scalars) throws.
 */
function parseYaml(source: string): Yaml {
  const raw = source.split("\n");
  const lines: Line[] = [];
  raw.forEach((text, i) => {
    const stripped = stripComment(text).trimEnd();
    if (stripped.trim() === "") return;
    if (/\t/.test(text.slice(0, text.length - text.trimStart().length))) throw new Error(`line ${i + 1}: tab indent`);
    lines.push({ indent: text.length - text.trimStart().length, text: stripped.trim(), no: i + 1 });
  });
  let pos = 0;

  const scalar = (v: string, no: number): string => {
    if (v.startsWith('"')) {
      if (!v.endsWith('"') || v.length < 2) throw new Error(`line ${no}: unterminated string`);
      return JSON.parse(v) as string;
    }
    if (v.startsWith("'")) {
      if (!v.endsWith("'") || v.length < 2) throw new Error(`line ${no}: unterminated string`);
      return v.slice(1, -1).replaceAll("''", "'");
    }
    if (/^[[{&*!%@`]/.test(v)) throw new Error(`line ${no}: unsupported YAML: ${v}`);
    return v;
  };

  // a block scalar's lines are taken from the raw text (comments and blank lines are part of it)
  const blockScalar = (header: string, parentIndent: number, no: number): string => {
    const out: string[] = [];
    let i = no; // raw index of the line after the header
    let indent: number | undefined;
    for (; i < raw.length; i++) {
      const text = raw[i] as string;
      if (text.trim() === "") {
        out.push("");
        continue;
      }
      const n = text.length - text.trimStart().length;
      if (n <= parentIndent) break;
      indent ??= n;
      out.push(text.slice(indent));
    }
    while (pos < lines.length && (lines[pos] as Line).no <= i) pos++;
    while (out.length > 0 && out[out.length - 1] === "") out.pop();
    const body = header.startsWith(">") ? out.join(" ") : out.join("\n");
    return header.endsWith("-") ? body : `${body}\n`;
  };

  const value = (rest: string, indent: number, no: number): Yaml => {
    if (rest === "") {
      const next = lines[pos];
      if (!next || next.indent < indent || (next.indent === indent && !next.text.startsWith("- "))) return "";
      return node(next.indent);
    }
    if (/^[|>][-+]?$/.test(rest)) return blockScalar(rest, indent, no);
    return scalar(rest, no);
  };

  const mapping = (indent: number, first?: { text: string; no: number }): { [key: string]: Yaml } => {
    const out: { [key: string]: Yaml } = {};
    const entry = (text: string, no: number) => {
      const m = /^("[^"]*"|'[^']*'|[^:'"]+):(?:\s+(.*))?$/.exec(text);
      if (!m) throw new Error(`line ${no}: expected "key: value", got ${text}`);
      const key = scalar((m[1] as string).trim(), no);
      if (key in out) throw new Error(`line ${no}: duplicate key ${key}`);
      out[key] = value((m[2] ?? "").trim(), indent, no);
    };
    if (first) entry(first.text, first.no);
    while (pos < lines.length) {
      const line = lines[pos] as Line;
      if (line.indent < indent) break;
      if (line.indent > indent) throw new Error(`line ${line.no}: unexpected indent`);
      if (line.text.startsWith("- ")) break;
      pos++;
      entry(line.text, line.no);
    }
    return out;
  };

  const sequence = (indent: number): Yaml[] => {
    const out: Yaml[] = [];
    while (pos < lines.length) {
      const line = lines[pos] as Line;
      if (line.indent !== indent || !(line.text.startsWith("- ") || line.text === "-")) break;
      pos++;
      const rest = line.text.slice(1).trim();
      if (rest === "") out.push(node((lines[pos] as Line).indent));
      else if (/^("[^"]*"|'[^']*'|[^:'"]+):(\s|$)/.test(rest))
        out.push(mapping(indent + 2, { text: rest, no: line.no }));
      else out.push(scalar(rest, line.no));
    }
    return out;
  };

  const node = (indent: number): Yaml => {
    const line = lines[pos] as Line;
    return line.text.startsWith("- ") || line.text === "-" ? sequence(indent) : mapping(indent);
  };

  if (lines.length === 0) return "";
  const doc = node((lines[0] as Line).indent);
  if (pos < lines.length) throw new Error(`line ${(lines[pos] as Line).no}: unexpected content`);
  return doc;
}

/** Drops a `#` comment that is not inside quotes. */
function stripComment(text: string): string {
  let quote: string | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote) {
      if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === "#" && (i === 0 || /\s/.test(text[i - 1] as string))) return text.slice(0, i);
  }
  return text;
}

function sources(): OpsSources {
  return {
    adapter: "perp-engine",
    book: new Book(),
    watcher: { processedBlock: 0n, latestTick: undefined },
    executor: { stats: newStats(), pendingAttempts: [] },
    signers: [{ address: SIGNER, balance: 10n ** 18n }],
    startHead: 0n,
    backfilled: () => true,
    rewardsEarned: () => 0n,
    startedAt: performance.now(),
    atRiskDistance: 0.05,
  };
}

/** Every series name a scrape of the keeper can show, with the suffixes of counters, histograms and summaries. */
async function exportedNames(): Promise<Set<string>> {
  const names = new Set<string>();
  for (const m of await keeperMetrics(sources()).getMetricsAsJSON()) {
    const name = m.name;
    const type = String(m.type);
    names.add(name);
    if (type === "counter" && !name.endsWith("_total")) names.add(`${name}_total`);
    if (type === "histogram") for (const s of ["_bucket", "_sum", "_count"]) names.add(`${name}${s}`);
    if (type === "summary") for (const s of ["_sum", "_count"]) names.add(`${name}${s}`);
  }
  return names;
}

/** perp_keeper_* names an expression uses (label names, values and strings cannot start with one in a rule). */
function metricNames(expr: string): string[] {
  return [...new Set(expr.match(/\bperp_keeper_[a-zA-Z0-9_:]+/g) ?? [])];
}

/** The perp_keeper_* names of `expr` that the keeper does not export. */
function unknownMetrics(expr: string, exported: ReadonlySet<string>): string[] {
  return metricNames(expr).filter((n) => !exported.has(n));
}

interface Rule {
  readonly alert: string;
  readonly expr: string;
  readonly for?: string;
  readonly labels: { readonly severity: string };
  readonly annotations: { readonly summary: string; readonly runbook_url?: string };
}

function rulesOf(doc: Yaml): Rule[] {
  if (typeof doc !== "object" || Array.isArray(doc)) throw new Error("the rule file must be a mapping");
  const groups = doc.groups;
  if (!Array.isArray(groups) || groups.length === 0) throw new Error("groups must be a non-empty list");
  const out: Rule[] = [];
  for (const g of groups) {
    if (typeof g !== "object" || Array.isArray(g)) throw new Error("a group must be a mapping");
    if (typeof g.name !== "string" || g.name === "") throw new Error("a group needs a name");
    if (!Array.isArray(g.rules) || g.rules.length === 0) throw new Error(`group ${g.name}: rules must be a list`);
    for (const r of g.rules) out.push(r as unknown as Rule);
  }
  return out;
}

describe("the YAML subset parser", () => {
  it("reads mappings, sequences, quoted and block scalars, and comments", () => {
    const doc = parseYaml(
      [
        "# top",
        "groups:",
        "  - name: a # trailing",
        "    rules:",
        "      - alert: X",
        "        expr: |",
        "          sum(up)",
        "            > 1",
        '        summary: "a # b {{ $value }}"',
        "        other: 'it''s'",
        "      - alert: Y",
        "        expr: up == 0",
      ].join("\n"),
    );
    expect(doc).toEqual({
      groups: [
        {
          name: "a",
          rules: [
            { alert: "X", expr: "sum(up)\n  > 1\n", summary: "a # b {{ $value }}", other: "it's" },
            { alert: "Y", expr: "up == 0" },
          ],
        },
      ],
    });
  });

  it("refuses what it does not understand", () => {
    expect(() => parseYaml("groups: [a, b]")).toThrow(/unsupported/);
    expect(() => parseYaml("a: 1\n   b: 2")).toThrow(/indent/);
  });
});

describe("docs/prometheus-alerts.yml", () => {
  const rules = rulesOf(parseYaml(readFileSync(RULES_PATH, "utf8")));

  it("is a rule file: every rule has alert, expr, labels.severity and annotations.summary", () => {
    expect(rules.length).toBeGreaterThan(5);
    const names = new Set<string>();
    for (const r of rules) {
      expect(r.alert, JSON.stringify(r)).toMatch(/^[A-Za-z_][A-Za-z0-9_]*$/);
      expect(names.has(r.alert), `duplicate alert ${r.alert}`).toBe(false);
      names.add(r.alert);
      expect(typeof r.expr === "string" && r.expr.trim() !== "", `${r.alert}: expr`).toBe(true);
      if (r.for !== undefined) expect(r.for, `${r.alert}: for`).toMatch(/^(\d+(ms|s|m|h|d|w|y))+$/);
      expect(["critical", "warning", "info"], `${r.alert}: labels.severity`).toContain(r.labels?.severity);
      expect(typeof r.annotations?.summary === "string" && r.annotations.summary !== "", `${r.alert}: summary`).toBe(
        true,
      );
    }
  });

  it("names only metrics the keeper exports", async () => {
    const exported = await exportedNames();
    expect(exported.has("perp_keeper_liquidations_total")).toBe(true); // the registry is the keeper's
    const used = rules.flatMap((r) => metricNames(r.expr));
    expect(used.length).toBeGreaterThan(0);
    const unknown = rules.flatMap((r) => unknownMetrics(r.expr, exported).map((n) => `${r.alert}: ${n}`));
    expect(unknown).toEqual([]);
  });

  it("uses only the outcome and kind labels the keeper exports", () => {
    const outcomes = ["confirmed", "lost_to_competitor", "reverted", "cancelled", "skipped", "failed"];
    const kinds = ["sent", "replaced", "resent"];
    let checked = 0;
    for (const r of rules) {
      for (const [, label, values] of r.expr.matchAll(/\b(outcome|kind)=~?"([^"]*)"/g)) {
        for (const v of (values as string).split("|")) {
          checked++;
          expect(label === "outcome" ? outcomes : kinds, `${r.alert}: ${label}="${v}"`).toContain(v);
        }
      }
    }
    expect(checked).toBeGreaterThan(0); // the rules do filter on these labels
  });

  it("has a runbook entry in docs/operations.md for every alert", () => {
    const runbook = readFileSync(new URL("../../docs/operations.md", import.meta.url), "utf8");
    const headings = new Set([...runbook.matchAll(/^### (\S+)$/gm)].map((m) => m[1]));
    expect(rules.map((r) => r.alert).filter((a) => !headings.has(a))).toEqual([]);
  });

  it("the check fails on a metric that does not exist", async () => {
    const exported = await exportedNames();
    expect(unknownMetrics("rate(perp_keeper_oracle_age_seconds[5m]) > 0", exported)).toEqual([
      "perp_keeper_oracle_age_seconds",
    ]);
    expect(unknownMetrics("perp_keeper_gas_spent_wei_total_bucket > 0", exported)).toHaveLength(1);
    expect(unknownMetrics("perp_keeper_head_age_seconds > 60", exported)).toEqual([]);
  });
});

/**
 * Evaluates a rule of the form `metric op number (and metric op number)*` (unlabelled gauges) against one scrape of
 * the keeper's registry, as Prometheus would at one instant: the alert's value (the first operand's) when every
 * comparison holds, undefined (no alert) otherwise. Anything else throws.
 */
async function evaluate(expr: string, registry: ReturnType<typeof keeperMetrics>): Promise<number | undefined> {
  const values = new Map<string, number>();
  for (const m of await registry.getMetricsAsJSON()) {
    const v = m.values.find((x) => Object.keys(x.labels).length === 0);
    if (v) values.set(m.name, v.value);
  }
  let first: number | undefined;
  for (const part of expr.trim().split(/\s+and\s+/)) {
    const m = /^(perp_keeper_\w+)\s*(>=|<=|>|<|==)\s*([\d.e+]+)$/.exec(part.trim());
    if (!m) throw new Error(`not a simple comparison: ${part}`);
    const value = values.get(m[1] as string);
    if (value === undefined) throw new Error(`no series ${m[1]}`);
    const limit = Number(m[3]);
    const holds = {
      ">": value > limit,
      ">=": value >= limit,
      "<": value < limit,
      "<=": value <= limit,
      "==": value === limit,
    }[m[2] as ">"];
    if (!holds) return undefined;
    first ??= value;
  }
  return first;
}

describe("PerpKeeperLiquidatableLeftBehind", () => {
  const rule = rulesOf(parseYaml(readFileSync(RULES_PATH, "utf8"))).find(
    (r) => r.alert === "PerpKeeperLiquidatableLeftBehind",
  ) as Rule;

  function keeperWith(lb: LeftBehind) {
    return keeperMetrics({ ...sources(), leftBehind: () => lb.read() });
  }

  it("is a critical rule on the left-behind gauges", () => {
    expect(rule.labels.severity).toBe("critical");
    expect(metricNames(rule.expr).sort()).toEqual([
      "perp_keeper_liquidatable_oldest_age_blocks",
      "perp_keeper_liquidatable_oldest_age_seconds",
    ]);
  });

  it("fires on a position liquidatable for minutes and blocks, with its age in seconds as the value", async () => {
    let now = 0;
    const lb = new LeftBehind({ warnAfterBlocks: 5n, now: () => now });
    for (let b = 100n; b <= 110n; b++) {
      lb.update(b, [{ key: "0:0xabc", marketId: 0 }]);
      now += 12_000;
    }
    expect(await evaluate(rule.expr, keeperWith(lb))).toBe(132);
  });

  it("stays quiet with none, with a young one, and once it was liquidated", async () => {
    let now = 0;
    const lb = new LeftBehind({ warnAfterBlocks: 5n, now: () => now });
    expect(await evaluate(rule.expr, keeperWith(lb))).toBeUndefined();
    lb.update(100n, [{ key: "0:0xabc", marketId: 0 }]);
    now += 300_000; // a quiet chain: old in seconds, but no block has come to settle it
    lb.update(101n, [{ key: "0:0xabc", marketId: 0 }]);
    expect(await evaluate(rule.expr, keeperWith(lb))).toBeUndefined();
    for (let b = 102n; b <= 106n; b++) lb.update(b, [{ key: "0:0xabc", marketId: 0 }]);
    expect(await evaluate(rule.expr, keeperWith(lb))).toBe(300);
    lb.update(107n, []); // liquidated
    expect(await evaluate(rule.expr, keeperWith(lb))).toBeUndefined();
  });
});

describe("alert annotations", () => {
  const rules = rulesOf(parseYaml(readFileSync(RULES_PATH, "utf8")));

  it("show $value only through humanize, humanizeDuration, humanizePercentage or printf (no 5e+15 wei)", () => {
    const bare: string[] = [];
    for (const r of rules) {
      for (const m of r.annotations.summary.matchAll(/\{\{\s*\$value\s*(\|[^}]*)?\}\}/g)) {
        if (!/^\|\s*(humanize|humanizeDuration|humanizePercentage|printf)\b/.test((m[1] ?? "").trim())) {
          bare.push(`${r.alert}: ${m[0]}`);
        }
      }
      expect(r.annotations.summary, r.alert).not.toMatch(/\bwei\b/);
    }
    expect(bare).toEqual([]);
  });

  it("divide by nothing that can be zero while the numerator is not (no +Inf%)", () => {
    const ratio = rules.find((r) => r.alert === "PerpKeeperLiquidationFailureRatio") as Rule;
    // refused broadcasts (failed) are counted in the denominator too: it covers every failure of the numerator
    expect(ratio.expr).toMatch(/\/\s*\([\s\S]*kind="sent"[\s\S]*\+[\s\S]*outcome="failed"[\s\S]*\)\s*>/);
  });

  it("link their runbook entry under a configurable base: {{ $externalLabels.runbook_base }}#<alert>", () => {
    const runbook = readFileSync(new URL("../../docs/operations.md", import.meta.url), "utf8");
    // GitHub's anchors: the heading lower-cased
    const anchors = new Set([...runbook.matchAll(/^### (\S+)$/gm)].map((m) => (m[1] as string).toLowerCase()));
    for (const r of rules) {
      const link = r.annotations.runbook_url;
      expect(link, r.alert).toBe(`{{ $externalLabels.runbook_base }}#${r.alert.toLowerCase()}`);
      expect(anchors.has(r.alert.toLowerCase()), r.alert).toBe(true);
    }
    const rulesText = readFileSync(RULES_PATH, "utf8");
    expect(rulesText).toMatch(/external_labels:\n#\s+runbook_base: https:\/\//); // how to set it, in the file
  });
});

describe("deploy/grafana-dashboard.json", () => {
  const dashboard = JSON.parse(readFileSync(new URL("../../deploy/grafana-dashboard.json", import.meta.url), "utf8"));
  const exprs: string[] = (dashboard.panels as { targets?: { expr: string }[] }[]).flatMap((p) =>
    (p.targets ?? []).map((t) => t.expr),
  );

  it("has panels with Prometheus expressions, the left-behind gauges and the latency histograms among them", () => {
    expect(exprs.length).toBeGreaterThan(10);
    const all = exprs.join("\n");
    for (const name of [
      "perp_keeper_liquidatable_positions",
      "perp_keeper_liquidatable_oldest_age_seconds",
      "perp_keeper_head_behind",
      "perp_keeper_head_to_tick_seconds_bucket",
      "perp_keeper_tick_to_broadcast_seconds_bucket",
      "perp_keeper_broadcast_to_inclusion_seconds_bucket",
      "perp_keeper_pending_update_to_broadcast_seconds_bucket",
    ]) {
      expect(all).toContain(name);
    }
  });

  it("names only metrics the keeper exports in every expression", async () => {
    const exported = await exportedNames();
    for (const expr of exprs) expect(metricNames(expr).length, expr).toBeGreaterThan(0);
    expect(exprs.flatMap((e) => unknownMetrics(e, exported))).toEqual([]);
    // the instance variable's query too
    const variables = dashboard.templating.list as { query?: string }[];
    expect(variables.flatMap((v) => unknownMetrics(v.query ?? "", exported))).toEqual([]);
  });
});

describe("deploy/alertmanager.yml", () => {
  const config = parseYaml(readFileSync(new URL("../../deploy/alertmanager.yml", import.meta.url), "utf8")) as {
    route: { receiver: string; routes?: { receiver: string }[] };
    receivers: { name: string; webhook_configs?: { url?: string; url_file?: string; send_resolved?: string }[] }[];
  };

  it("routes every alert to a receiver it defines, a webhook that also says when an alert resolves", () => {
    const names = new Set(config.receivers.map((r) => r.name));
    expect(names.has(config.route.receiver)).toBe(true);
    for (const r of config.route.routes ?? []) expect(names.has(r.receiver)).toBe(true);
    const hook = config.receivers.find((r) => r.name === config.route.receiver)?.webhook_configs?.[0];
    expect(hook?.url_file ?? hook?.url).toBeTruthy();
    expect(hook?.send_resolved).toBe("true");
  });
});
