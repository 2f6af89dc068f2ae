import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../actors/clock.ts';
import { createSyncMoves } from '../../http/modules/insurer/sync-moves.ts';
import type { Db } from '../../storage/db.ts';
import { createRun, getRun } from '../../storage/insurer/runs.ts';
import { getSync, moveSyncs, moveSyncsMany, scheduleSyncs } from '../../storage/insurer/syncs.ts';
import { testDb, type TestDb } from '../support/db.ts';

/** Bulk syncs' moves while they run, batched: one statement for many, the run's counters with them. */
let t: TestDb;
let db: Db;
const logger = pino({ level: 'silent' });

beforeAll(async () => {
  t = await testDb();
  db = t.db;
});
afterAll(async () => t.cleanup());

async function runWith(runId: string, patients: string[]) {
  // One insurer per run: an insurer has one run at a time.
  await createRun(db, { id: runId, insurerId: `K${runId}`, trigger: 'manual', now: 1 });
  await scheduleSyncs(
    db,
    patients.map((p) => ({ id: `${runId}:${p}`, insurerId: `K${runId}`, patientId: p, runId, kind: 'bulk' as const, requestedBy: 'test' })),
    1,
  );
}

describe('moveSyncsMany', () => {
  it('moves many syncs of several runs in one statement; requests count once per move and run', async () => {
    await runWith('r1', ['P1', 'P2', 'P3']);
    await runWith('r2', ['P1']);
    // An interactive sync (no run) served by the same attempt as r1:P2.
    await scheduleSyncs(db, [{ id: 'i1', insurerId: 'Kr1', patientId: 'P2', runId: null, kind: 'interactive', requestedBy: 'test' }], 1);
    await moveSyncsMany(
      db,
      [
        { ids: ['r1:P1'], to: 'running' },
        { ids: ['r1:P2', 'i1'], to: 'retrying', attempts: 3, failedRequests: 3, error: 'HTTP 503' },
        { ids: ['r1:P3'], to: 'retrying', attempts: 1, failedRequests: 1, error: 'reset' },
        { ids: ['r2:P1'], to: 'running', attempts: 0 },
      ],
      50,
    );
    const r1 = (await getRun(db, 'r1'))!;
    expect(r1.counts).toMatchObject({ scheduled: 0, running: 1, retrying: 2 });
    expect(r1.requestsMade).toBe(4);
    expect(r1.requestsFailed).toBe(4);
    expect(r1.lastError).toBe('reset'); // the last move's error
    expect((await getRun(db, 'r2'))!.counts).toMatchObject({ scheduled: 0, running: 1 });
    expect(await getSync(db, 'r1:P2')).toMatchObject({ status: 'retrying', attempts: 3, lastError: 'HTTP 503', updatedAt: 50 });
    expect(await getSync(db, 'i1')).toMatchObject({ status: 'retrying', attempts: 3 });

    // A finished sync stays finished: a late move changes nothing, counters included.
    await moveSyncs(db, ['r1:P1'], 'done', { now: 60, attempts: 1 });
    await moveSyncsMany(db, [{ ids: ['r1:P1'], to: 'retrying', attempts: 1, failedRequests: 1, error: 'late' }], 70);
    const after = (await getRun(db, 'r1'))!;
    expect(after.counts).toMatchObject({ running: 0, retrying: 2, done: 1 });
    expect(after.requestsMade).toBe(5);
    expect(await getSync(db, 'r1:P1')).toMatchObject({ status: 'done', finishedAt: 60 });
  });
});

