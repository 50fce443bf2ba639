#!/usr/bin/env -S node --max-semi-space-size=64
// --max-semi-space-size: fewer young-generation collections on the main thread (see YOUNG_GENERATION_MB
// in engine/runtime/workerPool.ts for the worker threads).
// The CLI is compiled to dist/ by `npm ci` (the `prepare` script); see engine/cli/main.ts.
const { main } = await import('../dist/engine/cli/main.js');
// Under npx, a supervisor's SIGTERM does not reach this process: it stops when npm goes away.
const { stopWithNpm } = await import('../dist/engine/cli/parentWatch.js');
stopWithNpm();
await main(process.argv);
// Exit explicitly: client libraries may keep handles open after their work is done.
process.exit(process.exitCode ?? 0);
