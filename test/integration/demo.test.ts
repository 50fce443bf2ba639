/**
 * `cxstream demo` for analysts: while the engine writes, its store answers ClickHouse HTTP queries;
 * at the end it writes the report (every chart filled, checked in headless Chromium, screenshot in
 * test-artifacts/demo-report.png) and, with `serve`, keeps answering, e.g. the curl it prints.
 * Needs `npm run build` (worker threads and the chart script run compiled code) and chromium.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { runDemo } from '../../engine/cli/demo.js';
import { servedEndpoint } from '../../engine/query/queryEndpoint.js';
import { check } from '../harness/check.js';
import { renderPage } from '../harness/chromium.js';

const dir = mkdtempSync(join(tmpdir(), 'cxstream-demo-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('cxstream demo', () => {
  it('is queryable while it runs, writes a report with every chart filled, and serves until released', async () => {
    let text = '';
    const out = new Writable({
      write(chunk, _e, cb) {
        text += chunk;
        cb();
      },
    });
    let release!: () => void;
    const released = new Promise<void>((r) => {
      release = r;
    });
    let finished = false;
    const running = runDemo({ customers: 400, seed: 7, useNats: false, dir, out, serve: released }).finally(
      () => {
        finished = true;
      },
    );

    // While the engine runs: the endpoint in the store directory answers, counts only grow.
    const endpoint = await check(
      () => servedEndpoint(join(dir, 'clickhouse')),
      60_000,
      () => text,
    );
    expect(endpoint.readonly).toBe(true);
    const counts: number[] = [];
    while (!text.includes('serving the demo') && !finished) {
      const res = await fetch(
        `${endpoint.url}/?query=${encodeURIComponent('SELECT count() FROM cxstream.events')}`,
      );
      expect(res.status).toBe(200);
      counts.push(Number(await res.text()));
    }
    expect(counts.length).toBeGreaterThan(2);
    expect(counts).toEqual([...counts].sort((a, b) => a - b));

    // After the run: the printed curl returns the funnel view; the report is written.
    const curl = /curl '([^']+)'/.exec(text)?.[1];
    expect(curl, text).toBeDefined();
    const funnel = await fetch(curl!);
    const body = await funnel.text();
    expect(funnel.status, body).toBe(200);
    expect(body).toMatch(/dimension.*key.*consulted.*added_to_cart.*ordered/);
    expect(body).toMatch(/variant\s+│\s+script_a/);
    const file = /^report \S+ – \S+ \([\d,]+ events, [\d,]+ customers\): (.+)$/m.exec(text)?.[1];
    expect(file).toBe(join(dir, 'report.html'));
    release();
    await running;
    expect(servedEndpoint(join(dir, 'clickhouse'))).toBeNull();

    const html = readFileSync(file!, 'utf8');
    expect(html).not.toContain('class="empty"');
    const artifacts = resolve(import.meta.dirname, '../../test-artifacts');
    mkdirSync(artifacts, { recursive: true });
    const page = await renderPage(file!, { screenshot: join(artifacts, 'demo-report.png'), height: 5200 });
    expect(page.console).toEqual([]);
    expect(page.dom).toContain('<body data-charts="rendered">');
    const figures = [
      ...page.dom.matchAll(/<figure class="chart" data-chart="([^"]+)"[^>]*>([\s\S]*?)<\/figure>/g),
    ];
    expect(figures).toHaveLength(6);
    for (const [, name, inner] of figures) expect(inner, name).toMatch(/<svg[\s\S]*<(rect|circle)\b/);
  }, 180_000);
});
