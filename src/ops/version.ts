/** The package's version and build, for --version and perp_keeper_build_info. */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";

let cached: string | undefined;

/** package.json's version, found upward from this file (src/ops/ from source, dist/src/ops/ built). */
export function packageVersion(): string {
  if (cached !== undefined) return cached;
  let dir = import.meta.dirname;
  for (let i = 0; i < 5; i++) {
    const file = join(dir, "package.json");
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, "utf8")) as { name?: string; version?: string };
      if (pkg.name === "perp-keeper" && pkg.version) {
        cached = pkg.version;
        return cached;
      }
    }
    dir = dirname(dir);
  }
  cached = "unknown";
  return cached;
}

/** The commit the image or checkout was built from: GIT_COMMIT (set at build), else "unknown". */
export function buildCommit(): string {
  return process.env.GIT_COMMIT?.trim() || "unknown";
}
