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
