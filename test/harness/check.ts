/**
 * Polls `fn` until it returns a truthy value (or resolves to one) without throwing, like nats.js's
 * test `check()`: no fixed sleeps. On timeout the last error and `context()` are in the message.
 */
export async function check<T>(
  fn: () => T | Promise<T>,
  timeoutMs = 10_000,
  context: () => string = () => '',
  intervalMs = 50,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = null;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
      last = new Error(`condition still false: ${fn.toString().slice(0, 200)}`);
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      const extra = context();
      throw new Error(
        `check timed out after ${timeoutMs} ms: ${(last as Error)?.message ?? last}${extra ? `\n${extra}` : ''}`,
      );
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
