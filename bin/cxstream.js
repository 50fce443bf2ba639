#!/usr/bin/env node
// The CLI is compiled to dist/ by `npm ci` (the `prepare` script); see engine/cli.ts.
const { main } = await import('../dist/engine/cli.js');
await main(process.argv);
// Exit explicitly: client libraries may keep handles open after their work is done.
process.exit(process.exitCode ?? 0);
