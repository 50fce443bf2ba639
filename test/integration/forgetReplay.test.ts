/**
 * `cxstream replay --publish` reads the tombstones of forgotten customers from NATS: replaying a
 * file that still holds a forgotten customer writes nothing of them (no trigger on CX_TRIGGERS, no
 * profile in KV, no ClickHouse row), and the other customers as usual.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ClickHouseClient } from '@clickhouse/client';
import { Kvm } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NatsServer } from '../../engine/nats/natsServer.js';
import { tombstoneOf } from '../../operators/tombstones.js';
import { openClickHouse } from '../../sinks/clickhouse.js';
import { TombstoneStore } from '../../sinks/tombstoneStore.js';
import { replayPublished, writeConfig } from '../harness/cli.js';
import { cxEvent } from '../harness/events.js';
import { readStream } from '../harness/readStream.js';

const T0 = Date.UTC(2026, 10, 20, 2, 0, 0);
const RULES = `rules:
  - id: invoice
    on: [message]
    when: has(event.text) && event.text == "invoice"
`;

describe('replay --publish and forgotten customers', () => {
  let dir: string;
  let server: NatsServer;
  let nc: NatsConnection;
  let ch: ClickHouseClient;
  const saved = { ...process.env };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cxstream-forget-replay-'));
    server = await NatsServer.start();
    nc = await connect({ servers: server.url });
    const events = [
      cxEvent('g1', 'gone-1', 'message', T0, { text: 'invoice' }),
      cxEvent('k1', 'kept-1', 'message', T0 + 1000, { text: 'invoice' }),
      cxEvent('g2', 'gone-1', 'order', T0 + 2000, { amount: 5 }),
    ];
    writeFileSync(join(dir, 'events.ndjson'), `${events.map((e) => JSON.stringify(e)).join('\n')}\n`);
    writeFileSync(join(dir, 'rules.yaml'), RULES);
    writeConfig(dir, server.url);
    // forgotten before the replay (the bucket as the engine creates it)
    await (await TombstoneStore.open(nc)).put(tombstoneOf('gone-1'), Date.now());
    await replayPublished(dir);
    ch = openClickHouse(`embedded:${join(dir, 'clickhouse')}`);
  }, 120_000);

  afterAll(async () => {
    process.env = saved;
    await ch?.close();
    await nc?.close();
    await server?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('writes nothing of the forgotten customer, and the others as usual', async () => {
    const triggers = (await readStream(nc, 'CX_TRIGGERS')).map(
      (m) => m.json<{ customer: string }>().customer,
    );
    expect(triggers).toEqual(['kept-1']);
    const kv = await new Kvm(nc).open('cx_profiles');
    expect(await kv.get('gone-1')).toBeNull();
    expect((await kv.get('kept-1'))?.operation).toBe('PUT');
    const rows = await (
      await ch.query({
        query: 'SELECT customer, count() AS n FROM cxstream.events GROUP BY customer ORDER BY customer',
        format: 'JSONEachRow',
      })
    ).json<{ customer: string; n: number | string }>();
    expect(rows.map((r) => [r.customer, Number(r.n)])).toEqual([['kept-1', 1]]);
  });
});
