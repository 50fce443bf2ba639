/**
 * What can be read from an embedded ClickHouse data directory (`embedded:DIR`) without opening it:
 * whether it holds a database, and who holds it open.
 *
 * chDB (like clickhouse-server) locks `DIR/status` for as long as a process has the directory open
 * and writes that process's PID into it; a second process fails to open the directory. chDB prints
 * the reason ("Cannot lock file DIR/status. Another server instance in same directory is already
 * running.") to stderr from native code, and the error it throws only says "Failed to create
 * connection for path ...": the status file is where the answer can be read.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** The data directory of an `embedded:DIR` URL (absolute), else null (a server). */
export function embeddedDir(url: string): string | null {
  return url.startsWith('embedded:') ? resolve(url.slice('embedded:'.length)) : null;
}

/**
 * Whether the data directory `dir` holds `database`. ClickHouse keeps a `metadata/<database>.sql`
 * per database there, so this needs no chDB, which would create the directory (and lock it).
 */
export function holdsDatabase(dir: string, database: string): boolean {
  return existsSync(join(dir, 'metadata', `${database}.sql`));
}

/** An embedded ClickHouse data directory is open in another process. */
export class EmbeddedStoreInUseError extends Error {
  override name = 'EmbeddedStoreInUseError';
  constructor(
    /** The data directory (absolute). */
    readonly dir: string,
    /** The process holding it. */
    readonly pid: number,
    options?: ErrorOptions,
  ) {
    super(`the embedded ClickHouse directory ${dir} is in use by process ${pid}`, options);
  }
}

export function isEmbeddedStoreInUseError(e: unknown): e is EmbeddedStoreInUseError {
  return e instanceof Error && e.name === 'EmbeddedStoreInUseError';
}

/**
 * The PID of another live process that the status file of `dir` names, else undefined. Only
 * meaningful after opening `dir` failed: a process killed without cleanup leaves its status file
 * behind (and its lock goes with it), so a live PID there alone does not prove a lock.
 */
export function embeddedStoreHolder(dir: string): number | undefined {
  let text: string;
  try {
    text = readFileSync(join(dir, 'status'), 'utf8');
  } catch {
    return undefined;
  }
  const pid = Number(/^PID:\s*(\d+)\s*$/m.exec(text)?.[1]);
  if (!Number.isSafeInteger(pid) || pid <= 0 || pid === process.pid) return undefined;
  return isAlive(pid) ? pid : undefined;
}

/** Whether a process of this PID exists (EPERM: it does, as another user's, e.g. a service account's engine). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
