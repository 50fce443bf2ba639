/**
 * Headless Chromium (Debian's `chromium`, installed by scripts/install-system-deps.sh) opening a
 * local page the way a person would, on a network that reaches nothing: the DOM after its scripts
 * ran, what it wrote on the console, and a screenshot.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { finished } from './cli.js';

/** The Chromium binary, or null when it is not installed. */
export function findChromium(): string | null {
  for (const candidate of ['/usr/bin/chromium', '/usr/bin/chromium-browser'])
    if (existsSync(candidate)) return candidate;
  return null;
}

/** What Chromium saw of a page. */
export interface RenderedPage {
  /** The DOM after the scripts ran (`--dump-dom`). */
  dom: string;
  /** Console messages and uncaught errors of the page (Chromium's CONSOLE log lines). */
  console: string[];
}

/**
 * Opens `file` (a local HTML file) and returns its DOM and console once scripts ran for up to
 * 15 s of virtual time; with `screenshot`, also writes a PNG of `width` × `height` there.
 */
export async function renderPage(
  file: string,
  options: { screenshot?: string; width?: number; height?: number } = {},
): Promise<RenderedPage> {
  const binary = findChromium();
  if (binary === null) {
    throw new Error(
      'Chromium is not installed: run scripts/install-system-deps.sh as root (apt-get install chromium)',
    );
  }
  const url = pathToFileURL(file).href;
  const dump = await run(binary, ['--dump-dom', url]);
  if (options.screenshot !== undefined) {
    const size = `${options.width ?? 1100},${options.height ?? 3000}`;
    await run(binary, [
      '--hide-scrollbars',
      `--window-size=${size}`,
      `--screenshot=${options.screenshot}`,
      url,
    ]);
  }
  return { dom: dump.stdout, console: consoleLines(dump.stderr) };
}

/** Chromium's log lines of console messages: `[pid:tid:time:INFO:CONSOLE:12] "message", source: ...`. */
function consoleLines(stderr: string): string[] {
  return stderr.split('\n').filter((l) => /:CONSOLE[:(]\d+\)?\]/.test(l));
}

async function run(binary: string, args: string[]): Promise<{ stdout: string; stderr: string }> {
  const profile = mkdtempSync(join(tmpdir(), 'cxstream-chromium-'));
  try {
    // Flags that keep Chromium from reaching out (updates, sync, QUIC probes) on a closed network.
    const child = spawn(
      binary,
      [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        `--user-data-dir=${profile}`,
        '--enable-logging=stderr',
        '--v=0',
        '--virtual-time-budget=15000',
        ...args,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const { code, stdout, stderr } = await finished(child, 90_000, 'chromium');
    if (code !== 0) throw new Error(`chromium exited with ${code}: ${stderr.slice(-2000)}`);
    return { stdout, stderr };
  } finally {
    rmSync(profile, { recursive: true, force: true });
  }
}
