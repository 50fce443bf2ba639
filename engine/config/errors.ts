/** Error classes with the data a caller needs to act on them (nats.js / clickhouse-js style). */

/** One problem found in a config or rule file, located by file and line. */
export interface ConfigProblem {
  file: string;
  /** 1-based line; 0 when the problem is not tied to a line (e.g. the file is missing). */
  line: number;
  message: string;
}

/** A config or rule file is invalid; `problems` lists every error found, each with file:line. */
export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(
    readonly problems: ConfigProblem[],
    options?: ErrorOptions,
  ) {
    super(problems.map(formatProblem).join('\n'), options);
  }
}

/** `file:line: message`, the format editors and CI annotate. */
export function formatProblem(p: ConfigProblem): string {
  return p.line > 0 ? `${p.file}:${p.line}: ${p.message}` : `${p.file}: ${p.message}`;
}

export function isConfigError(e: unknown): e is ConfigError {
  return e instanceof Error && e.name === 'ConfigError';
}

/** Bad command-line usage (exit code 2). */
export class UsageError extends Error {
  override name = 'UsageError';
}

/**
 * A setting that does not work with the system it points at (NATS, ClickHouse, a file): the
 * message names the setting, its environment variable and the system, and says what to do.
 * `retryable` tells a supervisor whether a restart may help (a server not up yet) or not (a wrong
 * password, a certificate, a stream in the way): the CLI exits with 1 for the first, 2 for the second.
 */
export class SettingError extends Error {
  override name = 'SettingError';
  constructor(
    message: string,
    /** The config key, e.g. `nats.url`. */
    readonly setting: string,
    /** What it points at: `NATS`, `ClickHouse`, `file`. */
    readonly system: string,
    readonly retryable: boolean,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export function isSettingError(e: unknown): e is SettingError {
  return e instanceof Error && e.name === 'SettingError';
}
