/**
 * Stopping with npm. Under `npx cxstream` (or `npm exec`, `npm run`) the process tree is
 * npm → `sh -c cxstream ...` → this process. A supervisor's SIGTERM (`docker stop`, systemd, a
 * process manager) goes to npm, which passes it to its `sh`; sh dies of it without passing it on,
 * and this process went on running, re-parented, still consuming and reporting ready. Nothing in
 * the signal path can be fixed from here, so a process started by npm watches its parent instead:
 * once it is re-parented, it stops as it would on SIGTERM (`run` drains first).
 */
import { log } from '../runtime/log.js';

/** How often the parent is checked (a `getppid` call). */
const CHECK_INTERVAL_MS = 500;

/**
 * When npm started this process (npm sets `npm_command` in the environment of what it runs),
 * stops it once its parent is gone: a SIGTERM to itself when something handles it (`run` drains),
 * else `process.exit(143)` (as a SIGTERM would, but with the `exit` hooks that stop child processes
 * such as the demo's nats-server).
 */
export function stopWithNpm(env: NodeJS.ProcessEnv = process.env): void {
  if (env.npm_command === undefined) return;
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    log.warn({ parent }, 'the npm process that started cxstream is gone: stopping as on SIGTERM');
    if (process.listenerCount('SIGTERM') > 0) process.kill(process.pid, 'SIGTERM');
    else process.exit(128 + 15);
  }, CHECK_INTERVAL_MS);
  // Never what keeps the process alive.
  timer.unref();
}
