import { createActor } from 'xstate';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../actors/clock.ts';
import { reminderMachine } from '../../machines/reminder.ts';
import { tallyMachine } from '../../machines/tally.ts';

describe('reminder machine on a controllable clock', () => {
  it('fires its after-delay exactly when the clock reaches it', async () => {
    const clock = new ManualClock(1_000);
    const actor = createActor(reminderMachine, { clock }).start();
    actor.send({ type: 'arm', delayMs: 5_000 });
    expect(actor.getSnapshot().value).toBe('armed');
    await clock.advance(4_999);
    expect(actor.getSnapshot().value).toBe('armed');
    await clock.advance(1);
    expect(actor.getSnapshot().value).toBe('fired');
    expect(actor.getSnapshot().context.firedCount).toBe(1);
  });

  it('restarts the delay on snooze and drops it on cancel', async () => {
    const clock = new ManualClock(0);
    const actor = createActor(reminderMachine, { clock }).start();
    actor.send({ type: 'arm', delayMs: 1_000 });
    await clock.advance(800);
    actor.send({ type: 'snooze' });
    await clock.advance(800);
    expect(actor.getSnapshot().value).toBe('armed');
    await clock.advance(200);
    expect(actor.getSnapshot().value).toBe('fired');
    actor.send({ type: 'arm', delayMs: 1_000 });
    actor.send({ type: 'cancel' });
    expect(clock.size).toBe(0);
    await clock.advance(5_000);
    expect(actor.getSnapshot().value).toBe('idle');
  });
});

describe('tally machine', () => {
  it('records each applied entry and refuses entries once closed or full', () => {
    const actor = createActor(tallyMachine, { input: { limit: 2 } }).start();
    actor.send({ type: 'add', id: 'a', amount: 2 });
    actor.send({ type: 'add', id: 'b', amount: 3 });
    expect(actor.getSnapshot().can({ type: 'add', id: 'c', amount: 1 })).toBe(false);
    actor.send({ type: 'close' });
    expect(actor.getSnapshot().can({ type: 'add', id: 'c', amount: 1 })).toBe(false);
    expect(actor.getSnapshot().context).toMatchObject({ total: 5, count: 2, applied: ['a', 'b'] });
  });
});
