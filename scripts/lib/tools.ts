/** Small tools both benchmarks use: command-line options, clocks and bounded waits. */

/** The benchmark's options: `--json`, and `--name value` pairs. */
export function benchArgs(argv: readonly string[] = process.argv.slice(2)) {
  return {
    json: argv.includes("--json"),
    has: (name: string) => argv.includes(name),
    intArg(name: string, fallback: number): number {
      const i = argv.indexOf(name);
      if (i < 0) return fallback;
      const n = Number((argv[i + 1] ?? "").replaceAll("_", ""));
      if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} takes a positive integer`);
      return n;
    },
    stringArg(name: string): string | undefined {
      const i = argv.indexOf(name);
      return i < 0 ? undefined : argv[i + 1];
    },
  };
}

export const now = (): number => performance.now();
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
export const round = (x: number, digits = 4): number => (Number.isFinite(x) ? Number(x.toPrecision(digits)) : x);

/** A wait that checks every `everyMs` until `check` holds, and throws naming `what` after `timeoutMs`. */
export function untilEvery(everyMs: number) {
  return async (
    what: string,
    check: () => boolean | Promise<boolean>,
    timeoutMs: number,
    every = everyMs,
  ): Promise<void> => {
    const deadline = now() + timeoutMs;
    for (;;) {
      if (await check()) return;
      if (now() > deadline) throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}`);
      await sleep(every);
    }
  };
}

/** Bounded wait: resolves with the promise's value, or undefined after `ms`. */
export async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}
