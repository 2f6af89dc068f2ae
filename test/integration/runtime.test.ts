import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ActorSystem } from '../../actors/system.ts';
import { ManualClock } from '../../actors/clock.ts';
import { NotAcceptedError, NotFoundError, UnavailableError, ValidationError, PayloadTooLargeError, BadRequestError } from '../../actors/errors.ts';
import { databaseKind, testDb, type TestDb } from '../support/db.ts';
import { reminderType, tallyType } from '../../http/modules/demo.ts';

const T0 = Date.parse('2026-01-05T09:00:00Z');

function makeSystem(db: TestDb['db'], clock: ManualClock) {
  const system = new ActorSystem({ db, clock, housekeepingIntervalMs: 1000, waitTimeoutMs: 1500, logger: { info() {}, warn() {}, error: (o: object, m?: string) => console.log('ERR', m, JSON.stringify(o)) } });
  system.register(tallyType({ idleTimeoutMs: 30_000, mailboxSize: 50 }));
  system.register(reminderType({ idleTimeoutMs: 10_000 }));
  clock.settle = () => system.settled();
  return system;
}

// The same suite on the machine's PostgreSQL (when DATABASE_URL is set) and on the embedded one.
const variants = databaseKind() === 'external' ? (['default', 'embedded'] as const) : (['embedded'] as const);

