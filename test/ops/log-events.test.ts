import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sources(path) : path.endsWith(".ts") ? [path] : [];
  });
}

const OPEN = new Set(["{", "(", "["]);
const CLOSE = new Set(["}", ")", "]"]);
const NAME = /^[a-zA-Z_]\w*$/;

/**
 * The top-level keys of the object literal around index `at` (where `event: "..."` stands): `key: value` and
 * shorthand `key`, never a spread. Strings and template literals are skipped whole.
 */
function keysAround(text: string, at: number): string[] {
  let start = at;
  for (let depth = 0; start >= 0; start--) {
    const c = text[start] as string;
    if (CLOSE.has(c)) depth++;
    else if (OPEN.has(c)) {
      if (depth === 0) break;
      depth--;
    }
  }
  const keys: string[] = [];
  let depth = 0;
  let token = "";
  let inValue = false;
  const endToken = () => {
    const k = token.trim();
    if (!inValue && NAME.test(k)) keys.push(k);
    token = "";
    inValue = false;
  };
  for (let i = start + 1; i < text.length; i++) {
    const c = text[i] as string;
    if (c === '"' || c === "'" || c === "`") {
      // skip a string literal
      for (i++; i < text.length && text[i] !== c; i++) if (text[i] === "\\") i++;
      continue;
    }
    if (OPEN.has(c)) depth++;
    else if (CLOSE.has(c)) {
      if (depth === 0) {
        endToken();
        break;
      }
      depth--;
    } else if (depth === 0 && c === ":" && !inValue) {
      const k = token.trim();
      if (NAME.test(k)) keys.push(k);
      token = "";
      inValue = true;
    } else if (depth === 0 && c === ",") endToken();
    else if (depth === 0 && !inValue) token += c;
  }
  return keys.filter((k) => k !== "event");
}

const doc = readFileSync("docs/log-events.md", "utf8");
const rows = new Map([...doc.matchAll(/^\|\s*`([a-z_]+)`\s*\|(.*)$/gm)].map((m) => [m[1] as string, m[2] as string]));

describe("docs/log-events.md", () => {
  it("documents every event the code logs", () => {
    const logged = new Set<string>();
    for (const file of sources("src")) {
      for (const m of readFileSync(file, "utf8").matchAll(/event: "([a-z_]+)"/g)) logged.add(m[1] as string);
    }
    expect(logged.size).toBeGreaterThan(10);
    expect([...logged].filter((e) => !rows.has(e))).toEqual([]);
  });

  it("documents every field each event's log line carries", () => {
    const missing: string[] = [];
    let checked = 0;
    for (const file of sources("src")) {
      const text = readFileSync(file, "utf8");
      for (const m of text.matchAll(/event: "([a-z_]+)"/g)) {
        const row = rows.get(m[1] as string) ?? "";
        for (const key of keysAround(text, m.index as number)) {
          checked++;
          if (!row.includes(`\`${key}\``)) missing.push(`${m[1]}.${key} (${file})`);
        }
      }
    }
    expect(checked).toBeGreaterThan(100);
    expect([...new Set(missing)]).toEqual([]);
  });

  it("the field reader finds keys, shorthand keys and nothing inside values or strings", () => {
    const text = `log.info({ event: "x", a: 1, b, c: f(d, e), g: { h: 1 }, i: "j: k, l", ...rest, m: \`n, \${o}\` }, "msg")`;
    expect(keysAround(text, text.indexOf("event"))).toEqual(["a", "b", "c", "g", "i", "m"]);
  });
});
