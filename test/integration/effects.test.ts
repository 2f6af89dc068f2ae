import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { assign, fromPromise, raise, setup, spawnChild, type AnyActorRef } from 'xstate';
import { z } from 'zod';
import { ManualClock } from '../../actors/clock.ts';
import { ActorSystem } from '../../actors/system.ts';
import { testDb, type TestDb } from '../support/db.ts';

/** A machine whose `go` invokes an effect; the effect is provided per test. */
const jobMachine = setup({
  types: {} as { context: { result: string | null; attempts: number }; events: { type: 'go' } },
  actors: { work: fromPromise<string>(async () => 'unprovided') },
}).createMachine({
  id: 'job',
  context: { result: null, attempts: 0 },
  initial: 'idle',
  states: {
    idle: { on: { go: 'working' } },
    working: {
      entry: assign({ attempts: ({ context }) => context.attempts + 1 }),
      invoke: { src: 'work', onDone: { target: 'done', actions: assign({ result: ({ event }) => event.output }) } },
    },
    done: {},
  },
});

/** `ping` only counts; `go` invokes an effect that reports whether `go` was stored when it started. */
const probeMachine = setup({
  types: {} as { context: { pings: number; storedWhenStarted: number | null }; events: { type: 'ping' } | { type: 'go' } },
  actors: { work: fromPromise<number>(async () => -1) },
}).createMachine({
  id: 'probe',
  context: { pings: 0, storedWhenStarted: null },
  initial: 'idle',
  states: {
    idle: { on: { ping: { actions: assign({ pings: ({ context }) => context.pings + 1 }) }, go: 'working' } },
    working: { invoke: { src: 'work', onDone: { target: 'done', actions: assign({ storedWhenStarted: ({ event }) => event.output }) } } },
    done: {},
  },
});

/**
 * Each `via…` event leads to an effect child a different way; the child reports how many events
 * of its own type were stored when it started. The machine invokes nothing.
 */
type Via = 'viaAssign' | 'viaArgs' | 'viaSpawnChild' | 'viaEntry' | 'viaRaise';
const spawnerMachine = setup({
  types: {} as {
    context: { pings: number; storedWhenStarted: number | null; kid: AnyActorRef | null };
    events: { type: 'ping' } | { type: Via } | { type: 'raised' } | { type: 'xstate.done.actor.kid'; output: number };
  },
  actors: { work: fromPromise<number, string>(async () => -1) },
}).createMachine({
  id: 'spawner',
  context: { pings: 0, storedWhenStarted: null, kid: null },
  initial: 'idle',
  states: {
    idle: { on: { viaEntry: 'spawning' } },
    // Entered by a transition whose own actions do nothing.
    spawning: { entry: assign({ kid: ({ spawn }) => spawn('work', { id: 'kid', input: 'viaEntry' }) }) },
  },
  on: {
    ping: { actions: assign({ pings: ({ context }) => context.pings + 1 }) },
    viaAssign: { actions: assign({ kid: ({ spawn, event }) => spawn('work', { id: 'kid', input: event.type }) }) },
    // The assigner takes its arguments whole: nothing in it says whether it spawns.
    viaArgs: { actions: assign((args) => ({ kid: spawnWork(args) })) },
    viaSpawnChild: { actions: spawnChild('work', { id: 'kid', input: ({ event }) => event.type }) },
    // Raises an event whose transition spawns, within the same step.
    viaRaise: { actions: raise({ type: 'raised' }) },
    raised: { actions: spawnChild('work', { id: 'kid', input: 'viaRaise' }) },
    'xstate.done.actor.kid': { actions: assign({ storedWhenStarted: ({ event }) => event.output, kid: null }) },
  },
});

function spawnWork(args: { spawn: (src: 'work', options: { id: string; input: string }) => AnyActorRef; event: { type: string } }): AnyActorRef {
  return args.spawn('work', { id: 'kid', input: args.event.type });
}

