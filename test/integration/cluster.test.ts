import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ActorSystem } from '../../actors/system.ts';
import { ManualClock } from '../../actors/clock.ts';
import type { Db } from '../../storage/db.ts';
import { databaseKind, testDb, type TestDb } from '../support/db.ts';
import { reminderType, tallyType } from '../../http/modules/demo.ts';

/**
 * Two nodes (two actor systems, each with its own connections and liveness lock) on one
 * database, as two server processes would be: one owner per actor, appends through either
 * node, and take-over when the owner is gone.
 */

const T0 = Date.parse('2026-03-02T08:00:00Z');
const variants = databaseKind() === 'external' ? (['default', 'embedded'] as const) : (['embedded'] as const);

interface Node {
  db: Db;
  system: ActorSystem;
}

describe.each(variants)('two nodes on one database (%s)', (variant) => {
  let t: TestDb;
  let clock: ManualClock;
  let a: Node;
  let b: Node;

  function node(name: string): Node {
    const db = t.reopen();
    const system = new ActorSystem({ db, clock, node: `test-${name}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`, waitTimeoutMs: 5000 });
    system.register(tallyType({ idleTimeoutMs: 60_000, mailboxSize: 200 }));
    system.register(reminderType({ idleTimeoutMs: 60_000 }));
    return { db, system };
  }

  const owner = async (type: string, key: string) =>
    (await t.db.query<{ owner_node: string; owner_epoch: number }>('SELECT owner_node, owner_epoch FROM actors WHERE type = $1 AND key = $2', [type, key])).rows[0]!;

  /** Waits (real time: a NOTIFY crosses a connection) until the actor has processed `seq`. */
  const processedUpTo = (type: string, key: string, seq: number) =>
    vi.waitFor(
      async () => {
        const { rows } = await t.db.query<{ processed_seq: number }>('SELECT processed_seq FROM actors WHERE type = $1 AND key = $2', [type, key]);
        expect(rows[0]?.processed_seq).toBe(seq);
      },
      { timeout: 10_000, interval: 20 },
    );

  beforeEach(async () => {
    t = await testDb(variant);
    clock = new ManualClock(T0);
    a = node('a');
    b = node('b');
    clock.settle = async () => {
      await Promise.all([a.system.settled(), b.system.settled()]);
    };
    await a.system.start();
    await b.system.start();
  });
  afterEach(async () => {
    await a.system.stop().catch(() => {});
    await b.system.stop().catch(() => {});
    await t.cleanup();
  });

  it('processes every event once, in seq order, on the owner only, whichever node took it', async () => {
    await a.system.sendAndWait('tally', 'C-1', { type: 'add', id: 'first', amount: 1 });
    expect((await owner('tally', 'C-1')).owner_node).toBe(a.system.node);

    // Concurrent sends through both nodes: seqs are handed out by the actor row, never twice.
    const sends = Array.from({ length: 60 }, (_, i) => (i % 2 ? b : a).system.send('tally', 'C-1', { type: 'add', id: `e${i}`, amount: i }));
    const seqs = (await Promise.all(sends)).map((r) => r.seq);
    expect(new Set(seqs).size).toBe(60);
    expect(Math.min(...seqs)).toBe(2);
    expect(Math.max(...seqs)).toBe(61);

    await processedUpTo('tally', 'C-1', 61);
    const view = await a.system.get('tally', 'C-1');
    // Applied in seq order: the ids come out in the order of their seqs.
    const bySeq = seqs.map((seq, i) => ({ seq, id: `e${i}` })).sort((x, y) => x.seq - y.seq);
    expect(view.context).toMatchObject({ total: 1 + (59 * 60) / 2, applied: ['first', ...bySeq.map((x) => x.id)] });
    expect(b.system.residentCount.activations).toBe(0);
    const history = await a.system.history('tally', 'C-1', { limit: 1000 });
    expect(history.filter((h) => h.seq !== null).map((h) => h.seq)).toEqual(Array.from({ length: 61 }, (_, i) => i + 1));
  });

  it('answers the same idempotency key sent through both nodes at once with one event', async () => {
    await a.system.sendAndWait('tally', 'C-6', { type: 'add', id: 'x', amount: 1 });
    for (let round = 0; round < 20; round++) {
      const key = `k-${round}`;
      const [ra, rb] = await Promise.all([
        a.system.send('tally', 'C-6', { type: 'add', id: `r${round}`, amount: 1 }, { idempotencyKey: key }),
        b.system.send('tally', 'C-6', { type: 'add', id: `r${round}`, amount: 1 }, { idempotencyKey: key }),
      ]);
      expect(ra.seq).toBe(rb.seq);
      expect([ra.duplicate, rb.duplicate].filter(Boolean)).toHaveLength(1);
    }
    await processedUpTo('tally', 'C-6', 21);
    const { rows } = await t.db.query(`SELECT count(*)::int AS n FROM journal WHERE type = 'tally' AND key = 'C-6'`);
    expect(rows[0].n).toBe(21);
    expect((await a.system.get('tally', 'C-6')).context).toMatchObject({ total: 21 });
  });

  it('processes events another node appended even when their NOTIFY was lost', async () => {
    await a.system.sendAndWait('tally', 'C-7', { type: 'add', id: 'a1', amount: 1 });
    // What a send through B does, minus the NOTIFY (lost while A's listening connection was down).
    await t.db.query(`INSERT INTO journal (type, key, seq, event, received_at) VALUES ('tally', 'C-7', 2, '{"type":"add","id":"b1","amount":5}', 0)`);
    await t.db.query(`UPDATE actors SET last_seq = 2 WHERE type = 'tally' AND key = 'C-7'`);
    await clock.advance(1_000);
    expect((await a.system.get('tally', 'C-7')).processedSeq).toBe(1);
    // A's housekeeping sweeps its own backlog every ten passes.
    await clock.advance(9_000);
    await processedUpTo('tally', 'C-7', 2);
    expect((await a.system.get('tally', 'C-7')).context).toMatchObject({ total: 6, applied: ['a1', 'b1'] });
    expect(b.system.residentCount.activations).toBe(0);
  });

  it('answers a send-and-wait on a node that does not own the actor once the owner processed it', async () => {
    await a.system.send('tally', 'C-2', { type: 'add', id: 'x', amount: 2 });
    const r = await b.system.sendAndWait('tally', 'C-2', { type: 'add', id: 'y', amount: 3 });
    expect(r.seq).toBe(2);
    expect(r.snapshot.context).toMatchObject({ total: 5, applied: ['x', 'y'] });
    expect(b.system.residentCount.activations).toBe(0);
  });

  it('takes over the actors of a node that is gone: new events, left-over events and timers', async () => {
    await a.system.sendAndWait('tally', 'C-3', { type: 'add', id: 'a1', amount: 1 });
    await a.system.sendAndWait('reminder', 'R-3', { type: 'arm', delayMs: 5_000 });
    await a.system.sendAndWait('tally', 'C-4', { type: 'add', id: 'a1', amount: 1 });
    await clock.settle?.();
    // Events A committed but never processed: it dies right after the append.
    await t.db.query(`INSERT INTO journal (type, key, seq, event, received_at) VALUES ('tally', 'C-4', 2, '{"type":"add","id":"a2","amount":2}', 0)`);
    await t.db.query(`UPDATE actors SET last_seq = 2 WHERE type = 'tally' AND key = 'C-4'`);

    await a.db.close(); // A's process dies: its connections, and its liveness lock, are gone.

    // A send through B to A's actor: A is gone, so B claims it and processes it.
    const r = await b.system.sendAndWait('tally', 'C-3', { type: 'add', id: 'b1', amount: 10 });
    expect(r.snapshot.context).toMatchObject({ total: 11, applied: ['a1', 'b1'] });
    expect(await owner('tally', 'C-3')).toEqual({ owner_node: b.system.node, owner_epoch: 1 });

    // The left-over event is adopted by B's next housekeeping pass.
    await clock.advance(1_000);
    await processedUpTo('tally', 'C-4', 2);
    expect((await b.system.get('tally', 'C-4')).context).toMatchObject({ total: 3, applied: ['a1', 'a2'] });

    // A's timer fires on B at its original due time.
    await clock.advance(3_000);
    expect((await b.system.get('reminder', 'R-3')).state).toBe('armed');
    await clock.advance(1_000);
    const fired = await b.system.get('reminder', 'R-3');
    expect(fired.state).toBe('fired');
    expect(fired.context).toMatchObject({ firedCount: 1 });
    expect((await owner('reminder', 'R-3')).owner_node).toBe(b.system.node);
  });

  it('fences a node that lost its liveness: its later writes to a claimed actor are refused', async () => {
    await a.system.sendAndWait('reminder', 'R-5', { type: 'arm', delayMs: 10_000 });
    await clock.settle?.();
    // A's liveness connection drops (A itself goes on running, with its actor in memory).
    await t.db.query(
      `SELECT pg_terminate_backend(l.pid) FROM pg_locks l
        WHERE l.locktype = 'advisory' AND l.classid = 379423 AND l.objid = (hashtext($1)::bigint & 4294967295)::oid`,
      [a.system.node],
    );
    await vi.waitFor(async () => {
      const { rows } = await t.db.query(`SELECT 1 FROM actor_live_nodes() n WHERE n = $1`, [a.system.node]);
      expect(rows).toHaveLength(0);
    });
    // B takes the actor over and cancels the reminder.
    const r = await b.system.sendAndWait('reminder', 'R-5', { type: 'cancel' });
    expect(r.state).toBe('idle');
    expect((await owner('reminder', 'R-5')).owner_epoch).toBe(1);
    // A's stale copy still has the timer; when it fires, A's write is refused, so the
    // reminder B cancelled never fires.
    await clock.advance(11_000);
    await clock.settle?.();
    const view = await b.system.get('reminder', 'R-5');
    expect(view.state).toBe('idle');
    expect(view.context).toMatchObject({ firedCount: 0 });
    expect(a.system.stats.saveFailures).toBeGreaterThanOrEqual(1);
    expect((await owner('reminder', 'R-5')).owner_node).toBe(b.system.node);
  });
});
