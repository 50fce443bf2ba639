#!/usr/bin/env node
// The npm registry reachable here serves only this machine's platform builds of packages that
// ship native binaries per platform (biome, chdb, msgpackr-extract). `npm install` then writes a
// lock without entries for the other platforms' optional packages, and `npm ci` refuses such a
// lock ("Missing: @biomejs/cli-darwin-x64@ from lock file"). This adds those entries with their
// os/cpu/libc, so `npm ci` skips them on every machine they do not fit, as it would with a lock
// written against the public registry. Run it after changing dependencies: node scripts/lock-platforms.mjs
import { readFileSync, writeFileSync } from 'node:fs';

const file = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(file, 'utf8'));
const packages = lock.packages;

/** os/cpu/libc of a platform package from its name (…-<os>-<cpu>[-<libc>]). */
function platformOf(name) {
  const m = /-(android|darwin|linux|win32|freebsd)-(arm64|x64|arm|ia32)(?:-(gnu|musl|msvc))?$/.exec(name);
  if (!m) return null;
  const [, os, cpu, libc] = m;
  return { os: [os], cpu: [cpu], ...(os === 'linux' ? { libc: [libc === 'musl' ? 'musl' : 'glibc'] } : {}) };
}

let added = 0;
for (const [path, entry] of Object.entries(packages)) {
  for (const [dep, version] of Object.entries(entry.optionalDependencies ?? {})) {
    const key = `node_modules/${dep}`;
    if (packages[key] || packages[`${path}/node_modules/${dep}`]) continue;
    const platform = platformOf(dep);
    if (!platform) continue;
    packages[key] = { version, ...(entry.dev ? { dev: true } : {}), optional: true, ...platform };
    added++;
  }
}
writeFileSync(file, `${JSON.stringify(lock, null, 2)}\n`);
console.log(`package-lock.json: ${added} platform entries added`);