let t: TestDb;
beforeEach(async () => {
  t = await testDb();
});
afterEach(async () => {
  await t.cleanup();
});

describe('at-least-once effects', () => {

  function systemWith(work: () => Promise<string>, db = t.reopen()) {
    const system = new ActorSystem({ db, clock: new ManualClock(0) });
    system.register({ name: 'job', machine: jobMachine.provide({ actors: { work: fromPromise(work) } }), events: { go: z.strictObject({}) }, idleTimeoutMs: 1000 });
    return system;
  }

  it('starts an effect only once the event that asks for it is stored', async () => {
    const db = t.reopen();
    const system = new ActorSystem({ db, clock: new ManualClock(0) });
    const work = fromPromise<number>(async () => {
      const { rows } = await t.db.query(`SELECT count(*)::int AS n FROM journal WHERE key = 'P-1' AND event->>'type' = 'go'`);
      return rows[0].n;
    });
    system.register({ name: 'probe', machine: probeMachine.provide({ actors: { work } }), events: { ping: z.strictObject({}), go: z.strictObject({}) } });
    await system.start();
    await system.sendAndWait('probe', 'P-1', { type: 'ping' });
    // Resident now: a step that starts no effect is committed with its event in one write...
    await system.send('probe', 'P-1', { type: 'ping' });
    const { rows } = await t.db.query(`SELECT processed_seq FROM actors WHERE key = 'P-1'`);
    expect(rows[0].processed_seq).toBe(2);
    // ...but one that starts an effect is taken only after its event is committed.
    await system.send('probe', 'P-1', { type: 'go' });
    for (let i = 0; i < 200 && (await system.get('probe', 'P-1')).state !== 'done'; i++) await new Promise((r) => setTimeout(r, 10));
    expect((await system.get('probe', 'P-1')).context).toMatchObject({ pings: 2, storedWhenStarted: 1 });
    await system.stop();
    await db.close();
  });

  it.each(['viaAssign', 'viaArgs', 'viaSpawnChild', 'viaEntry', 'viaRaise'] as const)('starts a spawned effect only once the event that asks for it is stored (%s)', async (via) => {
    const db = t.reopen();
    const system = new ActorSystem({ db, clock: new ManualClock(0) });
    // Group commits finished when the child started: a child started by a step taken inside the
    // batch that stores its event starts before that batch is counted.
    let commitsAtStart = -1;
    const work = fromPromise<number, string>(async ({ input }) => {
      commitsAtStart = system.committer.stats.flushes;
      const { rows } = await t.db.query(`SELECT count(*)::int AS n FROM journal WHERE key = 'S-1' AND event->>'type' = $1`, [input]);
      return rows[0].n;
    });
    const events = Object.fromEntries(['ping', 'viaAssign', 'viaArgs', 'viaSpawnChild', 'viaEntry', 'viaRaise'].map((type) => [type, z.strictObject({})]));
    system.register({ name: 'spawner', machine: spawnerMachine.provide({ actors: { work } }), events });
    await system.start();
    await system.sendAndWait('spawner', 'S-1', { type: 'ping' });
    // Resident: a step that spawns nothing is committed with its event in one write...
    await system.send('spawner', 'S-1', { type: 'ping' });
    const { rows } = await t.db.query(`SELECT processed_seq FROM actors WHERE key = 'S-1'`);
    expect(rows[0].processed_seq).toBe(2);
    // ...one that spawns an effect is taken only after its event is committed.
    const commitsBefore = system.committer.stats.flushes;
    await system.send('spawner', 'S-1', { type: via });
    for (let i = 0; i < 200 && (await system.get('spawner', 'S-1')).context.storedWhenStarted === null; i++) await new Promise((r) => setTimeout(r, 10));
    expect(commitsAtStart, 'group commits when the child started').toBeGreaterThan(commitsBefore);
    expect((await system.get('spawner', 'S-1')).context).toMatchObject({ pings: 2, storedWhenStarted: 1 });
    await system.stop();
    await db.close();
  });

  it('does not start a running effect again when a resend reaches its actor', async () => {
    const db = t.reopen();
    const system = new ActorSystem({ db, clock: new ManualClock(0) });
    let calls = 0;
    const work = fromPromise<number>(() => {
      calls++;
      return new Promise<number>(() => {}); // still running when the resend comes
    });
    system.register({ name: 'probe', machine: probeMachine.provide({ actors: { work } }), events: { ping: z.strictObject({}), go: z.strictObject({}) } });
    await system.start();
    expect(await system.sendAndWait('probe', 'P-2', { type: 'ping' }, { idempotencyKey: 'k-1' })).toMatchObject({ seq: 1, duplicate: false });
    await system.sendAndWait('probe', 'P-2', { type: 'go' });
    await system.idleDrains();
    expect(calls).toBe(1);
    // The journal's unique key refuses the batch holding the resend; nothing about it may
    // reload the actor, which would start its running effect again.
    expect(await system.send('probe', 'P-2', { type: 'ping' }, { idempotencyKey: 'k-1' })).toEqual({ seq: 1, duplicate: true });
    await system.idleDrains();
    expect(calls).toBe(1);
    expect((await system.get('probe', 'P-2')).state).toBe('working');
    await system.stop();
    await db.close();
  });

  it('runs an effect that was in flight when the process died again on the next start', async () => {
    let calls = 0;
    const firstDb = t.reopen();
    const first = systemWith(() => {
      calls++;
      return new Promise<string>(() => {}); // the process dies before this settles
    }, firstDb);
    await first.start();
    const r = await first.sendAndWait('job', 'J-1', { type: 'go' });
    expect(r.state).toBe('working');
    await first.committer.drain();
    expect(calls).toBe(1);
    const { rows } = await t.db.query(`SELECT effects_in_flight FROM actors WHERE key = 'J-1'`);
    expect(rows[0].effects_in_flight).toBe(true);
    // No stop(): the first system is abandoned as a crashed process would be, and its
    // connections go with it (so does its liveness lock: its actors may be claimed).
    await firstDb.close();

    let reruns = 0;
    const second = systemWith(async () => {
      reruns++;
      return 'ok';
    });
    await second.start();
    await second.settled();
    expect(reruns).toBe(1);
    const view = await second.get('job', 'J-1');
    expect(view.state).toBe('done');
    expect(view.context).toMatchObject({ result: 'ok', attempts: 1 });
    const after = await t.db.query(`SELECT effects_in_flight FROM actors WHERE key = 'J-1'`);
    expect(after.rows[0].effects_in_flight).toBe(false);
    const history = await second.history('job', 'J-1');
    expect(history.at(-1)).toMatchObject({ seq: null, from: 'working', to: 'done' });
    await second.stop();
  });

  it('stores the state an effect that settles at once moves its actor to', async () => {
    // The effect's result comes while the actor's first event is still being processed and saved.
    const clock = new ManualClock(0);
    const system = new ActorSystem({ db: t.db, clock });
    system.register({ name: 'job', machine: jobMachine.provide({ actors: { work: fromPromise(async () => 'at once') } }), events: { go: z.strictObject({}) } });
    clock.settle = () => system.settled();
    await system.start();
    await system.send('job', 'J-3', { type: 'go' });
    await system.settled();
    expect(await system.get('job', 'J-3')).toMatchObject({ state: 'done', context: { result: 'at once' } });
    await system.stop();
  });

  it('does not evict an actor while its effect runs', async () => {
    let release!: (v: string) => void;
    const clock = new ManualClock(0);
    const system = new ActorSystem({ db: t.db, clock });
    system.register({
      name: 'job',
      machine: jobMachine.provide({ actors: { work: fromPromise(() => new Promise<string>((r) => (release = r))) } }),
      events: { go: z.strictObject({}) },
      idleTimeoutMs: 1000,
    });
    clock.settle = () => system.settled();
    await system.start();
    await system.sendAndWait('job', 'J-2', { type: 'go' });
    await clock.advance(5_000);
    expect(system.residentCount.activations).toBe(1);
    release('late');
    await system.settled();
    expect((await system.get('job', 'J-2')).context).toMatchObject({ result: 'late' });
    await clock.advance(5_000);
    expect(system.residentCount.activations).toBe(0);
    await system.stop();
  });
});

