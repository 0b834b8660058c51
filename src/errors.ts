/**
 * The keeper's own errors share one base carrying what to do about them: whether asking again can succeed
 * (`retryable`: another endpoint, after a back-off) and, if one ends the process, its exit code (docs/operations.md):
 * 2 for a setup someone must fix (restarting does not help: systemd's RestartPreventExitStatus=2), 1 otherwise.
 * Errors that are not a KeeperError are decided by what they are (src/chain/errors.ts isRetryable; exit 1).
 */

export type ExitCode = 1 | 2;

export abstract class KeeperError extends Error {
  abstract readonly retryable: boolean;
  abstract readonly exitCode: ExitCode;
}

/**
 * A bad setup (the command line, the config, the environment, the state directory, the chain or exchange named):
 * never retried, exit 2, reported on stderr as a "configuration error".
 */
export class SetupError extends KeeperError {
  override name = "SetupError";
  readonly retryable: boolean = false;
  readonly exitCode: ExitCode = 2;
}
