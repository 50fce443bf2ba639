/**
 * One way for a test to get a NATS server, in the manner of nats.js's own tests (`setup()` before,
 * `cleanup()` after): a private nats-server with JetStream on a free port (engine/nats/natsServer.ts),
 * a client connected to it, optionally cxstream's streams, and a temporary directory for the test's
 * files; `cleanup()` undoes all of it and tolerates a `setup()` that failed half-way.
 *
 *   let t: TestNats;
 *   beforeAll(async () => { t = await setup({ streams: true }); });
 *   afterAll(() => cleanup(t));
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ConnectionOptions, connect, type NatsConnection } from '@nats-io/transport-node';
import { NatsServer, type NatsServerOptions } from '../../engine/nats/natsServer.js';
import { ensureStreams } from '../../engine/nats/streams.js';

/** What {@link setup} started. */
export interface TestNats {
  server: NatsServer;
  /** A client on `server`. */
  nc: NatsConnection;
  /** A fresh temporary directory, deleted by {@link cleanup}. */
  dir: string;
}

/** Options of {@link setup}. */
export interface SetupOptions {
  /** The server's options (TLS, authorization, ...); JetStream is on unless they say otherwise. */
  server?: NatsServerOptions;
  /** Options of the client (e.g. {@link reconnecting}). */
  connect?: Partial<ConnectionOptions>;
  /** Create cxstream's streams and profile bucket with their default settings. @default false */
  streams?: boolean;
  /** Prefix of the temporary directory's name. @default 'cxstream-test-' */
  dirPrefix?: string;
}

/** Client options that ride through a server restart or kill (a test that takes the server away). */
export const reconnecting: Partial<ConnectionOptions> = { maxReconnectAttempts: -1, reconnectTimeWait: 100 };

/** Starts a server (and a client, streams, a directory, as asked); {@link cleanup} stops it all. */
export async function setup(options: SetupOptions = {}): Promise<TestNats> {
  const dir = mkdtempSync(join(tmpdir(), options.dirPrefix ?? 'cxstream-test-'));
  const started: Partial<TestNats> = { dir };
  try {
    started.server = await NatsServer.start({ jetstream: true, ...options.server });
    const nc = await connect({ servers: started.server.url, ...options.connect });
    started.nc = nc;
    if (options.streams) await ensureStreams(nc);
    return { server: started.server, nc, dir };
  } catch (e) {
    await cleanup(started);
    throw e;
  }
}

/** Closes the client, stops the server and deletes the directory; whatever of them exists. */
export async function cleanup(t: Partial<TestNats> | undefined): Promise<void> {
  if (!t) return;
  await t.nc?.close();
  await t.server?.stop();
  if (t.dir) rmSync(t.dir, { recursive: true, force: true });
}
