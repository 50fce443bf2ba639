import { describe, expect, it } from 'vitest';
import { RetriesExhaustedError, retrying } from '../../sinks/retry.js';

/** An operation that fails `failures` times, then returns the attempt it succeeded on. */
function failingFor(failures: number) {
  const attempts: number[] = [];
  const op = async (attempt: number) => {
    attempts.push(attempt);
    if (attempts.length <= failures) throw new Error(`failure ${attempts.length}`);
    return attempt;
  };
  return { attempts, op };
}

describe('retrying', () => {
  it('runs the operation until it succeeds, numbering the attempts, pausing by the policy steps', async () => {
    const { attempts, op } = failingFor(3);
    const delays: number[] = [];
    const result = await retrying('op', op, {
      delaysMs: [2, 20],
      onRetry: (_e, _attempt, delayMs) => delays.push(delayMs),
    });
    expect(result).toBe(4);
    expect(attempts).toEqual([1, 2, 3, 4]);
    // nats.js's jitter: a step of n waits between n/2 and 1.5 n; the last step repeats
    expect(delays).toHaveLength(3);
    expect(delays[0]).toBeGreaterThanOrEqual(1);
    expect(delays[0]).toBeLessThan(3);
    for (const d of delays.slice(1)) {
      expect(d).toBeGreaterThanOrEqual(10);
      expect(d).toBeLessThan(30);
    }
  });

  it('gives up after maxAttempts with the last error as cause', async () => {
    const { attempts, op } = failingFor(10);
    const error = await retrying('the thing', op, { delaysMs: [1], maxAttempts: 3 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RetriesExhaustedError);
    expect((error as RetriesExhaustedError).attempts).toBe(3);
    expect((error as Error).message).toMatch(/^the thing kept failing .*\(3 attempts\): failure 3$/);
    expect((error as Error).cause).toEqual(new Error('failure 3'));
    expect(attempts).toEqual([1, 2, 3]);
  });

  it('rethrows a fatal error at once', async () => {
    const { attempts, op } = failingFor(10);
    await expect(
      retrying('op', op, { delaysMs: [1], fatal: (e) => (e as Error).message === 'failure 2' }),
    ).rejects.toThrow('failure 2');
    expect(attempts).toEqual([1, 2]);
  });

  it('starts the back-off and the attempt limit again when the operation got somewhere in between', async () => {
    let position = 0;
    const delays: number[] = [];
    const failures = 6;
    let calls = 0;
    const result = await retrying(
      'op',
      async (attempt) => {
        calls++;
        position++; // every attempt moves on before it fails
        if (calls <= failures) throw new Error(`failure ${calls}`);
        return attempt;
      },
      {
        delaysMs: [2, 60_000],
        maxAttempts: 2,
        progress: () => position,
        onRetry: (_e, _attempt, delayMs) => delays.push(delayMs),
      },
    );
    expect(result).toBe(failures + 1);
    // always the first step: without progress the second pause would be about a minute
    expect(delays).toHaveLength(failures);
    for (const d of delays) expect(d).toBeLessThan(3);
  });

  it('without progress the failures add up: the second pause is the second step', async () => {
    const { op } = failingFor(10);
    const stop = new AbortController();
    const delays: number[] = [];
    const started = Date.now();
    const error = await retrying('op', op, {
      delaysMs: [2, 60_000],
      progress: () => 'stuck',
      signal: stop.signal,
      onRetry: (_e, _attempt, delayMs) => {
        delays.push(delayMs);
        if (delays.length === 2) setImmediate(() => stop.abort());
      },
    }).catch((e: unknown) => e);
    expect(delays[1]).toBeGreaterThanOrEqual(30_000);
    // the abort ended the minute's pause and the last error came back
    expect(error).toEqual(new Error('failure 2'));
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('does not retry once the signal has aborted', async () => {
    const stop = new AbortController();
    let calls = 0;
    await expect(
      retrying(
        'op',
        async () => {
          calls++;
          stop.abort();
          throw new Error('failed while stopping');
        },
        { delaysMs: [1], signal: stop.signal },
      ),
    ).rejects.toThrow('failed while stopping');
    expect(calls).toBe(1);
  });
});
