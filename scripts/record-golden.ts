/**
 * Records test/golden/: the triggers and profile rows of the golden traffic (test/harness/golden.ts).
 * Run only for an intended change of what the engine produces, and say why in the commit:
 *
 *   npx tsx scripts/record-golden.ts
 */
import { writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { GOLDEN_FILES, goldenLines, goldenTraffic, runGolden } from '../test/harness/golden.js';

const out = runGolden(goldenTraffic());
for (const [kind, file] of Object.entries(GOLDEN_FILES)) {
  const lines = goldenLines(out, kind as keyof typeof GOLDEN_FILES);
  writeFileSync(file, gzipSync(`${lines.join('\n')}\n`, { level: 9 }));
  console.log(`${file}: ${lines.length} lines`);
}
