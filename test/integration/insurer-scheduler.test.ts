import { afterEach, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { ManualClock, systemClock } from '../../actors/clock.ts';
import { LineScheduler } from '../../http/modules/insurer/scheduler.ts';
import { createLine } from '../../storage/line/index.ts';
import type { AcquireResult, Line, LineHolder, PauseState } from '../../storage/line/types.ts';
import { testDb } from '../support/db.ts';
import { dropKeys } from '../support/redis.ts';

/** A deferred promise, to hold a store call or a request open until the test lets it go. */
function deferred<T = void>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/**
 * The line in memory: one lease, a fencing token, a pause; every call is recorded, and a call
 * can be held open (`hold`) to stand for a slow round trip.
 */
function memoryLine() {
  let token = 0;
  let holder: { token: number; holder: LineHolder } | null = null;
  let paused = false;
  const calls: string[] = [];
  const holds = new Map<string, Promise<void>>();
  const gate = async (name: string) => {
    calls.push(name);
    await holds.get(name);
  };
  const take = (h: LineHolder): AcquireResult => {
    if (paused) return { ok: false, reason: 'paused' };
    if (holder) return { ok: false, reason: 'busy' };
    holder = { token: ++token, holder: h };
    return { ok: true, token };
  };
  const state = (): PauseState => ({ paused, reason: paused ? 'test' : null, pausedAt: null, pausedBy: null, inFlight: holder?.holder ?? null });
  const line: Line & { renew?: unknown } = {
    kind: 'postgres',
    async acquire(_id, h) {
      await gate('acquire');
      return take(h);
    },
    async release(_id, t, next) {
      await gate(next ? 'handoff' : 'release');
      if (holder?.token === t) holder = null;
      return next ? take(next.holder) : null;
    },
    async pause() {
      const changed = !paused;
      paused = true;
      return { ...state(), changed };
    },
    async resume() {
      const changed = paused;
      paused = false;
      return { ...state(), changed };
    },
    async state() {
      await gate('state');
      return state();
    },
    async close() {},
  };
  return {
    line,
    calls,
    held: () => holder,
    /** Holds every `name` call open until the returned function is called. */
    hold(name: string) {
      const d = deferred();
      holds.set(name, d.promise);
      return () => {
        holds.delete(name);
        d.resolve();
      };
    },
  };
}

const settle = async () => {
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
};

describe('line scheduler', () => {
  let scheduler: LineScheduler | undefined;
  afterEach(async () => {
    await scheduler?.stop();
    scheduler = undefined;
  });

  function make(line: Line, clock: ManualClock) {
    scheduler = new LineScheduler({ line, lineId: 'insurer:T', node: 'test', requestTimeoutMs: 1_000, clock });
    return scheduler;
  }

  it('sends a request queued while the lease is being released, without waiting for a Retry-After timer', async () => {
    const clock = new ManualClock(1_000_000);
    const mem = memoryLine();
    const s = make(mem.line, clock);
    const sent: string[] = [];
    const req = (name: string) => async () => void sent.push(name);

    // A first request, then one held by a Retry-After of 60 s: the loop lets the line go and sleeps.
    const letRelease = mem.hold('release');
    const first = s.run('bulk', 'a', req('a'));
    const strict = s.run('bulk', 'b', req('b'), { holdUntil: clock.now() + 60_000 });
    await first;
    await settle();
    expect(mem.calls.at(-1)).toBe('release');

    // Queued while the release is on its way: it must go as soon as the release is done.
    const late = s.run('interactive', 'c', req('c'));
    letRelease();
    await late;
    expect(sent).toEqual(['a', 'c']);
    expect(clock.now()).toBe(1_000_000);

    await clock.advance(60_000);
    await strict;
    expect(sent).toEqual(['a', 'c', 'b']);
  });

  it('sends a request queued while the last one settles, and honours a Retry-After when nothing else waits', async () => {
    const clock = new ManualClock(1_000_000);
    const mem = memoryLine();
    const s = make(mem.line, clock);
    const sent: string[] = [];
    const d = deferred();
    const one = s.run('bulk', 'a', async () => {
      sent.push('a');
      await d.promise;
    });
    const strict = s.run('bulk', 'b', async () => void sent.push('b'), { holdUntil: clock.now() + 1_000 });
    await settle();
    d.resolve();
    await one;
    // Queued in the turn the first request settled in.
    const next = s.run('bulk', 'c', async () => void sent.push('c'));
    await next;
    expect(sent).toEqual(['a', 'c']);
    await clock.advance(999);
    expect(sent).toEqual(['a', 'c']);
    await clock.advance(1);
    await strict;
    expect(sent).toEqual(['a', 'c', 'b']);
  });

  it('lets other work use the line while a retry backs off, and sends the retry early when nothing else can go', async () => {
    const clock = new ManualClock(1_000_000);
    const mem = memoryLine();
    const s = make(mem.line, clock);
    const sent: string[] = [];
    const gate = deferred();
    // Holds the line while the rest is queued, so the order is decided by the scheduler alone.
    const first = s.run('bulk', 'first', async () => {
      await gate.promise;
      sent.push('first');
    });
    await settle();
    const retry = s.run('listing', 'page', async () => void sent.push('page'), { notBefore: clock.now() + 5_000 });
    const others = ['x', 'y'].map((n) => s.run('bulk', n, async () => void sent.push(n)));
    gate.resolve();
    await Promise.all([first, retry, ...others]);
    // The listing outranks bulk, but backs off while bulk can go; then it goes at once.
    expect(sent).toEqual(['first', 'x', 'y', 'page']);
    expect(clock.now()).toBe(1_000_000);
  });

  it('keeps the lease between queued requests where the line can renew, each request ending before the lease it was sent under', async () => {
    const clock = new ManualClock(1_000_000);
    const mem = memoryLine();
    const renewals: { token: number; ttlMs: number; minLeftMs: number }[] = [];
    let acquiredTtl = 0;
    const line: Line = {
      ...mem.line,
      async acquire(id, h, ttlMs) {
        acquiredTtl = ttlMs;
        return mem.line.acquire(id, h, ttlMs);
      },
      async renew(_id, token, next) {
        mem.calls.push('renew');
        renewals.push({ token, ttlMs: next.ttlMs, minLeftMs: next.minLeftMs });
        const held = mem.held();
        if (held?.token !== token) return { ok: false, reason: 'busy' };
        held.holder = next.holder;
        return { ok: true, token };
      },
    };
    const s = make(line, clock);
    const sent: string[] = [];
    await Promise.all(['a', 'b', 'c'].map((n) => s.run('bulk', n, async () => void sent.push(n))));
    await settle();
    expect(sent).toEqual(['a', 'b', 'c']);
    expect(mem.calls).toEqual(['acquire', 'renew', 'renew', 'release']);
    // The request timeout is 1 s: a lease renewed for a request has more than that left.
    for (const r of renewals) {
      expect(r.minLeftMs).toBeGreaterThan(1_000);
      expect(r.ttlMs).toBeGreaterThan(r.minLeftMs);
    }
    expect(acquiredTtl).toBeGreaterThan(renewals[0]!.minLeftMs);
  });

  it('holds a request for the Retry-After the insurer named, and no longer than that while the line is idle', async () => {
    const clock = new ManualClock(1_000_000);
    const mem = memoryLine();
    const s = make(mem.line, clock);
    const sent: string[] = [];
    const held = s.run('bulk', 'held', async () => void sent.push('held'), { notBefore: clock.now() + 5_000, holdUntil: clock.now() + 1_000 });
    await settle();
    await clock.advance(999);
    expect(sent).toEqual([]);
    await clock.advance(1);
    await held;
    expect(sent).toEqual(['held']);
    expect(clock.now()).toBe(1_001_000);
  });
});

/**
 * The scheduler on the real Redis line (in CI always; elsewhere when REDIS_URL is set), with a
 * second line instance standing for another process.
 */
describe.runIf(Boolean(process.env.REDIS_URL))('line scheduler on a held Redis lease', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function setUp() {
    const t = await testDb();
    const keyPrefix = `test:${randomUUID()}:`;
    const url = process.env.REDIS_URL!;
    const mine = await createLine({ db: t.db, redis: { url, keyPrefix } });
    const other = await createLine({ db: t.reopen(), redis: { url, keyPrefix } });
    // Counts the round trips this process makes to the store.
    const trips: string[] = [];
    const counted: Line = {
      ...mine,
      kind: mine.kind,
      hold: mine.hold,
      acquire: (...a) => (trips.push('acquire'), mine.acquire(...a)),
      release: (...a) => (trips.push(a[2] ? 'handoff' : 'release'), mine.release(...a)),
      pause: (...a) => mine.pause(...a),
      resume: (...a) => mine.resume(...a),
      state: (...a) => mine.state(...a),
      close: () => mine.close(),
    };
    const s = new LineScheduler({ line: counted, lineId: 'insurer:T', node: 'mine', requestTimeoutMs: 1_000, clock: systemClock });
    cleanups.push(async () => {
      await s.stop();
      await mine.close();
      await other.close();
      await dropKeys(url, keyPrefix);
      await t.cleanup();
    });
    return { s, other, trips };
  }

  it('sends queued requests one after another under one lease, without a round trip to the store before each', async () => {
    const { s, trips } = await setUp();
    let inFlight = 0;
    let most = 0;
    const request = async () => {
      most = Math.max(most, ++inFlight);
      await new Promise((r) => setTimeout(r, 1));
      inFlight--;
    };
    await Promise.all(Array.from({ length: 50 }, (_, i) => s.run('bulk', `r${i}`, request)));
    expect(most).toBe(1);
    expect(s.stats.made).toBe(50);
    // One lease for all of them (the lease outlives the 50 ms they take), let go at the end.
    expect(trips.filter((t) => t !== 'release').length).toBeLessThanOrEqual(2);
  });

  it('stops at once when another process pauses: the pause answers after the holder stopped, naming the request in flight; nothing starts until resume', async () => {
    const { s, other } = await setUp();
    const started: string[] = [];
    let finishFirst!: () => void;
    const first = s.run('bulk', 'first', () => {
      started.push('first');
      return new Promise<void>((r) => (finishFirst = r));
    });
    const rest = Array.from({ length: 5 }, (_, i) => s.run('bulk', `next${i}`, async () => void started.push(`next${i}`)));
    while (!started.length) await new Promise((r) => setTimeout(r, 2));
    const paused = await other.pause('insurer:T', 'insurer phoned', 'ops');
    expect(paused.inFlight?.what).toBe('first');
    finishFirst();
    await first;
    await new Promise((r) => setTimeout(r, 300));
    expect(started).toEqual(['first']);
    expect((await other.state('insurer:T')).inFlight).toBeNull();
    await other.resume('insurer:T');
    await Promise.all(rest);
    expect(started).toEqual(['first', 'next0', 'next1', 'next2', 'next3', 'next4']);
  });
});
