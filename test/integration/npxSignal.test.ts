/**
 * `npx cxstream run` under a supervisor: the real process tree (npm exec → sh -c → node), a
 * private nats-server, and SIGTERM to the npm process, as `docker stop` or systemd send it. npm
 * passes the signal to its `sh`, which dies without passing it on; the engine must still stop, and
 * drain, instead of running on re-parented. Needs `npm run build` first (npx runs bin/cxstream.js).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsServer } from '../../engine/nats/natsServer.js';
import { check } from '../harness/check.js';
import { engineEnv } from '../harness/engineProcess.js';
import { cleanup, setup, type TestNats } from '../harness/nats.js';

const root = resolve(import.meta.dirname, '../..');

/** Whether `pid` is a running process (a zombie waiting for a reaper does not count). */
function isRunning(pid: number): boolean {
  try {
    // Field 3 of /proc/PID/stat is the state; the name before it is in parentheses.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

describe('npx cxstream run, SIGTERM to npm', () => {
  let t: TestNats;
  let server: NatsServer;
  let dir: string;
  let npx: ChildProcess;
  let stderr = '';
  let enginePid = 0;

  beforeAll(async () => {
    t = await setup({ dirPrefix: 'cxstream-npx-' });
    ({ server, dir } = t);
  });

  afterAll(async () => {
    // Only the processes this test started: the engine (by the pid in its own log lines) and npx.
    if (enginePid > 0 && isRunning(enginePid)) process.kill(enginePid, 'SIGKILL');
    if (npx?.exitCode === null && npx.signalCode === null) npx.kill('SIGKILL');
    await cleanup(t);
  });

  it('the engine drains and exits when npm goes away', async () => {
    npx = spawn('npx', ['cxstream', 'run'], {
      cwd: root,
      env: { ...process.env, ...engineEnv(server.url, dir), CXSTREAM_LOG_LEVEL: 'info' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    npx.stderr!.on('data', (d: Buffer) => {
      stderr += d;
    });
    // The engine's own pid, from its log line (npx's child is `sh`, the engine is sh's child).
    await check(
      () => /"msg":"state recovered"/.test(stderr),
      60_000,
      () => stderr,
    );
    enginePid = Number(/"pid":(\d+)[^\n]*"msg":"engine started"/.exec(stderr)?.[1]);
    expect(enginePid).toBeGreaterThan(0);
    expect(enginePid).not.toBe(npx.pid);

    npx.kill('SIGTERM');
    await check(
      () => !isRunning(enginePid),
      20_000,
      () => `engine ${enginePid} still running\n${stderr}`,
    );
    expect(stderr).toContain('"msg":"the npm process that started cxstream is gone: stopping as on SIGTERM"');
    expect(stderr).toContain('"signal":"SIGTERM","msg":"draining"');
    expect(stderr).toMatch(/"msg":"stopped"/);
  }, 90_000);
});
