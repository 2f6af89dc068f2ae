import { describe, expect, it } from 'vitest';
import { systemClock } from '../../actors/clock.ts';

// Node counts a timeout from the event loop's cached, truncated time: a plain setTimeout fires
// before its due time by Date.now() about one time in ten (measured here: 57 and 66 of 500).
describe('system clock', () => {
  it('never fires a timeout before its due time by the clock', async () => {
    const early: number[] = [];
    await Promise.all(
      Array.from({ length: 500 }, (_, i) => {
        const ms = 1 + (i % 17);
        const due = systemClock.now() + ms;
        return new Promise<void>((resolve) =>
          systemClock.setTimeout(() => {
            if (systemClock.now() < due) early.push(due - systemClock.now());
            resolve();
          }, ms),
        );
      }),
    );
    expect(early).toEqual([]);
  });

  it('cancels a timeout, also one that woke early and sleeps for the rest', async () => {
    const firedAfterCancel: number[] = [];
    await Promise.all(
      Array.from({ length: 300 }, (_, i) => {
        const ms = 1 + (i % 11);
        let cancelled = false;
        const handle = systemClock.setTimeout(() => cancelled && firedAfterCancel.push(i), ms);
        // Fires in the same turn as the clock's first wake: after it, so an early wake has re-armed.
        setTimeout(() => {
          cancelled = true;
          systemClock.clearTimeout(handle);
        }, ms);
        return new Promise((r) => setTimeout(r, ms + 20));
      }),
    );
    expect(firedAfterCancel).toEqual([]);
  });
});