describe.each(variants)('actor system on real Postgres (%s)', (variant) => {
  let t: TestDb;
  let clock: ManualClock;
  let system: ActorSystem;

  beforeEach(async () => {
    t = await testDb(variant);
    clock = new ManualClock(T0);
    system = makeSystem(t.db, clock);
    await system.start();
  });
  afterEach(async () => {
    await system.stop();
    await t.cleanup();
  });

  it('appends, processes in order and reports history', async () => {
    const a = await system.send('tally', 'A-1', { type: 'add', id: 'e1', amount: 5 });
    const b = await system.send('tally', 'A-1', { type: 'add', id: 'e2', amount: 7 });
    expect([a.seq, b.seq]).toEqual([1, 2]);
    const r = await system.sendAndWait('tally', 'A-1', { type: 'close' });
    expect(r.seq).toBe(3);
    expect(r.state).toBe('closed');
    expect(r.snapshot.context).toMatchObject({ total: 12, count: 2, applied: ['e1', 'e2'] });
    const view = await system.get('tally', 'A-1');
    expect(view).toMatchObject({ state: 'closed', processedSeq: 3, lastSeq: 3, status: 'active' });
    const history = await system.history('tally', 'A-1');
    expect(history.map((h) => [h.seq, h.event, h.from, h.to, h.accepted])).toEqual([
      [null, 'xstate.init', '', 'open', true],
      [1, 'add', 'open', 'open', true],
      [2, 'add', 'open', 'open', true],
      [3, 'close', 'open', 'closed', true],
    ]);
  });

  it('makes a resend with the same idempotency key a no-op returning the first seq', async () => {
    const first = await system.send('tally', 'B-1', { type: 'add', id: 'x', amount: 1 }, { idempotencyKey: 'k-1' });
    const again = await system.send('tally', 'B-1', { type: 'add', id: 'x', amount: 1 }, { idempotencyKey: 'k-1' });
    expect(first).toEqual({ seq: 1, duplicate: false });
    expect(again).toEqual({ seq: 1, duplicate: true });
    const waited = await system.sendAndWait('tally', 'B-1', { type: 'add', id: 'x', amount: 1 }, { idempotencyKey: 'k-1' });
    expect(waited.seq).toBe(1);
    expect(waited.snapshot.context).toMatchObject({ count: 1, applied: ['x'] });
    const { rows } = await t.db.query('SELECT count(*)::int AS n FROM journal');
    expect(rows[0].n).toBe(1);
    // The first resend's batch was refused on its key and written again; the batches of the
    // next second read their keys before writing, so the second resend was found without it.
    expect(system.committer.stats.keyRetries).toBe(1);
  });

  it('keeps seqs dense and mailbox room untouched by resends', async () => {
    const small = new ActorSystem({ db: t.db, clock });
    small.register(tallyType({ name: 'small', mailboxSize: 3 }));
    await small.start();
    for (let i = 0; i < 5; i++) await small.sendAndWait('small', 'D-1', { type: 'add', id: 'a', amount: 1 }, { idempotencyKey: 'a' });
    const b = await small.sendAndWait('small', 'D-1', { type: 'add', id: 'b', amount: 1 }, { idempotencyKey: 'b' });
    expect(b.seq).toBe(2);
    const same = await Promise.all([1, 2, 3].map(() => small.send('small', 'D-1', { type: 'add', id: 'c', amount: 1 }, { idempotencyKey: 'c' })));
    expect(same.map((r) => r.seq)).toEqual([3, 3, 3]);
    expect(same.filter((r) => !r.duplicate)).toHaveLength(1);
    await small.idleDrains();
    await small.committer.drain();
    const view = await small.get('small', 'D-1');
    expect(view).toMatchObject({ processedSeq: 3, lastSeq: 3 });
    expect(view.context.applied).toEqual(['a', 'b', 'c']);
    await small.stop();
  });

  it('says clearly when the machine does not accept an event, and records it', async () => {
    await system.sendAndWait('tally', 'C-1', { type: 'close' });
    const err = await system.sendAndWait('tally', 'C-1', { type: 'add', id: 'late', amount: 1 }).catch((e) => e);
    expect(err).toBeInstanceOf(NotAcceptedError);
    expect(err.state).toBe('closed');
    const history = await system.history('tally', 'C-1');
    expect(history.at(-1)).toMatchObject({ event: 'add', from: 'closed', to: 'closed', accepted: false });
  });

  it('stores text and JSON exactly as sent, whatever characters they hold', async () => {
    const odd = 'quote " backslash \\ braces {} comma , NULL null \u00e9\u4e2d\ud83d\ude00 tab\t newline\n';
    const id = 'id " \\ {} , NULL \u00e9\ud83d\ude00'; // entry ids are at most 64 characters
    const key = 'quote"backslash\\braces{}comma,NULL'; // idempotency keys are printable ASCII, no spaces
    // Plain appends (the first reaches a new actor), then inline steps, in one batch and alone.
    const sends = [
      system.send('tally', 'Q-1', { type: 'annotate', note: odd }, { idempotencyKey: key }),
      system.send('tally', 'Q-1', { type: 'add', id, amount: 1 }, { idempotencyKey: 'NULL' }),
      system.send('tally', 'Q-1', { type: 'add', id: 'plain', amount: 2 }),
    ];
    expect((await Promise.all(sends)).map((r) => r.seq)).toEqual([1, 2, 3]);
    const last = await system.sendAndWait('tally', 'Q-1', { type: 'add', id: `${id}2`, amount: 3 }, { idempotencyKey: `${key}2` });
    // (The note is sensitive: views redact it, the stored snapshot holds it.)
    expect(last.snapshot.context).toMatchObject({ note: '[redacted]', applied: [id, 'plain', `${id}2`], total: 6 });
    const stored = await t.db.query("SELECT snapshot->'context' AS context FROM actors WHERE type = 'tally' AND key = 'Q-1'");
    expect(stored.rows[0].context).toMatchObject({ note: odd, applied: [id, 'plain', `${id}2`], total: 6 });
    const { rows } = await t.db.query<{ seq: number; event: unknown; idempotency_key: string | null }>(
      "SELECT seq::int, event, idempotency_key FROM journal WHERE type = 'tally' AND key = 'Q-1' ORDER BY seq",
    );
    expect(rows).toEqual([
      { seq: 1, event: { type: 'annotate', note: odd }, idempotency_key: key },
      { seq: 2, event: { type: 'add', id, amount: 1 }, idempotency_key: 'NULL' },
      { seq: 3, event: { type: 'add', id: 'plain', amount: 2 }, idempotency_key: null },
      { seq: 4, event: { type: 'add', id: `${id}2`, amount: 3 }, idempotency_key: `${key}2` },
    ]);
    // The stored snapshot, as a restart reads it.
    const restarted = makeSystem(t.db, clock);
    await system.stop();
    system = restarted;
    await system.start();
    expect((await system.get('tally', 'Q-1')).context).toMatchObject({ applied: [id, 'plain', `${id}2`], total: 6 });
  });

  it('validates type, key and payload before anything is stored', async () => {
    await expect(system.send('nope', 'X', { type: 'add' })).rejects.toBeInstanceOf(NotFoundError);
    await expect(system.send('tally', 'bad key!', { type: 'close' })).rejects.toBeInstanceOf(BadRequestError);
    await expect(system.send('tally', 'D-1', { type: 'explode' })).rejects.toMatchObject({ field: 'type' });
    await expect(system.send('tally', 'D-1', { type: 'add', id: 'x', amount: 'many' })).rejects.toMatchObject({ field: 'amount' });
    await expect(system.send('tally', 'D-1', { type: 'add', id: 'x', amount: 1, extra: true })).rejects.toBeInstanceOf(ValidationError);
    const { rows } = await t.db.query('SELECT (SELECT count(*) FROM journal)::int AS j, (SELECT count(*) FROM actors)::int AS a');
    expect(rows[0]).toEqual({ j: 0, a: 0 });
  });

  it('bounds the mailbox with a retryable error', async () => {
    const sends = Array.from({ length: 80 }, (_, i) => system.send('tally', 'E-1', { type: 'add', id: `m${i}`, amount: 1 }).catch((e) => e));
    const results = await Promise.all(sends);
    const full = results.filter((r) => r instanceof UnavailableError);
    expect(full.length).toBeGreaterThan(0);
    expect(full[0]!.retryAfterMs).toBeGreaterThan(0);
    await system.idleDrains();
    const view = await system.get('tally', 'E-1');
    expect(view.context.count).toBe(results.length - full.length);
  });

  it('rejects an event that would grow the snapshot past its bound, keeping the old state', async () => {
    const small = new ActorSystem({ db: t.db, clock });
    small.register(tallyType({ name: 'tiny', maxSnapshotBytes: 2_000 }));
    await small.start();
    await small.sendAndWait('tiny', 'F-1', { type: 'annotate', note: 'short' });
    const err = await small.sendAndWait('tiny', 'F-1', { type: 'annotate', note: 'x'.repeat(5_000) }).catch((e) => e);
    expect(err).toBeInstanceOf(PayloadTooLargeError);
    const ok = await small.sendAndWait('tiny', 'F-1', { type: 'add', id: 'after', amount: 2 });
    expect(ok.snapshot.context).toMatchObject({ count: 1, note: '[redacted]' });
    const { rows } = await t.db.query(`SELECT snapshot->'context'->>'note' AS note FROM actors WHERE key = 'F-1'`);
    expect(rows[0].note).toBe('short');
    await small.stop();
  });

  it('commits an event to a resident actor together with the state it leads to', async () => {
    await system.sendAndWait('tally', 'I-1', { type: 'add', id: 'e1', amount: 1 });
    await system.idleDrains();
    const flushes = system.committer.stats.flushes;
    const sent = await system.send('tally', 'I-1', { type: 'add', id: 'e2', amount: 2 });
    expect(sent).toEqual({ seq: 2, duplicate: false });
    // Acknowledged, and its state is stored already: one write, no save after it.
    const row = async () =>
      (await t.db.query<{ last_seq: number; processed_seq: number; snapshot: { context: { total: number } } }>(
        `SELECT last_seq, processed_seq, snapshot FROM actors WHERE type = 'tally' AND key = 'I-1'`,
      )).rows[0]!;
    expect(await row()).toMatchObject({ last_seq: 2, processed_seq: 2, snapshot: { context: { total: 3 } } });
    await system.idleDrains();
    expect(system.committer.stats.flushes - flushes).toBe(1);
    const waited = await system.sendAndWait('tally', 'I-1', { type: 'add', id: 'e3', amount: 4 });
    expect(waited).toMatchObject({ seq: 3, state: 'open', snapshot: { context: { total: 7, applied: ['e1', 'e2', 'e3'] } } });
    expect(await row()).toMatchObject({ last_seq: 3, processed_seq: 3 });
    await expect(system.sendAndWait('tally', 'I-1', { type: 'reopen' })).rejects.toBeInstanceOf(NotAcceptedError);
    const history = await system.history('tally', 'I-1');
    expect(history.map((h) => [h.seq, h.event, h.accepted])).toEqual([
      [null, 'xstate.init', true],
      [1, 'add', true],
      [2, 'add', true],
      [3, 'add', true],
      [4, 'reopen', false],
    ]);
  });

  it('undoes a step another writer got ahead of, and appends the event after that writer\'s', async () => {
    await system.sendAndWait('tally', 'I-2', { type: 'add', id: 'e1', amount: 1 });
    await system.idleDrains();
    // Another node's append to this actor whose NOTIFY was lost: this node's idea of the last
    // seq is behind, so the step it takes for its next event is refused by the write.
    await t.db.query(`INSERT INTO journal (type, key, seq, event, received_at) VALUES ('tally', 'I-2', 2, '{"type":"add","id":"b1","amount":5}', 0)`);
    await t.db.query(`UPDATE actors SET last_seq = 2 WHERE type = 'tally' AND key = 'I-2'`);
    const sent = await system.send('tally', 'I-2', { type: 'add', id: 'e3', amount: 10 });
    expect(sent).toEqual({ seq: 3, duplicate: false });
    await clock.settle!();
    const view = await system.get('tally', 'I-2');
    expect(view).toMatchObject({ processedSeq: 3, lastSeq: 3, context: { total: 16, applied: ['e1', 'b1', 'e3'] } });
    const history = await system.history('tally', 'I-2');
    expect(history.filter((h) => h.seq !== null).map((h) => [h.seq, h.accepted])).toEqual([
      [1, true],
      [2, true],
      [3, true],
    ]);
  });

  it('lists actors by type and state with paging', async () => {
    for (const k of ['L-1', 'L-2', 'L-3', 'L-4']) await system.send('tally', k, { type: 'add', id: k, amount: 1 });
    await system.sendAndWait('tally', 'L-2', { type: 'close' });
    await system.sendAndWait('tally', 'L-4', { type: 'close' });
    await system.idleDrains();
    await system.committer.drain();
    expect((await system.list('tally', { state: 'closed' })).map((r) => r.key)).toEqual(['L-2', 'L-4']);
    const page1 = await system.list('tally', { limit: 3 });
    const page2 = await system.list('tally', { limit: 3, after: page1.at(-1)!.key });
    expect([...page1, ...page2].map((r) => r.key)).toEqual(['L-1', 'L-2', 'L-3', 'L-4']);
  });

  it('resumes an actor from its snapshot after the system object is replaced', async () => {
    await system.sendAndWait('tally', 'R-1', { type: 'add', id: 'a', amount: 3 });
    await system.sendAndWait('tally', 'R-1', { type: 'add', id: 'b', amount: 4 });
    await system.stop();
    system = makeSystem(t.db, clock);
    await system.start();
    const r = await system.sendAndWait('tally', 'R-1', { type: 'add', id: 'c', amount: 5 });
    expect(r.seq).toBe(3);
    expect(r.snapshot.context).toMatchObject({ total: 12, applied: ['a', 'b', 'c'] });
  });

  it('reprocesses the journal tail left unprocessed by a crash', async () => {
    // Events committed to the journal by a process that died before processing them.
    await system.sendAndWait('tally', 'J-1', { type: 'add', id: 'a', amount: 1 });
    await t.db.query(
      `INSERT INTO journal (type, key, seq, event, received_at) VALUES
       ('tally', 'J-1', 2, '{"type":"add","id":"b","amount":1}', 0), ('tally', 'J-1', 3, '{"type":"add","id":"c","amount":1}', 0)`,
    );
    // An append moves the actor's seq counter in the same statement.
    await t.db.query(`UPDATE actors SET last_seq = 3 WHERE type = 'tally' AND key = 'J-1'`);
    await system.stop();
    system = makeSystem(t.db, clock);
    await system.start();
    await system.idleDrains();
    await system.committer.drain();
    const view = await system.get('tally', 'J-1');
    expect(view.processedSeq).toBe(3);
    expect(view.context.applied).toEqual(['a', 'b', 'c']);
  });
});

