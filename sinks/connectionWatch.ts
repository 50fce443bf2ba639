/**
 * Whether a NATS connection is up, followed through its status events, for the calls that wait for
 * an answer (JetStream publishes, API requests).
 *
 * nats.js loses what such a call sent around a disconnect: a reply to a request sent before the
 * connection dropped never comes, and what is written while disconnected is discarded (each
 * reconnect attempt starts with an empty outbound buffer). The call then fails only at its timeout
 * (5 s), however soon the server is back: after a broker restart the engine sat idle that long. So
 * a call here waits for the connection before it is sent, and fails at once when the connection
 * drops while it waits for its answer: the caller's retry goes out as soon as the client reconnects.
 */
import type { NatsConnection } from '@nats-io/transport-node';

/** A call failed because the connection dropped (or was not back in time): retrying may mend it. */
export class DisconnectedError extends Error {
  override readonly name = 'DisconnectedError';
}

const watches = new WeakMap<NatsConnection, ConnectionWatch>();

/** The connection state of one NATS connection (one per connection: {@link ConnectionWatch.of}). */
export class ConnectionWatch {
  private up: boolean;
  private readonly onUp = new Set<() => void>();
  private readonly onDown = new Set<() => void>();

  private constructor(private readonly nc: NatsConnection) {
    this.up = !nc.isClosed();
    void this.follow();
  }

  /** The watch of `nc` (created on first use; it follows the connection until it closes). */
  static of(nc: NatsConnection): ConnectionWatch {
    let w = watches.get(nc);
    if (!w) {
      w = new ConnectionWatch(nc);
      watches.set(nc, w);
    }
    return w;
  }

  /** Whether the connection is up now. */
  get connected(): boolean {
    return this.up && !this.nc.isClosed();
  }

  /** Calls `fn` at every disconnect; returns the function that stops it. */
  onDisconnect(fn: () => void): () => void {
    this.onDown.add(fn);
    return () => {
      this.onDown.delete(fn);
    };
  }

  /** Resolves once the connection is up (at once when it is); rejects after `timeoutMs` or once it closed. */
  async whenConnected(timeoutMs: number): Promise<void> {
    if (this.connected) return;
    if (this.nc.isClosed()) throw new DisconnectedError('the NATS connection is closed');
    await new Promise<void>((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        this.onUp.delete(done);
        resolve();
      };
      const timer = setTimeout(() => {
        this.onUp.delete(done);
        reject(new DisconnectedError(`NATS not reconnected within ${timeoutMs} ms`));
      }, timeoutMs);
      this.onUp.add(done);
    });
  }

  /**
   * Runs a call that waits for an answer: once the connection is up (waiting up to `timeoutMs`),
   * and failing with a {@link DisconnectedError} as soon as it drops before the answer came.
   */
  async call<T>(op: () => Promise<T>, timeoutMs = 5000): Promise<T> {
    await this.whenConnected(timeoutMs);
    let stop = (): unknown => undefined;
    const dropped = new Promise<never>((_, reject) => {
      stop = this.onDisconnect(() => reject(new DisconnectedError('NATS disconnected before the answer')));
    });
    const answer = op();
    // the call's own failure (its timeout, later) must not surface as an unhandled rejection
    answer.catch(() => {});
    try {
      return await Promise.race([answer, dropped]);
    } finally {
      stop();
    }
  }

  private async follow(): Promise<void> {
    for await (const s of this.nc.status()) {
      if (s.type === 'disconnect') {
        this.up = false;
        for (const fn of [...this.onDown]) fn();
      } else if (s.type === 'reconnect') {
        this.up = true;
        for (const fn of [...this.onUp]) fn();
      }
    }
  }
}