describe('SyncMoves', () => {
  it('writes what was queued together, merged per attempt, after its interval and not before', async () => {
    await runWith('r3', ['A', 'B']);
    const clock = new ManualClock(100);
    const moves = createSyncMoves({ db, clock, logger, everyMs: 200 });
    moves.queue(['r3:A'], 'running');
    moves.queue(['r3:A'], 'retrying', { attempts: 1, failedRequests: 1, error: 'HTTP 500' });
    moves.queue(['r3:A'], 'retrying', { attempts: 1, failedRequests: 1, error: 'HTTP 429' });
    moves.queue(['r3:B'], 'running');
    await clock.advance(199);
    expect((await getRun(db, 'r3'))!.counts.scheduled).toBe(2); // nothing written yet
    await clock.advance(1);
    await moves.flush(); // waits for the write the timer started
    const run = (await getRun(db, 'r3'))!;
    expect(run.counts).toMatchObject({ scheduled: 0, running: 1, retrying: 1 });
    expect(run.requestsMade).toBe(2);
    expect(await getSync(db, 'r3:A')).toMatchObject({ status: 'retrying', attempts: 2, lastError: 'HTTP 429' });
    await moves.stop();
  });

  it('hands back what is not written yet to the outcome, which then counts it', async () => {
    await runWith('r4', ['A']);
    const clock = new ManualClock(100);
    const moves = createSyncMoves({ db, clock, logger });
    moves.queue(['r4:A'], 'running');
    moves.queue(['r4:A'], 'retrying', { attempts: 1, failedRequests: 1, error: 'HTTP 500' });
    moves.queue(['r4:A'], 'retrying', { attempts: 1, failedRequests: 1, error: 'HTTP 500' });
    const carried = await moves.take(['r4:A']);
    expect(carried).toEqual({ attempts: 2, failedRequests: 2 });
    await moveSyncs(db, ['r4:A'], 'done', { now: 120, attempts: carried.attempts + 1, failedRequests: carried.failedRequests });
    await moves.flush(); // nothing left to write for it
    const run = (await getRun(db, 'r4'))!;
    expect(run.counts).toMatchObject({ scheduled: 0, running: 0, retrying: 0, done: 1 });
    expect([run.requestsMade, run.requestsFailed]).toEqual([3, 2]);
    await moves.stop();
  });

  it('an attempt that took over a bulk sync (an interactive one) counts what the bulk attempt queued', async () => {
    await runWith('r7', ['A']);
    await scheduleSyncs(db, [{ id: 'i7', insurerId: 'Kr7', patientId: 'A', runId: null, kind: 'interactive', requestedBy: 'test' }], 1);
    const clock = new ManualClock(100);
    const moves = createSyncMoves({ db, clock, logger });
    moves.queue(['r7:A'], 'retrying', { attempts: 2, failedRequests: 2, error: 'HTTP 503' });
    moves.queue(['other'], 'running');
    expect(await moves.take(['i7', 'r7:A'])).toEqual({ attempts: 2, failedRequests: 2 });
    expect(await moves.take(['i7', 'r7:A'])).toEqual({ attempts: 0, failedRequests: 0 }); // taken once
    await moveSyncs(db, ['i7', 'r7:A'], 'done', { now: 120, attempts: 3, failedRequests: 2 });
    await moves.flush();
    const run = (await getRun(db, 'r7'))!;
    expect(run.counts).toMatchObject({ scheduled: 0, retrying: 0, done: 1 });
    expect([run.requestsMade, run.requestsFailed]).toEqual([3, 2]);
    await moves.stop();
  });

  it('an outcome waits for a write of its syncs under way, so it is never overtaken', async () => {
    await runWith('r5', ['A']);
    const clock = new ManualClock(100);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    // The batch write is held (a slow database) until the outcome has asked for its syncs.
    const slow: Db = { ...db, query: async (...args: Parameters<Db['query']>) => (await gate, db.query(...args)) };
    const moves = createSyncMoves({ db: slow, clock, logger });
    moves.queue(['r5:A'], 'retrying', { attempts: 1, failedRequests: 1, error: 'HTTP 503' });
    const flushing = moves.flush();
    let taken = false;
    const take = moves.take(['r5:A']).then((c) => ((taken = true), c));
    await new Promise((r) => setTimeout(r, 20));
    expect(taken).toBe(false);
    release();
    await flushing;
    expect(await take).toEqual({ attempts: 0, failedRequests: 0 }); // written by the batch
    expect(await getSync(db, 'r5:A')).toMatchObject({ status: 'retrying', attempts: 1 });
    await moves.stop();
  });

  it('a failed write keeps its moves for the next one, merged with what came since', async () => {
    await runWith('r6', ['A']);
    const clock = new ManualClock(100);
    let fail = true;
    const flaky: Db = { ...db, query: (...args: Parameters<Db['query']>) => (fail ? Promise.reject(new Error('connection lost')) : db.query(...args)) };
    const moves = createSyncMoves({ db: flaky, clock, logger });
    moves.queue(['r6:A'], 'retrying', { attempts: 1, failedRequests: 1, error: 'HTTP 503' });
    await moves.flush();
    expect((await getRun(db, 'r6'))!.counts.scheduled).toBe(1);
    moves.queue(['r6:A'], 'retrying', { attempts: 1, failedRequests: 1, error: 'reset' });
    fail = false;
    await clock.advance(200);
    await moves.flush();
    expect(await getSync(db, 'r6:A')).toMatchObject({ status: 'retrying', attempts: 2, lastError: 'reset' });
    expect((await getRun(db, 'r6'))!.requestsFailed).toBe(2);
    await moves.stop();
  });
});
