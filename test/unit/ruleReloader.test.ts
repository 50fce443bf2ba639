/**
 * RuleReloader with a stand-in pipeline: swaps wait for the pipeline, calls made while one runs are
 * merged into one more run, and a stopped engine answers `stopped` (engine/config/ruleReloader.ts,
 * engine/runtime/controlQueue.ts).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type ReloadLogger, RuleReloader } from '../../engine/config/ruleReloader.js';
import type { ControlRequest } from '../../engine/runtime/workerProtocol.js';

const RULE = (id: string) => `  - id: ${id}\n    on: [order]\n    when: event.amount >= 100\n`;
const quiet: ReloadLogger = { info: () => {}, error: () => {} };

function reloaderOn(rules: string): { reloader: RuleReloader; file: string } {
  const file = join(mkdtempSync(join(tmpdir(), 'cxstream-reloader-')), 'rules.yaml');
  writeFileSync(file, rules);
  return { reloader: new RuleReloader({ files: [file], watch: false, signal: null, logger: quiet }), file };
}

describe('RuleReloader', () => {
  it('holds a swap until the pipeline subscribes, merges calls made while one runs, skips unchanged files', async () => {
    const { reloader, file } = reloaderOn(`rules:\n${RULE('a')}`);
    const seen: ControlRequest[] = [];
    expect(await reloader.reload()).toEqual({ status: 'unchanged' });
    writeFileSync(file, `rules:\n${RULE('a')}${RULE('b')}`);
    const first = reloader.reload('one');
    const merged = [reloader.reload('two', true), reloader.reload('three')];
    const sub = reloader.requests$.subscribe((r) => seen.push(r));
    await new Promise((r) => setTimeout(r, 0));
    expect(seen.map((r) => r.task.kind)).toEqual(['rules']);
    seen[0]!.resolve!([]);
    expect(await first).toEqual({ status: 'applied', rules: 2 });
    expect(await Promise.all(merged)).toEqual([
      { status: 'applied', rules: 2 },
      { status: 'applied', rules: 2 },
    ]);
    // the merged calls run once more after it, forced by 'two'
    await new Promise((r) => setTimeout(r, 0));
    expect(seen).toHaveLength(2);
    seen[1]!.resolve!([]);
    sub.unsubscribe();
    reloader.close();
  });

  it('answers stopped once closed or once the pipeline has stopped', async () => {
    const { reloader } = reloaderOn(`rules:\n${RULE('a')}`);
    const sub = reloader.requests$.subscribe();
    const waiting = reloader.reload('x', true);
    await new Promise((r) => setTimeout(r, 0));
    sub.unsubscribe(); // the pipeline stopped: what it holds is rejected, later swaps refused
    expect(await waiting).toEqual({ status: 'stopped' });
    expect(await reloader.reload('y', true)).toEqual({ status: 'stopped' });
    reloader.close();
    expect(await reloader.reload('z', true)).toEqual({ status: 'stopped' });

    const other = reloaderOn(`rules:\n${RULE('a')}`).reloader;
    let completed = false;
    other.requests$.subscribe({ complete: () => (completed = true) });
    const pending = other.reload('x', true);
    await new Promise((r) => setTimeout(r, 0));
    other.close();
    expect(await pending).toEqual({ status: 'stopped' });
    expect(completed).toBe(true);
  });
});
