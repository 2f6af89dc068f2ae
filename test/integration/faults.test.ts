import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { assign, setup } from 'xstate';
import { z } from 'zod';
import { ManualClock } from '../../actors/clock.ts';
import { UnavailableError } from '../../actors/errors.ts';
import { ActorSystem } from '../../actors/system.ts';
import { tallyType } from '../../http/modules/demo.ts';
import { createDb } from '../../storage/db.ts';
import { testDb, type TestDb } from '../support/db.ts';

const brittleMachine = setup({
  types: {} as { context: { n: number }; events: { type: 'poke' } | { type: 'break' } },
}).createMachine({
  id: 'brittle',
  context: { n: 0 },
  initial: 'up',
  states: {
    up: {
      on: {
        poke: { actions: assign({ n: ({ context }) => context.n + 1 }) },
        break: {
          actions: () => {
            throw new Error('machine bug');
          },
        },
      },
    },
  },
});

describe('faults', () => {
  let t: TestDb;
  let clock: ManualClock;
  let system: ActorSystem;

  beforeEach(async () => {
    t = await testDb();
    clock = new ManualClock(0);
    system = new ActorSystem({ db: t.db, clock });
    system.register(tallyType());
    system.register({ name: 'brittle', machine: brittleMachine, events: { poke: z.strictObject({}), break: z.strictObject({}) } });
    clock.settle = () => system.settled();
    await system.start();
  });
  afterEach(async () => {
    await system.stop();
    await t.cleanup();
  });

  it('keeps running when a machine throws; the actor reports status error', async () => {
    await system.sendAndWait('brittle', 'B-1', { type: 'poke' });
    await system.sendAndWait('brittle', 'B-1', { type: 'break' });
    await new Promise((r) => setTimeout(r, 20)); // XState would rethrow from a timer here
    await system.committer.drain();
    const view = await system.get('brittle', 'B-1');
    expect(view.status).toBe('error');
    await expect(system.sendAndWait('brittle', 'B-1', { type: 'poke' })).rejects.toMatchObject({ status: 409 });
    expect((await system.sendAndWait('brittle', 'B-2', { type: 'poke' })).snapshot.context).toEqual({ n: 1 });
  });

  it('refuses to acknowledge when the journal cannot be written, and takes the resend once it can', async () => {
    await system.sendAndWait('tally', 'S-1', { type: 'add', id: 'a', amount: 1 });
    await t.db.query('ALTER TABLE journal RENAME TO journal_away');
    const err = await system.send('tally', 'S-1', { type: 'add', id: 'b', amount: 1 }, { idempotencyKey: 'b' }).catch((e) => e);
    expect(err).toBeInstanceOf(UnavailableError);
    await t.db.query('ALTER TABLE journal_away RENAME TO journal');
    const again = await system.sendAndWait('tally', 'S-1', { type: 'add', id: 'b', amount: 1 }, { idempotencyKey: 'b' });
    expect(again.duplicate).toBe(false);
    expect(again.snapshot.context).toMatchObject({ applied: ['a', 'b'] });
  });

  it('replays the journal once state can be saved again, applying each event once', async () => {
    await system.sendAndWait('tally', 'S-2', { type: 'add', id: 'a', amount: 1 });
    await t.db.query('ALTER TABLE transitions RENAME TO transitions_away');
    const ack = await system.send('tally', 'S-2', { type: 'add', id: 'b', amount: 1 });
    expect(ack.seq).toBe(2); // acknowledged: it is in the journal
    await system.settled();
    expect((await system.get('tally', 'S-2')).processedSeq).toBe(1);
    await clock.advance(1_000); // a retry while storage is still broken
    await t.db.query('ALTER TABLE transitions_away RENAME TO transitions');
    await clock.advance(1_000);
    await clock.advance(1_000);
    const view = await system.get('tally', 'S-2');
    expect(view.processedSeq).toBe(2);
    expect(view.context).toMatchObject({ applied: ['a', 'b'], count: 2 });
  });
});

describe('a session connection that cannot be made', () => {
  it('rejects the caller and throws nothing past it', async () => {
    const uncaught: unknown[] = [];
    const onUncaught = (err: unknown) => uncaught.push(err);
    process.on('uncaughtException', onUncaught);
    // A loopback port nothing listens on: the connection is refused while it is being made.
    const db = createDb({ connectionString: 'postgres://postgres@127.0.0.1:1/test' });
    try {
      await expect(db.session()).rejects.toThrow(/ECONNREFUSED/);
      await new Promise((r) => setImmediate(r));
      expect(uncaught.map(String)).toEqual([]);
    } finally {
      process.off('uncaughtException', onUncaught);
      await db.close();
    }
  });
});