describe('states that cannot be stored', () => {

  it("lets go an actor whose effect output cannot be stored, without failing other actors' writes or re-running the effect in a loop", async () => {
    const clock = new ManualClock(0);
    const system = new ActorSystem({ db: t.db, clock });
    let runs = 0;
    let release!: (v: string) => void;
    const poisoned = fromPromise(() => (runs++, new Promise<string>((r) => (release = r))));
    system.register({ name: 'job', machine: jobMachine.provide({ actors: { work: poisoned } }), events: { go: z.strictObject({}) } });
    system.register({ name: 'calm', machine: jobMachine.provide({ actors: { work: fromPromise(async () => 'fine') } }), events: { go: z.strictObject({}) } });
    clock.settle = () => system.settled();
    await system.start();
    await system.sendAndWait('job', 'J-9', { type: 'go' });
    expect(runs).toBe(1);
    // Other actors write before, while and after the effect settles with a NUL in its output.
    const others: Promise<string>[] = [];
    const sendOthers = (round: number) => {
      for (let i = 0; i < 10; i++) others.push(system.send('calm', `other-${round}-${i}`, { type: 'go' }).then(() => 'ok', (err: Error) => err.name));
    };
    sendOthers(0);
    release('a\u0000b');
    sendOthers(1);
    await system.settled();
    for (let round = 2; round < 5; round++) {
      sendOthers(round);
      await clock.advance(1_000);
    }
    await system.settled();
    expect(new Set(await Promise.all(others))).toEqual(new Set(['ok']));
    expect((await t.db.query(`SELECT count(*)::int AS n FROM actors WHERE type = 'calm' AND state = 'done'`)).rows[0].n).toBe(50);
    expect(system.stats).toMatchObject({ unstorableStates: 1, saveFailures: 0 });
    expect(system.heldOffCount).toBe(1);
    // The poisoned actor keeps its last stored state and is not in memory; nothing re-ran the
    // effect while the clock moved on.
    const stored = await t.db.query(`SELECT state, processed_seq FROM actors WHERE key = 'J-9'`);
    expect(stored.rows[0]).toMatchObject({ state: 'working', processed_seq: 1 });
    expect(system.residentCount.activations).toBe(50);
    expect(runs).toBe(1);
    // Its next event takes it up from the stored state, and the effect runs again.
    await expect(system.sendAndWait('job', 'J-9', { type: 'go' })).rejects.toThrow(/not accepted in state 'working'/);
    expect(runs).toBe(2);
    await system.stop();
  });

  it('wakes an actor whose timer leads to a state that cannot be stored later and later, not at every pass, until a state of it is stored', async () => {
    const fuseMachine = setup({ types: {} as { context: { fired: string; bad: boolean }; events: { type: 'arm'; bad: boolean } | { type: 'defuse' } } }).createMachine({
      id: 'fuse',
      context: { fired: '', bad: false },
      initial: 'idle',
      states: {
        idle: { on: { arm: { target: 'armed', actions: assign({ bad: ({ event }) => event.bad }) } } },
        armed: {
          after: { 1000: { target: 'blown', actions: assign({ fired: ({ context }) => (context.bad ? 'a\u0000b' : 'ok') }) } },
          on: { defuse: 'idle' },
        },
        blown: { on: { defuse: 'idle' } },
      },
    });
    const clock = new ManualClock(0);
    const system = new ActorSystem({ db: t.db, clock });
    system.register({ name: 'fuse', machine: fuseMachine, events: { arm: z.strictObject({ bad: z.boolean() }), defuse: z.strictObject({}) }, idleTimeoutMs: 60_000 });
    clock.settle = () => system.settled();
    await system.start();
    await system.sendAndWait('fuse', 'F-1', { type: 'arm', bad: true });
    const failedAt: number[] = [];
    for (let s = 0; s < 120; s++) {
      await clock.advance(1_000);
      while (failedAt.length < system.stats.unstorableStates) failedAt.push(clock.now());
    }
    // Every failure is another wake of the actor by its timer; the gaps between them double
    // (1 s, 2 s, 4 s …, each up to a pass of the timer wheel later).
    const gaps = failedAt.slice(1).map((at, i) => at - failedAt[i]!);
    expect(failedAt.length, `failures at ${failedAt}`).toBeGreaterThanOrEqual(6);
    expect(failedAt.length, `failures at ${failedAt}`).toBeLessThanOrEqual(8);
    gaps.forEach((gap, i) => expect(gap, `gap ${i} in ${gaps}`).toBeGreaterThanOrEqual(1_000 * 2 ** i));
    const stored = await t.db.query(`SELECT state FROM actors WHERE key = 'F-1'`);
    expect(stored.rows[0].state).toBe('armed');
    expect(system.heldOffCount).toBe(1);

    // An event is not held back; the state it leads to is stored, and the actor is well again.
    expect((await system.sendAndWait('fuse', 'F-1', { type: 'defuse' })).state).toBe('idle');
    await system.settled();
    expect(system.heldOffCount).toBe(0);
    // Its next timer fires on time, evicted or not.
    await system.sendAndWait('fuse', 'F-1', { type: 'arm', bad: false });
    const armedAt = clock.now();
    await clock.advance(1_000);
    expect(await system.get('fuse', 'F-1')).toMatchObject({ state: 'blown', context: { fired: 'ok' } });
    const fired = await t.db.query(`SELECT at FROM transitions WHERE key = 'F-1' AND to_state = 'blown'`);
    expect(fired.rows.map((r) => Number(r.at) - armedAt)).toEqual([1_000]);
    await system.stop();
  });

  it("refuses an event whose step would put text that cannot be stored into the snapshot, and stores the others' events", async () => {
    const noteMachine = setup({ types: {} as { context: { note: string }; events: { type: 'note'; code: number } } }).createMachine({
      id: 'note',
      context: { note: '' },
      on: { note: { actions: assign({ note: ({ event }) => `n${String.fromCharCode(event.code)}` }) } },
    });
    const system = new ActorSystem({ db: t.db, clock: new ManualClock(0) });
    system.register({ name: 'note', machine: noteMachine, events: { note: z.strictObject({ code: z.number().int().min(0).max(0xffff) }) } });
    await system.start();
    await system.sendAndWait('note', 'N-1', { type: 'note', code: 65 });
    const [bad, good] = await Promise.allSettled([system.sendAndWait('note', 'N-1', { type: 'note', code: 0 }), system.sendAndWait('note', 'N-2', { type: 'note', code: 66 })]);
    expect(bad).toMatchObject({ status: 'rejected', reason: { name: 'ValidationError', field: 'snapshot' } });
    expect((bad as PromiseRejectedResult).reason.message).toMatch(/NUL character/);
    expect(good.status).toBe('fulfilled');
    expect((await system.get('note', 'N-1')).context).toEqual({ note: 'nA' });
    expect((await system.get('note', 'N-2')).context).toEqual({ note: 'nB' });
    // A lone surrogate is refused the same way; the actor goes on from its last good state.
    await expect(system.sendAndWait('note', 'N-1', { type: 'note', code: 0xd800 })).rejects.toMatchObject({ field: 'snapshot' });
    await system.sendAndWait('note', 'N-1', { type: 'note', code: 67 });
    expect((await system.get('note', 'N-1')).context).toEqual({ note: 'nC' });
    await system.stop();
  });
});
