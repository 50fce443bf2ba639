/**
 * The engine's HTTP server: the host it is told, probes without a token, /metrics and admin actions
 * behind the token, and what readiness and health say.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { isLoopback } from '../../engine/config/config.js';
import { EngineHealth } from '../../engine/runtime/health.js';
import { Metrics, serveHttp } from '../../engine/runtime/metrics.js';

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});

async function start(options: Partial<Parameters<typeof serveHttp>[1]> = {}) {
  const metrics = new Metrics();
  const server = await serveHttp(metrics, {
    port: 0,
    notReady: () => [],
    unhealthy: () => null,
    ...options,
  });
  servers.push(server);
  const address = server.address() as AddressInfo;
  return { metrics, server, address, base: `http://127.0.0.1:${address.port}` };
}

describe('serveHttp', () => {
  it('listens on the host it is given, not on 127.0.0.1 only', async () => {
    const { address } = await start({ host: '127.0.0.2' });
    expect(address.address).toBe('127.0.0.2');
    const reply = await fetch(`http://127.0.0.2:${address.port}/healthz`);
    expect(reply.status).toBe(200);
    await expect(fetch(`http://127.0.0.1:${address.port}/healthz`)).rejects.toThrow();
  });

  it('metric names carry the cx_ prefix once, with the build info, late events and in-flight gauge', async () => {
    const { base, metrics } = await start();
    metrics.lateEvents.inc(3);
    const text = await (await fetch(`${base}/metrics`)).text();
    expect(text).toContain('cx_process_cpu_seconds_total');
    expect(text).toContain('cx_nodejs_heap_size_used_bytes');
    expect(text).not.toContain('cx_process_process_');
    expect(text).toMatch(/^cx_late_events_total 3$/m);
    expect(text).toMatch(/^cx_build_info\{version="\d+\.\d+\.\d+[^"]*"\} 1$/m);
    expect(text).toContain('cx_in_flight_events');
  });

  it('probes answer without a token; /metrics and actions need it when one is set', async () => {
    let reloads = 0;
    const { base } = await start({
      token: 's3cret-token',
      actions: { '/admin/reload': async () => ({ status: 'applied', n: ++reloads }) },
    });
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    expect((await fetch(`${base}/metrics`)).status).toBe(401);
    expect(
      (await fetch(`${base}/metrics`, { headers: { authorization: 'Bearer wrong-token!' } })).status,
    ).toBe(401);
    expect(
      (await fetch(`${base}/metrics`, { headers: { authorization: 'Bearer s3cret-token' } })).status,
    ).toBe(200);
    expect((await fetch(`${base}/admin/reload`, { method: 'POST' })).status).toBe(401);
    expect((await fetch(`${base}/admin/reload`)).status).toBe(405);
    const ok = await fetch(`${base}/admin/reload`, {
      method: 'POST',
      headers: { authorization: 'Bearer s3cret-token' },
    });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ status: 'applied', n: 1 });
    expect((await fetch(`${base}/nothing`)).status).toBe(404);
  });

  it('without a token, actions are accepted only on a server bound to loopback', async () => {
    const action = { '/admin/reload': async () => ({ status: 'unchanged' }) };
    const local = await start({ actions: action });
    expect((await fetch(`${local.base}/admin/reload`, { method: 'POST' })).status).toBe(200);
    // bound to every interface (and reached here through loopback): refused, the token is missing
    const warnings: string[] = [];
    const open = await start({ host: '0.0.0.0', actions: action, warn: (_f, m) => warnings.push(m) });
    expect(warnings).toEqual([
      'metrics.host 0.0.0.0 is reachable from other machines and metrics.token is not set: /metrics is open ' +
        'to anyone who can reach it and admin actions are refused; set metrics.token (CXSTREAM_METRICS_TOKEN) ' +
        'or bind to 127.0.0.1',
    ]);
    // with a token, or on loopback, nothing to warn about
    await start({ host: '0.0.0.0', token: 't0ken-xyz', warn: (_f, m) => warnings.push(m) });
    await start({ host: '127.0.0.1', warn: (_f, m) => warnings.push(m) });
    expect(warnings).toHaveLength(1);
    expect((await fetch(`${open.base}/admin/reload`, { method: 'POST' })).status).toBe(403);
    expect((await fetch(`${open.base}/metrics`)).status).toBe(200);
  });

  it('says why it is not ready or not healthy', async () => {
    const health = new EngineHealth();
    const { base } = await start({ notReady: () => health.notReady(), unhealthy: () => health.unhealthy() });
    let reply = await fetch(`${base}/readyz`);
    expect(reply.status).toBe(503);
    expect(await reply.text()).toBe('not ready: NATS not connected; state not recovered yet\n');
    health.markRecovered();
    expect(await (await fetch(`${base}/readyz`)).text()).toBe('not ready: NATS not connected\n');
    health.markDraining();
    expect(await (await fetch(`${base}/readyz`)).text()).toBe('not ready: NATS not connected; draining\n');
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    health.markFailed('worker lost');
    reply = await fetch(`${base}/healthz`);
    expect(reply.status).toBe(503);
    expect(await reply.text()).toBe('unhealthy: worker lost\n');
  });

  it('isLoopback', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', 'localhost', '::1', '[::1]'])
      expect(isLoopback(h), h).toBe(true);
    for (const h of ['0.0.0.0', '::', '10.0.0.1', '192.168.1.5', 'example.com'])
      expect(isLoopback(h), h).toBe(false);
  });
});
