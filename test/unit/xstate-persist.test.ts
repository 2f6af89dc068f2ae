import { assign, createActor, createMachine, fromPromise, setup, type AnyActor } from 'xstate';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../actors/clock.ts';
import { persistedJson, SNAPSHOT_KEYS } from '../../actors/xstate-persist.ts';
import { reminderMachine } from '../../machines/reminder.ts';
import { tallyMachine } from '../../machines/tally.ts';

/** What the runtime stores must be exactly what XState's own persistence gives, in every case. */
const same = (actor: AnyActor) => expect(persistedJson(actor)).toBe(JSON.stringify(actor.getPersistedSnapshot()));

describe('persistedJson', () => {
  it("is XState's own persisted snapshot, byte for byte, as a machine moves", async () => {
    const tally = createActor(tallyMachine, { input: { limit: 2 } }).start();
    same(tally);
    tally.send({ type: 'add', id: 'a', amount: 3 });
    tally.send({ type: 'add', id: 'b', amount: 4 });
    tally.send({ type: 'add', id: 'c', amount: 5 }); // refused: full
    same(tally);

    const clock = new ManualClock(0);
    const reminder = createActor(reminderMachine, { clock }).start();
    reminder.send({ type: 'arm', delayMs: 1_000 });
    same(reminder);
    await clock.advance(1_000);
    expect(reminder.getSnapshot().value).toBe('fired');
    same(reminder);
  });

  it('matches for a final state with output and for an actor that failed', () => {
    const done = createActor(
      createMachine({ initial: 'a', context: { n: 1 }, states: { a: { on: { go: 'b' } }, b: { type: 'final' } }, output: ({ context }) => ({ n: context.n }) }),
    ).start();
    done.send({ type: 'go' });
    expect(done.getSnapshot().status).toBe('done');
    same(done);

    const failing = createActor(
      createMachine({ initial: 'a', states: { a: { on: { go: { actions: () => { throw new Error('boom'); } } } } } }),
    );
    failing.subscribe({ error: () => {} });
    failing.start();
    failing.send({ type: 'go' });
    expect(failing.getSnapshot().status).toBe('error');
    same(failing);
  });

  it('matches with history, children, and actor refs in the context', async () => {
    const withHistory = createActor(
      createMachine({
        initial: 'outer',
        states: {
          outer: { initial: 'x', on: { leave: 'away' }, states: { x: { on: { next: 'y' } }, y: {}, hist: { type: 'history' } } },
          away: { on: { back: 'outer.hist' } },
        },
      }),
    ).start();
    withHistory.send({ type: 'next' });
    withHistory.send({ type: 'leave' });
    expect(Object.keys(withHistory.getSnapshot().historyValue)).not.toHaveLength(0);
    same(withHistory);
    withHistory.send({ type: 'back' });
    same(withHistory);

    const child = createMachine({ initial: 'idle', states: { idle: {} } });
    const other = createActor(child).start();
    const parent = createActor(
      setup({ actors: { child, work: fromPromise(() => new Promise<number>(() => {})) } }).createMachine({
        context: ({ input }: { input: { other: AnyActor } }) => ({ other: input.other, spawned: undefined as AnyActor | undefined, me: undefined as AnyActor | undefined }),
        initial: 'a',
        states: {
          a: { on: { refs: { actions: assign({ me: ({ self }) => self }) }, spawn: { actions: assign({ spawned: ({ spawn }) => spawn('child', { id: 'kid' }) }) }, work: 'b' } },
          b: { invoke: { id: 'job', src: 'work' } },
        },
      }),
      { input: { other } },
    ).start();
    same(parent); // a ref to an actor that is not its child
    parent.send({ type: 'refs' });
    same(parent); // a ref to itself
    parent.send({ type: 'spawn' });
    expect(Object.keys(parent.getSnapshot().children)).toEqual(['kid']);
    same(parent);
    parent.send({ type: 'work' });
    same(parent);
  });
});

describe('XState machine snapshot shape persistedJson relies on', () => {
  it('has exactly the keys persistedJson knows, in order', () => {
    const actor = createActor(tallyMachine, { input: { limit: 2 } }).start();
    expect(Object.keys(actor.getSnapshot())).toEqual(SNAPSHOT_KEYS);
    actor.send({ type: 'add', id: 'a', amount: 1 });
    expect(Object.keys(actor.getSnapshot())).toEqual(SNAPSHOT_KEYS);
  });
});
