import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sources(path) : path.endsWith(".ts") ? [path] : [];
  });
}

describe("docs/log-events.md", () => {
  it("documents every event the code logs", () => {
    const logged = new Set<string>();
    for (const file of sources("src")) {
      for (const m of readFileSync(file, "utf8").matchAll(/event: "([a-z_]+)"/g)) logged.add(m[1] as string);
    }
    expect(logged.size).toBeGreaterThan(10);
    const documented = new Set(
      [...readFileSync("docs/log-events.md", "utf8").matchAll(/^\|\s*`([a-z_]+)`\s*\|/gm)].map((m) => m[1]),
    );
    expect([...logged].filter((e) => !documented.has(e))).toEqual([]);
  });
});
