/**
 * What every benchmark prints besides its figures: the machine, the date, the command and the
 * load average (the machine is shared, so figures are noisy and only same-run ratios compare), as a
 * JSON line and as the Markdown block pasted into bench/RESULTS.md.
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findNatsServer } from '../engine/nats/natsServer.js';

/** Where the machine and run came from. */
export interface RunInfo {
  date: string;
  command: string;
  cpu: string;
  cores: number;
  memoryGiB: number;
  node: string;
  natsServer: string;
  /** 1, 5 and 15 minute load averages at the start of the run. */
  loadAverage: number[];
}

/** The machine, date, command and load now. */
export function runInfo(): RunInfo {
  const nats = findNatsServer();
  let natsServer = 'not installed';
  if (nats) {
    try {
      natsServer = execFileSync(nats, ['--version'], { encoding: 'utf8' }).trim();
    } catch {
      natsServer = 'unknown';
    }
  }
  return {
    date: new Date().toISOString(),
    command: [
      process.env.npm_lifecycle_event?.startsWith('bench')
        ? `npm run ${process.env.npm_lifecycle_event} --`
        : `node ${process.execArgv.join(' ')} ${relative(process.cwd(), process.argv[1] ?? '')}`,
      ...process.argv.slice(2),
    ].join(' '),
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.availableParallelism(),
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    natsServer,
    loadAverage: os.loadavg().map((l) => Number(l.toFixed(2))),
  };
}

/** Prints a JSON line (`{"kind": ..., ...}`) on stdout. */
export function jsonLine(kind: string, data: object): void {
  console.log(JSON.stringify({ kind, ...data }));
}

/** A plain-text table with right-aligned columns after the first. */
export function table(header: string[], rows: Array<Array<string | number>>): string {
  const cells = [header, ...rows.map((r) => r.map((c) => (typeof c === 'number' ? fmt(c) : c)))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => String(r[i] ?? '').length)));
  return cells
    .map((r) =>
      r.map((c, i) => (i === 0 ? String(c).padEnd(widths[i]!) : String(c).padStart(widths[i]!))).join('  '),
    )
    .join('\n');
}

/** A number for people: thousands separated, at most 3 significant decimals. */
export function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (Math.abs(n) >= 100) return Math.round(n).toLocaleString('en');
  return Number(n.toPrecision(3)).toLocaleString('en');
}

/** The Markdown header of one run in RESULTS.md. */
export function markdownRun(title: string, info: RunInfo, body: string): string {
  return [
    `### ${title} — ${info.date.slice(0, 16).replace('T', ' ')} UTC`,
    '',
    `- command: \`${info.command}\``,
    `- machine: ${info.cpu} × ${info.cores} cores, ${info.memoryGiB} GiB; Node ${info.node}; ${info.natsServer}`,
    `- load average at start: ${info.loadAverage.join(' / ')} (shared machine)`,
    '',
    '```',
    body,
    '```',
    '',
  ].join('\n');
}

/** Appends a run to bench/RESULTS.md when the benchmark was given `--record`. */
export function recordRun(title: string, info: RunInfo, body: string): void {
  const block = markdownRun(title, info, body);
  if (!process.argv.includes('--record')) return;
  const file = resolve(dirname(fileURLToPath(import.meta.url)), 'RESULTS.md');
  appendFileSync(file, `\n${block}`);
  console.log(`recorded in ${file}`);
}

/** `--name value` or `--name=value` from argv, else the environment variable, else the default. */
export function flag(name: string, env: string, fallback: number): number {
  const argv = process.argv;
  let raw: string | undefined;
  for (let i = 2; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === `--${name}`) raw = argv[i + 1];
    else if (a.startsWith(`--${name}=`)) raw = a.slice(name.length + 3);
  }
  raw ??= process.env[env];
  if (raw === undefined) return fallback;
  const n = Number(raw.replaceAll('_', ''));
  if (!Number.isFinite(n) || n < 0) throw new RangeError(`--${name} (${env}) must be a number, got "${raw}"`);
  return n;
}
