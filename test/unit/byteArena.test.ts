import { describe, expect, it } from 'vitest';
import { ByteArena } from '../../operators/byteArena.js';

const bytes = (n: number, fill: number) => Buffer.alloc(n, fill);

describe('ByteArena', () => {
  it('gives back every live slot as added, through growth and compaction, and reuses freed slots', () => {
    const arena = new ByteArena(64);
    const live = new Map<number, Uint8Array>();
    // a churn of adds and removes: the buffer fills with garbage and is compacted many times
    for (let i = 0; i < 5000; i++) {
      const b = bytes(1 + (i % 97), i % 251);
      live.set(arena.add(b), b);
      if (i % 3 === 0) {
        const [slot] = live.keys();
        arena.remove(slot!);
        live.delete(slot!);
      }
    }
    for (const [slot, b] of live) {
      expect(arena.view(slot)).toEqual(b);
      expect(arena.sizeOf(slot)).toBe(b.byteLength);
      expect(arena.buffer.subarray(arena.offsetOf(slot), arena.offsetOf(slot) + b.byteLength)).toEqual(b);
    }
    expect(arena.bytes).toBe([...live.values()].reduce((n, b) => n + b.byteLength, 0));
    // freed slot numbers are reused: no more slots than were ever live at once
    expect(Math.max(...live.keys())).toBeLessThan(3400);
    // garbage does not pile up: compaction keeps the buffer within a small multiple of the live bytes
    expect(arena.buffer.length).toBeLessThan(3 * arena.bytes + 16 * 1024);
  });

  it('keeps a view and a buffer taken earlier valid after the bytes moved', () => {
    const arena = new ByteArena(64);
    const a = arena.add(bytes(40, 1));
    const view = arena.view(a);
    const buffer = arena.buffer;
    const at = arena.offsetOf(a);
    for (let i = 0; i < 100; i++) arena.remove(arena.add(bytes(50, 2))); // compacts several times
    expect(arena.buffer).not.toBe(buffer);
    expect(view).toEqual(bytes(40, 1));
    expect(buffer.subarray(at, at + 40)).toEqual(bytes(40, 1)); // what a snapshot's cut reads
    expect(arena.view(a)).toEqual(bytes(40, 1));
  });

  it('refuses empty bytes (a size of 0 marks a free slot)', () => {
    expect(() => new ByteArena().add(new Uint8Array(0))).toThrow(/empty/);
  });
});
