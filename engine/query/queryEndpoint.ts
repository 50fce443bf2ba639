/**
 * Where the process holding an embedded store serves it: a small JSON file in the store directory,
 * written when the endpoint starts and removed when it stops. A chDB directory is locked by the
 * process that opened it, so `cxstream funnel` and `cxstream report` read this file to query
 * through that process instead; the port may differ from the configured one (taken ports fall
 * back to a free one), which is why the file and not the config says where it is.
 */
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type EmbeddedStoreInUseError, isAlive } from '../../sinks/embeddedStore.js';

/** File name of the endpoint record inside the store directory. */
export const ENDPOINT_FILE = 'cxstream-endpoint.json';

/** The endpoint record. */
export interface QueryEndpoint {
  /** Base URL of ClickHouse's HTTP interface, e.g. `http://127.0.0.1:8123`. */
  url: string;
  /** Process serving it (holding the store). */
  pid: number;
  /** Whether it refuses writes and DDL. */
  readonly: boolean;
  /** Whether clients must send a password (`clickhouse.serve.password`). */
  password: boolean;
}

/** Records that this process serves `dir` at `endpoint` (atomically: a reader never sees half a file). */
export function writeEndpoint(dir: string, endpoint: QueryEndpoint): void {
  const file = join(dir, ENDPOINT_FILE);
  writeFileSync(`${file}.tmp`, `${JSON.stringify(endpoint)}\n`);
  renameSync(`${file}.tmp`, file);
}

/** Removes the record if it is still this process's. */
export function removeEndpoint(dir: string, pid = process.pid): void {
  if (readEndpoint(dir)?.pid === pid) rmSync(join(dir, ENDPOINT_FILE), { force: true });
}

/** The endpoint of the live process serving `dir`, if one does (a record of a dead process is ignored). */
export function servedEndpoint(dir: string): QueryEndpoint | null {
  const endpoint = readEndpoint(dir);
  return endpoint !== null && isAlive(endpoint.pid) ? endpoint : null;
}

/**
 * What to tell a user whose opening of an embedded store failed because another process holds it:
 * where that process serves it over HTTP, or that it must be stopped first.
 */
export function heldStoreMessage(error: EmbeddedStoreInUseError): string {
  const endpoint = servedEndpoint(error.dir);
  return endpoint === null
    ? `${error.message}: that process does not serve it over HTTP (clickhouse.serve.port 0) and one process at a time can open it; stop that process first, or give the engine a ClickHouse server (CXSTREAM_CLICKHOUSE_URL=http://...)`
    : `${error.message}: query it at ${endpoint.url} (ClickHouse's HTTP interface), or stop that process first`;
}

function readEndpoint(dir: string): QueryEndpoint | null {
  let text: string;
  try {
    text = readFileSync(join(dir, ENDPOINT_FILE), 'utf8');
  } catch {
    return null;
  }
  try {
    const v = JSON.parse(text) as Partial<QueryEndpoint>;
    if (typeof v.url !== 'string' || typeof v.pid !== 'number') return null;
    return { url: v.url, pid: v.pid, readonly: v.readonly === true, password: v.password === true };
  } catch {
    // A record cut short by a crash mid-write of an older version: as if there were none.
    return null;
  }
}
