import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../actors/clock.ts';
import { HeldOff } from '../../actors/held-off.ts';

describe('HeldOff', () => {
  it('doubles the wait with each failure in a row, up to 5 minutes', () => {
    const clock = new ManualClock(1_000);
    const held = new HeldOff(clock);
    const waits = Array.from({ length: 12 }, () => held.hold('a/1').until - clock.now());
    expect(waits).toEqual([1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300].map((s) => s * 1_000));
    expect(held.until('b/1')).toBe(0);
  });

  it('is cleared by a state stored since the last failure, not by one written across a failure', () => {
    const clock = new ManualClock(0);
    const held = new HeldOff(clock);
    expect(held.failures('a/1')).toBe(0);
    held.clear('a/1', 0); // nothing held: nothing to clear
    held.hold('a/1');
    const atWriteStart = held.failures('a/1');
    held.hold('a/1'); // failed again while that write was under way
    held.clear('a/1', atWriteStart);
    expect(held.size).toBe(1);
    expect(held.failures('a/1')).toBe(2);
    held.clear('a/1', held.failures('a/1'));
    expect(held.size).toBe(0);
    expect(held.until('a/1')).toBe(0);
  });
});
