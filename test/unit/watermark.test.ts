import { describe, expect, it } from 'vitest';
import { Watermark } from '../../operators/watermark.js';

describe('Watermark', () => {
  it('is the highest event time minus the allowed lateness, never moving back', () => {
    const w = new Watermark({ allowedLatenessMs: 5000 });
    expect(w.value).toBe(Number.NEGATIVE_INFINITY);
    w.observe(100_000);
    expect(w.value).toBe(95_000);
    w.observe(90_000);
    expect(w.value).toBe(95_000);
    expect(w.isLate(94_999)).toBe(true);
    expect(w.isLate(95_000)).toBe(false);
  });

  it('follows the wall clock only after idleAfterMs without events, never beyond wall clock − lateness', () => {
    const w = new Watermark({ allowedLatenessMs: 5000, idleAfterMs: 10_000 });
    w.observe(1_000_000);
    w.active(2_000_000);
    w.idle(2_009_999);
    expect(w.value).toBe(995_000);
    w.idle(2_010_000);
    expect(w.value).toBe(2_005_000);
    w.idle(2_020_000);
    expect(w.value).toBe(2_015_000);
    w.active(2_020_001); // events again: the idle timer restarts
    w.idle(2_025_000);
    expect(w.value).toBe(2_015_000);
  });

  it('starts the idle timer at the first call after a restore, so a backlog is never skipped', () => {
    const w = new Watermark();
    w.restore({ maxEventTime: 1000, value: 0 });
    w.idle(1_000_000_000);
    expect(w.value).toBe(0);
    w.idle(1_000_010_000);
    expect(w.value).toBe(1_000_005_000);
  });

  it('advanceTo moves it just past the time (items at it are final), forward only', () => {
    const w = new Watermark();
    w.advanceTo(50);
    w.advanceTo(40);
    expect(w.value).toBe(51);
    expect(w.state()).toEqual({ maxEventTime: Number.NEGATIVE_INFINITY, value: 51 });
  });
});
