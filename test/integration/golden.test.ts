/**
 * The golden traffic (test/harness/golden.ts) gives exactly the recorded triggers and profile rows,
 * processed in one partition or spread over three with other batch sizes: how customers are grouped
 * and batched, and how state is laid out, never change what fires. A deliberate change of output is
 * re-recorded with scripts/record-golden.ts, its reason in the commit.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { loadRules } from '../../engine/config/rulesFile.js';
import {
  type GOLDEN_FILES,
  type GoldenOutput,
  goldenLines,
  goldenTraffic,
  recordedLines,
  runGolden,
} from '../harness/golden.js';

/** Where two line lists part: counts, and the first differing line of each. */
function firstDifference(actual: string[], expected: string[]): string | null {
  const n = Math.max(actual.length, expected.length);
  for (let i = 0; i < n; i++) {
    if (actual[i] !== expected[i])
      return `${actual.length} lines vs ${expected.length} recorded; first difference at line ${i + 1}:\n  got      ${actual[i]}\n  recorded ${expected[i]}`;
  }
  return null;
}

describe('golden traffic', () => {
  const events = goldenTraffic();
  const runs: Array<[string, () => GoldenOutput]> = [
    ['one partition, batches of 500', () => runGolden(events, 1, 500)],
    ['three partitions, batches of 97', () => runGolden(events, 3, 97)],
    // every customer held as bytes between batches (decoded and encoded again around each event)
    ['one partition, batches of 500, no customer kept decoded', () => runGolden(events, 1, 500, 0)],
  ];
  let recorded: Record<keyof typeof GOLDEN_FILES, string[]>;
  beforeAll(() => {
    recorded = { triggers: recordedLines('triggers'), profiles: recordedLines('profiles') };
  });

  it('reaches every default rule', () => {
    const fired = new Set(recorded.triggers.map((l) => (JSON.parse(l) as { rule: string }).rule));
    expect([...fired].sort()).toEqual(
      loadRules(['config/rules.yaml'])
        .map((r) => r.id)
        .sort(),
    );
  });

  for (const [name, run] of runs) {
    it(`${name}: the recorded triggers and profile rows`, () => {
      const out = run();
      expect(out.rejects).toBe(0);
      expect(out.events).toBe(events.length);
      for (const kind of ['triggers', 'profiles'] as const)
        expect(firstDifference(goldenLines(out, kind), recorded[kind]), kind).toBeNull();
    }, 180_000);
  }
});
