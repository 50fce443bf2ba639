import { createHash } from 'node:crypto';
import { type FSWatcher, readFileSync, watch } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Observable } from 'rxjs';
import type { RuleSpec } from '../../operators/rules.js';
import { ControlQueue } from '../runtime/controlQueue.js';
import { log as defaultLog } from '../runtime/log.js';
import type { ControlRequest } from '../runtime/workerProtocol.js';
import { formatProblem, isConfigError } from './errors.js';
import { loadRules } from './rulesFile.js';

/** The part of a pino logger the reloader writes to. */
export interface ReloadLogger {
  info(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** Options of {@link RuleReloader}. */
export interface RuleReloaderOptions {
  /** The rule files the engine runs (config `rules`). */
  files: string[];
  /** Quiet time after the last file change before reloading (editors write in several steps). @default 300 */
  debounceMs?: number;
  /** Watch the files' directories for changes. @default true */
  watch?: boolean;
  /** Reload on this signal even when the files look unchanged; null = none. @default 'SIGHUP' */
  signal?: NodeJS.Signals | null;
  /** @default engine/runtime/log.ts `log` */
  logger?: ReloadLogger;
}

/** What one reload did. */
export type ReloadResult =
  | { status: 'applied'; rules: number }
  | { status: 'unchanged' }
  | { status: 'rejected'; problems: string[] }
  | { status: 'stopped' };

/**
 * Hot reload of the rule files while the engine runs: on a file change (watched, debounced) or on
 * SIGHUP, the files are validated with `loadRules`; a bad set keeps the running rules and logs every
 * `file:line` problem; a good one is sent to every partition as a `rules` task through
 * {@link requests$} (a {@link ControlQueue}), which the pipeline runs between two event batches of
 * each partition, so customer state and pending timers stay and no batch sees two rule sets.
 */
export class RuleReloader {
  /** Rule swaps for the pipeline (`runEngine({ controls$ })`); held until it subscribes. */
  readonly requests$: Observable<ControlRequest>;
  private readonly queue = new ControlQueue();
  private readonly files: string[];
  private readonly debounceMs: number;
  private readonly logger: ReloadLogger;
  private readonly signal: NodeJS.Signals | null;
  private readonly watchers: FSWatcher[] = [];
  private timer: NodeJS.Timeout | null = null;
  /** Content hash of the rule set running now (skips editor saves that change nothing). */
  private current: string;
  /** The reload running now; later triggers wait for it and run once more. */
  private running: Promise<ReloadResult> | null = null;
  private again: { force: boolean; reason: string } | null = null;
  private closed = false;
  private readonly onSignal = () =>
    void this.reload(`signal ${this.signal}`, true).catch((err) =>
      this.logger.error({ err }, 'rule reload failed'),
    );

  constructor(options: RuleReloaderOptions) {
    this.files = options.files;
    this.debounceMs = options.debounceMs ?? 300;
    this.logger = options.logger ?? defaultLog;
    this.signal = options.signal === undefined ? 'SIGHUP' : options.signal;
    this.requests$ = this.queue.requests$;
    this.current = this.hash();
    if (options.watch ?? true) this.watch();
    if (this.signal) process.on(this.signal, this.onSignal);
  }

  /**
   * Validates the files and, when they are good and changed (or `force`), swaps them in on every
   * partition; resolves once every partition applied them. Calls made while one runs are merged
   * into one more run after it.
   */
  reload(reason = 'requested', force = false): Promise<ReloadResult> {
    if (this.closed) return Promise.resolve({ status: 'stopped' });
    if (this.running) {
      this.again = { force: force || (this.again?.force ?? false), reason };
      return this.running;
    }
    this.running = this.run(reason, force).finally(() => {
      this.running = null;
      const next = this.again;
      this.again = null;
      if (next && !this.closed) void this.reload(next.reason, next.force);
    });
    return this.running;
  }

  /** Stops watching; pending swaps resolve as `stopped` (the engine has ended). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    for (const w of this.watchers) w.close();
    if (this.signal) process.off(this.signal, this.onSignal);
    this.queue.close();
  }

  private async run(reason: string, force: boolean): Promise<ReloadResult> {
    const hash = this.hash();
    if (!force && hash === this.current) return { status: 'unchanged' };
    let rules: RuleSpec[];
    try {
      rules = loadRules(this.files);
    } catch (e) {
      if (!isConfigError(e)) throw e;
      const problems = e.problems.map(formatProblem);
      this.logger.error(
        { reason, files: this.files, problems },
        `rule reload rejected, keeping the running rules:\n${problems.join('\n')}`,
      );
      return { status: 'rejected', problems };
    }
    const started = performance.now();
    try {
      await this.queue.run({ task: { kind: 'rules', rules } });
    } catch (e) {
      // closed here, or the pipeline has stopped (the queue refuses or rejects what it holds)
      if (this.closed || this.queue.closed) return { status: 'stopped' };
      throw e;
    }
    this.current = hash;
    this.logger.info(
      {
        reason,
        rules: rules.length,
        ids: rules.map((r) => r.id),
        ms: Math.round(performance.now() - started),
      },
      'rules reloaded',
    );
    return { status: 'applied', rules: rules.length };
  }

  /** Editors replace files by renaming, which ends a watch on the file itself: watch the directories. */
  private watch(): void {
    const byDir = new Map<string, Set<string>>();
    for (const f of this.files) {
      const names = byDir.get(dirname(f)) ?? new Set<string>();
      names.add(basename(f));
      byDir.set(dirname(f), names);
    }
    for (const [dir, names] of byDir) {
      const watcher = watch(dir, { persistent: false }, (_event, name) => {
        if (name !== null && !names.has(basename(String(name)))) return;
        if (this.timer) clearTimeout(this.timer);
        this.timer = setTimeout(() => {
          this.timer = null;
          this.reload('file changed').catch((err) => this.logger.error({ err }, 'rule reload failed'));
        }, this.debounceMs);
      });
      watcher.on('error', (err) => this.logger.error({ err, dir }, 'watching the rule files failed'));
      this.watchers.push(watcher);
    }
  }

  /** Hash of the files' contents (a missing file hashes as missing: loadRules reports it). */
  private hash(): string {
    const h = createHash('sha256');
    for (const f of this.files) {
      h.update(f);
      try {
        h.update(readFileSync(f));
      } catch {
        h.update('\0missing');
      }
    }
    return h.digest('hex');
  }
}
