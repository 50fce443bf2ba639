/**
 * Where a forgotten customer could still be: every NATS stream (subjects, bodies, headers) and every
 * file of a state directory; and SQL through the engine's query server over its embedded store.
 * Used by the forget tests (test/integration/forget.test.ts, identityForget.test.ts).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { servedEndpoint } from '../../engine/query/queryEndpoint.js';
import { readStream } from './readStream.js';

/** The streams (by name) and `state dir` where any of `needles` occurs. */
export async function whereFound(
  nc: NatsConnection,
  stateDir: string,
  needles: readonly string[],
): Promise<string[]> {
  const bytes = needles.map((s) => Buffer.from(s));
  const has = (b: Uint8Array | string) => {
    const buf = Buffer.from(b);
    return bytes.some((n) => buf.includes(n));
  };
  const found = new Set<string>();
  const jsm = await jetstreamManager(nc);
  for await (const info of jsm.streams.list()) {
    for (const m of await readStream(nc, info.config.name)) {
      const headers = m.headers
        ? [...m.headers.keys()].map((k) => `${k}:${m.headers!.get(k)}`).join('\n')
        : '';
      if (has(m.subject) || has(m.data) || has(headers)) found.add(info.config.name);
    }
  }
  const walk = (dir: string): void => {
    if (!existsSync(dir)) return;
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (has(readFileSync(path))) found.add('state dir');
    }
  };
  walk(stateDir);
  return [...found].sort();
}

/** A query's answer (text), through the engine's query server over the embedded store in `clickhouseDir`. */
export async function servedSql(clickhouseDir: string, query: string): Promise<string> {
  const endpoint = servedEndpoint(clickhouseDir);
  if (endpoint === null) throw new Error('the engine does not serve its ClickHouse store');
  const res = await fetch(`${endpoint.url}/?query=${encodeURIComponent(query)}`);
  const text = await res.text();
  if (!res.ok) throw new Error(`${query}: ${text}`);
  return text.trim();
}