describe.each(variants)('durable timers (%s)', (variant) => {
  let t: TestDb;
  let clock: ManualClock;
  let system: ActorSystem;

  beforeEach(async () => {
    t = await testDb(variant);
    clock = new ManualClock(T0);
    system = makeSystem(t.db, clock);
    await system.start();
  });
  afterEach(async () => {
    await system.stop();
    await t.cleanup();
  });

  it('stores the pending timer with its absolute due time and fires it on the clock', async () => {
    const r = await system.sendAndWait('reminder', 'T-1', { type: 'arm', delayMs: 5_000 });
    expect(r.snapshot.timers).toEqual([{ id: 'xstate.after.reminderDelay.reminder.armed', event: 'xstate.after.reminderDelay.reminder.armed', dueAt: new Date(T0 + 5_000).toISOString() }]);
    await system.committer.drain();
    expect((await system.get('reminder', 'T-1')).timers).toHaveLength(1);
    await clock.advance(4_999);
    expect((await system.get('reminder', 'T-1')).state).toBe('armed');
    await clock.advance(1);
    await system.idleDrains();
    await system.committer.drain();
    const view = await system.get('reminder', 'T-1');
    expect(view).toMatchObject({ state: 'fired', timers: [] });
    expect(view.context.firedCount).toBe(1);
    const history = await system.history('reminder', 'T-1');
    expect(history.at(-1)).toMatchObject({ seq: null, from: 'armed', to: 'fired', at: new Date(T0 + 5_000).toISOString() });
  });

  it('wakes a passivated actor when its timer falls due', async () => {
    await system.sendAndWait('reminder', 'P-1', { type: 'arm', delayMs: 60_000 });
    await clock.advance(15_000);
    expect(system.residentCount.activations).toBe(0);
    await clock.advance(44_999);
    expect((await system.get('reminder', 'P-1')).state).toBe('armed');
    await clock.advance(1);
    await system.idleDrains();
    await system.committer.drain();
    const view = await system.get('reminder', 'P-1');
    expect(view.state).toBe('fired');
    const fired = (await system.history('reminder', 'P-1')).at(-1)!;
    expect(fired.at).toBe(new Date(T0 + 60_000).toISOString());
  });

  it('fires at the original due time after a restart, or at once if it passed while down', async () => {
    await system.sendAndWait('reminder', 'S-1', { type: 'arm', delayMs: 10_000 });
    await system.sendAndWait('reminder', 'S-2', { type: 'arm', delayMs: 10_000 });
    await clock.advance(4_000);
    await system.stop();
    // S-1: back after 2 s, 4 s before due. S-2 is checked on a second clock long after.
    clock.set(T0 + 6_000);
    system = makeSystem(t.db, clock);
    await system.start();
    await clock.advance(3_999);
    expect((await system.get('reminder', 'S-1')).state).toBe('armed');
    await clock.advance(1);
    await system.idleDrains();
    await system.committer.drain();
    expect((await system.history('reminder', 'S-1')).at(-1)).toMatchObject({ to: 'fired', at: new Date(T0 + 10_000).toISOString() });
    await system.stop();

    // Restarted long after S-2 was due (S-2 fired in the run above too; re-arm and go down).
    await system.committer.drain();
    clock.set(T0 + 20_000);
    system = makeSystem(t.db, clock);
    await system.start();
    await system.sendAndWait('reminder', 'S-3', { type: 'arm', delayMs: 1_000 });
    await system.stop();
    clock.set(T0 + 3_600_000);
    system = makeSystem(t.db, clock);
    await system.start();
    await clock.advance(0);
    await system.idleDrains();
    await system.committer.drain();
    const s3 = await system.history('reminder', 'S-3');
    expect(s3.at(-1)).toMatchObject({ to: 'fired', at: new Date(T0 + 3_600_000).toISOString() });
  });

  it('cancels the stored timer when the state is left', async () => {
    await system.sendAndWait('reminder', 'X-1', { type: 'arm', delayMs: 5_000 });
    await system.sendAndWait('reminder', 'X-1', { type: 'cancel' });
    await system.committer.drain();
    expect((await system.get('reminder', 'X-1')).timers).toEqual([]);
    await clock.advance(10_000);
    await system.idleDrains();
    expect((await system.get('reminder', 'X-1')).state).toBe('idle');
  });
});
