import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AckTracker } from '../../engine/source/ackTracker.js';

function recorder() {
  const acks: Array<[string, number]> = [];
  const tracker = new AckTracker<string>((handle, seq) => acks.push([handle, seq]));
  return { acks, tracker };
}

describe('AckTracker', () => {
  it('acks a chunk once all its messages are done, with the chunk handle', () => {
    const { acks, tracker } = recorder();
    tracker.track([1, 2, 3], 'a');
    expect(tracker.inFlight).toBe(3);
    tracker.done([1, 3]);
    expect(acks).toEqual([]);
    tracker.done([2]);
    expect(acks).toEqual([['a', 3]]);
    expect(tracker.inFlight).toBe(0);
    expect(tracker.ackedSeq).toBe(3);
  });

  it('holds a completed chunk until every earlier chunk is complete, then acks the prefix once', () => {
    const { acks, tracker } = recorder();
    tracker.track([1, 2], 'a');
    tracker.track([3, 4], 'b');
    tracker.track([5, 7], 'c'); // gaps in sequences (deleted messages) are fine
    tracker.done([7, 5, 4, 3]);
    expect(acks).toEqual([]);
    expect(tracker.inFlight).toBe(6);
    tracker.done([2]);
    expect(acks).toEqual([]);
    tracker.done([1]);
    expect(acks).toEqual([['c', 7]]);
    expect(tracker.inFlight).toBe(0);
  });

  it('acks each completed prefix as it grows', () => {
    const { acks, tracker } = recorder();
    tracker.track([1], 'a');
    tracker.track([2], 'b');
    tracker.track([3], 'c');
    tracker.done([1]);
    tracker.done([3]);
    tracker.done([2]);
    expect(acks).toEqual([
      ['a', 1],
      ['c', 3],
    ]);
  });

  it('ignores redelivered sequences, repeated done() and unknown sequences', () => {
    const { acks, tracker } = recorder();
    expect(tracker.track([1, 2, 3], 'a')).toBe(3);
    expect(tracker.track([2, 3], 'dup')).toBe(0);
    expect(tracker.track([3, 4], 'b')).toBe(1);
    expect(tracker.inFlight).toBe(4);
    tracker.done([1, 1, 2, 2, 99]);
    expect(acks).toEqual([]);
    tracker.done([3]);
    expect(acks).toEqual([['a', 3]]);
    tracker.done([3, 2, 1]);
    expect(tracker.track([1, 2, 3], 'late')).toBe(0);
    tracker.done([4]);
    expect(acks).toEqual([
      ['a', 3],
      ['b', 4],
    ]);
    expect(tracker.inFlight).toBe(0);
  });

  it('rejects a chunk whose sequences do not ascend', () => {
    const { tracker } = recorder();
    expect(() => tracker.track([5, 4], 'x')).toThrow(RangeError);
  });

  it('replaces the handle of the chunk ending at a sequence', () => {
    const { acks, tracker } = recorder();
    tracker.track([1, 2], 'old');
    expect(tracker.replaceHandle(1, 'no')).toBe(false);
    expect(tracker.replaceHandle(2, 'new')).toBe(true);
    tracker.done([1, 2]);
    expect(acks).toEqual([['new', 2]]);
  });

  it('whenBelow resolves once enough messages are acked', async () => {
    const { tracker } = recorder();
    tracker.track([1, 2, 3, 4], 'a');
    tracker.track([5, 6], 'b');
    let resolved = false;
    const below = tracker.whenBelow(3).then(() => {
      resolved = true;
    });
    await Promise.resolve();
    expect(resolved).toBe(false);
    tracker.done([5, 6]); // done but not acked: still in flight
    await Promise.resolve();
    expect(resolved).toBe(false);
    tracker.done([1, 2, 3, 4]);
    await below;
    expect(resolved).toBe(true);
    await expect(tracker.whenBelow(1)).resolves.toBeUndefined();
  });

  it('keeps working across many chunks (prefix compaction)', () => {
    const { acks, tracker } = recorder();
    let seq = 0;
    for (let c = 0; c < 5000; c++) {
      const seqs = [++seq, ++seq];
      tracker.track(seqs, `c${c}`);
      if (c >= 10) tracker.done([seqs[0]! - 20, seqs[1]! - 20]);
    }
    for (let s = seq - 19; s <= seq; s++) tracker.done([s]);
    expect(tracker.inFlight).toBe(0);
    expect(acks.at(-1)).toEqual(['c4999', 10_000]);
    // every ack strictly advances
    for (let i = 1; i < acks.length; i++) expect(acks[i]![1]).toBeGreaterThan(acks[i - 1]![1]);
  });

  it('matches a reference model for random chunking, completion order and redeliveries', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 30 }),
        fc.integer({ min: 0, max: 1_000_000 }),
        (chunkSizes, salt) => {
          const acks: number[] = [];
          const tracker = new AckTracker<number>((_, seq) => acks.push(seq));
          const all: number[] = [];
          const chunks: number[][] = [];
          let seq = 0;
          for (const size of chunkSizes) {
            const chunk = Array.from({ length: size }, () => (seq += 1 + (salt % 2)));
            all.push(...chunk);
            chunks.push(chunk);
            tracker.track(chunk, chunk.at(-1)!);
            tracker.track(chunk.slice(0, 2), -1); // a redelivery of already tracked messages
          }
          // a deterministic shuffle from the salt
          const order = all
            .map((s, i) => ({ s, k: (i * 7919 + salt) % 1009 }))
            .sort((a, b) => a.k - b.k)
            .map((x) => x.s);
          const doneSet = new Set<number>();
          for (const s of order) {
            tracker.done([s]);
            doneSet.add(s);
            // reference: every ack covers only done messages
            const lastAck = acks.at(-1) ?? 0;
            for (const t of all) if (t <= lastAck) expect(doneSet.has(t)).toBe(true);
            // and the ack is as far as the done prefix of chunks allows
            let expected = 0;
            for (const c of chunks) {
              if (!c.every((t) => doneSet.has(t))) break;
              expected = c.at(-1)!;
            }
            expect(lastAck).toBe(expected);
            expect(tracker.inFlight).toBe(all.filter((t) => t > lastAck).length);
          }
          expect(acks.at(-1)).toBe(all.at(-1));
          for (let i = 1; i < acks.length; i++) expect(acks[i]!).toBeGreaterThan(acks[i - 1]!);
          expect(tracker.inFlight).toBe(0);
        },
      ),
      { numRuns: 200 },
    );
  });
});
