import type { NatsConnection } from '@nats-io/transport-node';
import { log } from './log.js';

/**
 * What `/readyz` and `/healthz` answer for `cxstream run`.
 *
 * Ready (send traffic, count this instance as serving): connected to NATS, state recovered from the
 * checkpoints, and consuming (the pipeline reads the durable consumer and is not draining). While
 * nats-server is unreachable the engine is not ready, but healthy: it reconnects by itself, and a
 * restart would only add a recovery.
 *
 * Healthy (do not restart): the process has not failed. The engine exits on a failure it cannot
 * recover from in place (crash-only), so a live process that answers is healthy; `/healthz` turns
 * 503 only in the moments between a fatal error and the exit, and a process whose event loop is
 * stuck does not answer at all, which a liveness probe counts as a failure too.
 */
export class EngineHealth {
  private connected = false;
  private recovered = false;
  private consuming = false;
  private draining = false;
  private failure: string | null = null;

  /** Follows the connection's status: disconnected until it reconnects. */
  watch(nc: NatsConnection): void {
    this.connected = !nc.isClosed();
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === 'disconnect') {
          this.connected = false;
          log.warn({ server: s.server }, 'NATS disconnected; not ready until reconnected');
        } else if (s.type === 'reconnect') {
          this.connected = true;
          log.info({ server: s.server }, 'NATS reconnected');
        } else if (s.type === 'close') {
          this.connected = false;
        }
      }
    })();
    void nc.closed().then(() => {
      this.connected = false;
    });
  }

  /** The state is restored from the checkpoints and the pipeline starts reading the source. */
  markRecovered(): void {
    this.recovered = true;
    this.consuming = true;
  }

  /** A drain has begun (SIGTERM): no longer ready, still healthy. */
  markDraining(): void {
    this.draining = true;
    this.consuming = false;
  }

  /** The engine failed and is about to exit. */
  markFailed(reason: string): void {
    this.failure = reason;
    this.consuming = false;
  }

  /** Why the engine is not ready; empty when it is. */
  notReady(): string[] {
    const reasons: string[] = [];
    if (this.failure !== null) reasons.push(`failed: ${this.failure}`);
    if (!this.connected) reasons.push('NATS not connected');
    if (!this.recovered) reasons.push('state not recovered yet');
    if (this.draining) reasons.push('draining');
    else if (this.recovered && !this.consuming) reasons.push('not consuming');
    return reasons;
  }

  /** Why the process should be restarted, or null. */
  unhealthy(): string | null {
    return this.failure;
  }
}
