import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { Config } from '../config/config.js';

/** Connects to the NATS server(s) of the config. */
export function connectNats(config: Readonly<Config>): Promise<NatsConnection> {
  return connect({
    servers: config.nats.url.split(',').map((s) => s.trim()),
    name: 'cxstream',
    maxReconnectAttempts: -1,
    // Otherwise every request (each trigger publish, each KV put) captures a stack trace for its
    // possible timeout error: a third of the main thread's time in bench:e2e (bench/RESULTS.md).
    noAsyncTraces: true,
  });
}
