import { readFileSync } from 'node:fs';
import { createActor } from 'xstate';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../actors/clock.ts';
import { readScheduled, restoreScheduled } from '../../actors/xstate-timers.ts';
import { reminderMachine } from '../../machines/reminder.ts';

/**
 * The runtime reads XState's private scheduler (actors/xstate-timers.ts). These tests fail
 * loudly when an upgrade moves it; re-check durable timers before changing the pin.
 */
describe('XState private scheduler the durable timers rely on', () => {
  it('is the pinned version, exactly', () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
    const installed = JSON.parse(readFileSync(new URL('../../node_modules/xstate/package.json', import.meta.url), 'utf8'));
    expect(pkg.dependencies.xstate).toBe('5.33.3');
    expect(installed.version).toBe('5.33.3');
  });

  it('keeps after-delays in system._snapshot._scheduledEvents with id, event, delay and startedAt', () => {
    const clock = new ManualClock(0);
    const actor = createActor(reminderMachine, { clock }).start();
    actor.send({ type: 'arm', delayMs: 5_000 });
    const raw = (actor.system as any)._snapshot._scheduledEvents as Record<string, any>;
    const entries = Object.values(raw);
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ id: 'xstate.after.reminderDelay.reminder.armed', delay: 5_000, event: { type: 'xstate.after.reminderDelay.reminder.armed' } });
    expect(entries[0].source).toBe(actor);
    expect(entries[0].target).toBe(actor);
    expect(typeof entries[0].startedAt).toBe('number');
    expect(readScheduled(actor)).toEqual([entries[0]]);
  });

  it('leaves scheduled events out of the persisted snapshot and does not reschedule on restore', () => {
    const clock = new ManualClock(0);
    const actor = createActor(reminderMachine, { clock }).start();
    actor.send({ type: 'arm', delayMs: 5_000 });
    const persisted = JSON.parse(JSON.stringify(actor.getPersistedSnapshot()));
    expect(JSON.stringify(persisted)).not.toContain('xstate.after');
    actor.stop();
    const restored = createActor(reminderMachine, { clock: new ManualClock(0), snapshot: persisted }).start();
    expect(readScheduled(restored)).toEqual([]);
  });

  it('takes a timer back through system.scheduler.schedule under cancel-on-exit', async () => {
    const clock = new ManualClock(0);
    const actor = createActor(reminderMachine, { clock }).start();
    actor.send({ type: 'arm', delayMs: 5_000 });
    const persisted = actor.getPersistedSnapshot();
    actor.stop();
    const clock2 = new ManualClock(0);
    const restored = createActor(reminderMachine, { clock: clock2, snapshot: persisted }).start();
    restoreScheduled(restored, 'xstate.after.reminderDelay.reminder.armed', { type: 'xstate.after.reminderDelay.reminder.armed' }, 2_000);
    expect(readScheduled(restored)).toHaveLength(1);
    await clock2.advance(2_000);
    expect(restored.getSnapshot().value).toBe('fired');

    const again = createActor(reminderMachine, { clock: clock2, snapshot: persisted }).start();
    restoreScheduled(again, 'xstate.after.reminderDelay.reminder.armed', { type: 'xstate.after.reminderDelay.reminder.armed' }, 2_000);
    again.send({ type: 'cancel' }); // leaving the state must cancel the restored timer
    expect(readScheduled(again)).toEqual([]);
    await clock2.advance(5_000);
    expect(again.getSnapshot().value).toBe('idle');
  });
});
