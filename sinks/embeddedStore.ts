/**
 * What can be read from an embedded ClickHouse data directory (`embedded:DIR`) without opening it.
 */
import { existsSync } from 'node:fs';
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
