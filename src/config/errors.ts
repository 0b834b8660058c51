import { SetupError } from "../errors.ts";

/** The command line, the config file or the environment is wrong: exit 2. */
export class ConfigError extends SetupError {
  override name = "ConfigError";
}
