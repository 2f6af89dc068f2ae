import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import type { Db } from '../../storage/db.ts';
import { createLine, type AcquireResult, type Line, type LineHolder } from '../../storage/line/index.ts';
import { databaseKind, testDb, type TestDb } from '../support/db.ts';
import { dropKeys } from '../support/redis.ts';

/** Two "processes" on one line store (separate pools, separate Redis connections). */
interface Harness {
  a: Line;
  b: Line;
  /** Another process starting later, on the same database and Redis keys. */
  fresh(): Promise<Line>;
  /** Another process on the given database handle (and the same Redis keys). */
  make(db: Db): Promise<Line>;
  /** Redis only: drop every key of this test, as a Redis restart without persistence would. */
  forget?(): Promise<void>;
  /** Redis only: the prefix of this test's keys. */
  keyPrefix?: string;
}

interface Target {
  kind: Line['kind'];
  open(opts?: { maxTtlMs?: number }): Promise<Harness & { close(): Promise<void> }>;
}

const LONG_TTL = 10_000;
/**
 * The longest lease in the tests where Redis loses one: the line must stay busy for as long as the
 * lost lease may still be held, so the steps between taking it and checking must fit in it on a
 * slow host, and then free after it.
 */
const LOST_TTL = 1_000;
// Real time where expiry is the point: the stores' own clocks (database, Redis server) can't be faked.
const SHORT_TTL = 200;

let pg: TestDb;
let dbA: Db;
let dbB: Db;
beforeAll(async () => {
  pg = await testDb();
  dbA = pg.db;
  dbB = pg.reopen();
});
afterAll(() => pg?.cleanup());

const postgres: Target = {
  kind: 'postgres',
  async open({ maxTtlMs } = {}) {
    const opened: Line[] = [];
    async function make(db: Db) {
      const line = await createLine({ db, maxTtlMs });
      opened.push(line);
      return line;
    }
    return {
      a: await make(dbA),
      b: await make(dbB),
      make,
      fresh: () => make(pg.reopen()),
      close: () => Promise.all(opened.map((l) => l.close())).then(() => {}),
    };
  },
};

const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

const redis: Target = {
  kind: 'redis',
  async open({ maxTtlMs } = {}) {
    const keyPrefix = `test:${randomUUID()}:`;
    const opened: Line[] = [];
    async function make(db: Db) {
      const line = await createLine({ db, redis: { url: redisUrl, keyPrefix }, maxTtlMs });
      opened.push(line);
      return line;
    }
    return {
      a: await make(dbA),
      b: await make(dbB),
      make,
      fresh: () => make(pg.reopen()),
      forget: () => dropKeys(redisUrl, keyPrefix),
      keyPrefix,
      async close() {
        await Promise.all(opened.map((l) => l.close()));
        await dropKeys(redisUrl, keyPrefix);
      },
    };
  },
};

let requests = 0;
function holder(node = 'a', kind: LineHolder['kind'] = 'bulk'): LineHolder {
  return { requestId: `req-${++requests}`, node, kind, what: 'GET /patients?page=1', startedAt: Date.now() };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const tokenOf = (r: AcquireResult | null) => {
  if (!r?.ok) throw new Error(`expected the line, got ${JSON.stringify(r)}`);
  return r.token;
};

/**
 * A database handle of a process that stalls: `stallOnce()` makes the next query or transaction
 * (or the next query whose text matches) complete (committed) but hold its result until `go()`
 * is called.
 */
function stallingDb(db: Db) {
  let gate: Promise<void> | undefined;
  let matches: ((text: string) => boolean) | undefined;
  const passGate = async <T>(result: T, text?: string) => {
    if (matches && !(text !== undefined && matches(text))) return result;
    const wait = gate;
    gate = undefined;
    matches = undefined;
    if (wait) await wait;
    return result;
  };
  return {
    db: { ...db, query: async (text, values) => passGate(await db.query(text, values), text), tx: async (fn) => passGate(await db.tx(fn)) } as Db,
    stallOnce(match?: RegExp) {
      let go!: () => void;
      gate = new Promise((resolve) => (go = resolve));
      matches = match && ((text) => match.test(text));
      return { go, stalled: async () => { while (gate) await sleep(2); } };
    },
  };
}

function lineSuite(target: Target) {
  async function open(opts?: { maxTtlMs?: number }) {
    const harness = await target.open(opts);
    onTestFinished(() => harness.close());
    // A fresh line per test; every test could share one store safely this way too.
    return { ...harness, id: `insurer:${randomUUID()}` };
  }

  it('lets exactly one of many concurrent acquirers in, from two instances', async () => {
    const { a, b, id } = await open();
    const holders = Array.from({ length: 40 }, (_, i) => holder(i % 2 ? 'a' : 'b'));
    const results = await Promise.all(holders.map((h, i) => (i % 2 ? a : b).acquire(id, h, LONG_TTL)));
    const winners = results.flatMap((r, i) => (r.ok ? [holders[i]] : []));
    expect(winners).toHaveLength(1);
    expect(results.filter((r) => !r.ok)).toEqual(Array(39).fill({ ok: false, reason: 'busy' }));
    expect((await b.state(id)).inFlight).toEqual(winners[0]);
  });

  it('never lets two holders overlap under contention, and tokens strictly increase', async () => {
    const { a, b, id } = await open();
    let inside = 0;
    let maxInside = 0;
    const tokens: number[] = [];
    async function worker(line: Line, rounds: number) {
      for (let round = 0; round < rounds; round++) {
        let got = await line.acquire(id, holder(), LONG_TTL);
        while (!got.ok) {
          expect(got.reason).toBe('busy');
          await sleep(Math.random() * 3);
          got = await line.acquire(id, holder(), LONG_TTL);
        }
        maxInside = Math.max(maxInside, ++inside);
        tokens.push(got.token);
        await sleep(Math.random() * 2); // hold it while the others keep trying
        inside--;
        await line.release(id, got.token);
      }
    }
    await Promise.all(Array.from({ length: 12 }, (_, i) => worker(i % 2 ? a : b, 5)));
    expect(maxInside).toBe(1);
    expect(tokens).toHaveLength(60);
    for (let i = 1; i < tokens.length; i++) expect(tokens[i]).toBeGreaterThan(tokens[i - 1]!);
  });

  it('hands the line to the next request in one step, across instances', async () => {
    const { a, b, id } = await open();
    const t1 = tokenOf(await a.acquire(id, holder(), LONG_TTL));
    const second = holder('a', 'interactive');
    const t2 = tokenOf(await a.release(id, t1, { holder: second, ttlMs: LONG_TTL }));
    expect(t2).toBeGreaterThan(t1);
    expect((await b.state(id)).inFlight).toEqual(second);
    expect(await b.acquire(id, holder('b'), LONG_TTL)).toEqual({ ok: false, reason: 'busy' });
    // The other instance finishes the request and hands over in turn.
    const t3 = tokenOf(await b.release(id, t2, { holder: holder('b'), ttlMs: LONG_TTL }));
    expect(t3).toBeGreaterThan(t2);
    expect(await b.release(id, t3)).toBeNull();
    expect((await a.state(id)).inFlight).toBeNull();
    expect(tokenOf(await a.acquire(id, holder(), LONG_TTL))).toBeGreaterThan(t3);
  });

  it('ignores a release with a stale token', async () => {
    const { a, b, id } = await open();
    const t1 = tokenOf(await a.acquire(id, holder(), LONG_TTL));
    expect(await a.release(id, t1)).toBeNull();
    const current = holder('b');
    const t2 = tokenOf(await b.acquire(id, current, LONG_TTL));
    expect(await a.release(id, t1)).toBeNull();
    expect(await a.release(id, t1, { holder: holder(), ttlMs: LONG_TTL })).toEqual({ ok: false, reason: 'busy' });
    expect((await a.state(id)).inFlight).toEqual(current);
    expect(await a.acquire(id, holder(), LONG_TTL)).toEqual({ ok: false, reason: 'busy' });
    // A token that never existed is just as stale.
    expect(await a.release(id, t2 + 1000)).toBeNull();
    expect((await b.state(id)).inFlight).toEqual(current);
  });

  it('lets the next holder in once a lease expires, and then refuses the old token', async () => {
    const { a, b, id } = await open();
    const t1 = tokenOf(await a.acquire(id, holder(), SHORT_TTL));
    expect(await b.acquire(id, holder('b'), LONG_TTL)).toEqual({ ok: false, reason: 'busy' });
    await sleep(SHORT_TTL + 50);
    expect((await b.state(id)).inFlight).toBeNull();
    const current = holder('b');
    const t2 = tokenOf(await b.acquire(id, current, LONG_TTL));
    expect(t2).toBeGreaterThan(t1);
    // The late first holder neither releases nor hands over the line it no longer holds.
    expect(await a.release(id, t1, { holder: holder(), ttlMs: LONG_TTL })).toEqual({ ok: false, reason: 'busy' });
    expect((await a.state(id)).inFlight).toEqual(current);
  });

  it('hands over from an expired lease of its own when nobody took the line meanwhile', async () => {
    const { a, id } = await open();
    const t1 = tokenOf(await a.acquire(id, holder(), SHORT_TTL));
    await sleep(SHORT_TTL + 50);
    expect(tokenOf(await a.release(id, t1, { holder: holder(), ttlMs: LONG_TTL }))).toBeGreaterThan(t1);
  });

  it('pause reports the request in flight and stops acquires and handoffs from both instances until resume', async () => {
    const { a, b, id } = await open();
    const inFlight = holder('a');
    const t1 = tokenOf(await a.acquire(id, inFlight, LONG_TTL));
    const before = Date.now();
    const paused = await b.pause(id, 'insurer asked us to stop', 'ops@clinic');
    expect(paused).toMatchObject({ changed: true, paused: true, reason: 'insurer asked us to stop', pausedBy: 'ops@clinic', inFlight });
    // The database's clock, so only roughly ours.
    expect(Math.abs(paused.pausedAt! - before)).toBeLessThan(5_000);

    for (const line of [a, b]) {
      expect(await line.acquire(id, holder(), LONG_TTL)).toEqual({ ok: false, reason: 'paused' });
      expect(await line.state(id)).toEqual({ paused: true, reason: 'insurer asked us to stop', pausedAt: paused.pausedAt, pausedBy: 'ops@clinic', inFlight });
    }
    // The request in flight finishes: its handoff is refused, but the line is released.
    expect(await a.release(id, t1, { holder: holder(), ttlMs: LONG_TTL })).toEqual({ ok: false, reason: 'paused' });
    expect((await b.state(id)).inFlight).toBeNull();
    for (const line of [a, b]) {
      expect(await line.acquire(id, holder(), LONG_TTL)).toEqual({ ok: false, reason: 'paused' });
    }

    const resumed = await a.resume(id);
    expect(resumed).toEqual({ changed: true, paused: false, reason: null, pausedAt: null, pausedBy: null, inFlight: null });
    expect(tokenOf(await b.acquire(id, holder('b'), LONG_TTL))).toBeGreaterThan(t1);
  });

  it('pause and resume are idempotent', async () => {
    const { a, b, id } = await open();
    // Resuming a line that was never paused (or never used) changes nothing.
    expect(await a.resume(id)).toMatchObject({ changed: false, paused: false });
    const first = await a.pause(id, 'maintenance window', 'scheduler');
    expect(first).toMatchObject({ changed: true, paused: true, inFlight: null });
    const again = await b.pause(id, 'a different reason', 'someone else');
    expect(again).toEqual({ ...first, changed: false });
    expect(await b.resume(id)).toMatchObject({ changed: true, paused: false, reason: null });
    expect(await a.resume(id)).toMatchObject({ changed: false, paused: false, reason: null });
    expect((await b.acquire(id, holder(), LONG_TTL)).ok).toBe(true);
  });

  it('pause is atomic with concurrent acquires: the one that got in is exactly the one reported in flight', async () => {
    const { a, b, id } = await open();
    for (let round = 0; round < 5; round++) {
      const holders = Array.from({ length: 20 }, (_, i) => holder(i % 2 ? 'a' : 'b'));
      const attempts = holders.map((h, i) => (i % 2 ? a : b).acquire(id, h, LONG_TTL));
      const paused = await (round % 2 ? a : b).pause(id, `round ${round}`, 'test');
      const late = await Promise.all([a, b].map((line) => line.acquire(id, holder(), LONG_TTL)));
      const winners = (await Promise.all(attempts)).flatMap((r, i) => (r.ok ? [{ ...r, holder: holders[i] }] : []));
      expect(late).toEqual([
        { ok: false, reason: 'paused' },
        { ok: false, reason: 'paused' },
      ]);
      // Nothing leased before the pause means nothing can get in after it.
      expect(winners.map((w) => w.holder)).toEqual(paused.inFlight ? [paused.inFlight] : []);
      if (winners[0]) await a.release(id, winners[0].token);
      await b.resume(id);
    }
  });

  it('pause is atomic with a chain of handoffs: the last one through is the one reported in flight', async () => {
    const { a, b, id } = await open();
    let current = holder('a');
    let token = tokenOf(await a.acquire(id, current, LONG_TTL));
    let handoffs = 0;
    // Pause once the chain is well under way, however fast the host runs it.
    let underWay!: () => void;
    const wellUnderWay = new Promise<void>((resolve) => (underWay = resolve));
    const chain = (async () => {
      for (;;) {
        const next = holder(handoffs % 2 ? 'a' : 'b');
        const got = await (handoffs % 2 ? a : b).release(id, token, { holder: next, ttlMs: LONG_TTL });
        if (!got?.ok) return got;
        handoffs++;
        current = next;
        token = got.token;
        if (handoffs === 3) underWay();
      }
    })();
    // A chain that stops early ends the wait too, and fails below with what it answered.
    await Promise.race([wellUnderWay, chain]);
    const paused = await a.pause(id, 'stop the chain', 'test');
    expect(await chain).toEqual({ ok: false, reason: 'paused' });
    expect(handoffs).toBeGreaterThan(2);
    expect(paused.inFlight).toEqual(current);
  });

  it('stays paused for every process until resumed, whatever they do meanwhile', async () => {
    const harness = await open({ maxTtlMs: 300 });
    const { a, b, id } = harness;
    let pausedSince: number | null = null; // set once pause() has resolved, cleared before resume()
    const violations: string[] = [];
    let stop = false;
    // Losing Redis's data every few ms may outrun a resync: that is an error to retry, never a success.
    async function acquire(line: Line) {
      for (;;) {
        try {
          return await line.acquire(id, holder(), 100);
        } catch (err) {
          if (!/lost the pause mirror|kept racing/.test(String(err))) throw err;
        }
      }
    }
    async function contender(line: Line) {
      while (!stop) {
        const started = performance.now();
        const got = await acquire(line);
        if (got.ok) {
          if (pausedSince !== null && started > pausedSince) violations.push(`token ${got.token} during a pause`);
          await line.release(id, got.token);
        }
        await sleep(1);
      }
    }
    // Redis: keep losing the keys meanwhile, as repeated restarts would.
    async function chaos() {
      while (!stop && harness.forget) {
        await harness.forget();
        await sleep(15);
      }
    }
    const background = [contender(a), contender(b), chaos()];
    for (let round = 0; round < 8; round++) {
      await (round % 2 ? a : b).pause(id, `round ${round}`, 'test');
      pausedSince = performance.now();
      for (const line of [a, b]) expect(await acquire(line)).toEqual({ ok: false, reason: 'paused' });
      await sleep(20);
      pausedSince = null;
      await (round % 2 ? b : a).resume(id);
      await sleep(20);
    }
    stop = true;
    await Promise.all(background);
    expect(violations).toEqual([]);
  });

  it('never lets a slow resume undo a pause that came after it', async () => {
    const { b, make, id } = await open();
    await b.pause(id, 'first', 'ops');
    expect((await b.state(id)).paused).toBe(true); // the Redis mirror is in place (and confirmed)
    const slow = stallingDb(dbA);
    const a = await make(slow.db);
    // "a" resumes in Postgres, then stalls before it tells the rest (Redis) about it.
    const stall = slow.stallOnce();
    const resuming = a.resume(id);
    await stall.stalled();
    const paused = await b.pause(id, 'second', 'ops');
    expect(paused).toMatchObject({ changed: true, reason: 'second' });
    stall.go();
    expect(await resuming).toMatchObject({ changed: true, paused: false });
    for (const line of [a, b]) {
      expect(await line.acquire(id, holder(), LONG_TTL)).toEqual({ ok: false, reason: 'paused' });
      expect(await line.state(id)).toMatchObject({ paused: true, reason: 'second' });
    }
  });

  it('keeps the pause for a process started later', async () => {
    const { a, fresh, id } = await open();
    const paused = await a.pause(id, 'insurer outage', 'ops');
    const later = await fresh();
    expect(await later.state(id)).toEqual({ paused: true, reason: 'insurer outage', pausedAt: paused.pausedAt, pausedBy: 'ops', inFlight: null });
    expect(await later.acquire(id, holder(), LONG_TTL)).toEqual({ ok: false, reason: 'paused' });
    expect(await later.resume(id)).toMatchObject({ changed: true, paused: false });
    expect((await a.acquire(id, holder(), LONG_TTL)).ok).toBe(true);
  });

  it('puts an interactive request of one process ahead of bulk work of another: the holder lets go at its next bulk handoff', async () => {
    const { a, b, id } = await open();
    const t1 = tokenOf(await a.acquire(id, holder('a'), LONG_TTL));
    // b's interactive request finds the line busy: that makes it wanted by b.
    expect(await b.acquire(id, holder('b', 'interactive'), LONG_TTL)).toEqual({ ok: false, reason: 'busy' });
    // a's own interactive work may still follow a's request...
    const mine = holder('a', 'interactive');
    const t2 = tokenOf(await a.release(id, t1, { holder: mine, ttlMs: LONG_TTL }));
    expect((await b.state(id)).inFlight).toEqual(mine);
    // ...but its bulk work does not: the handoff lets go of the line, and a's bulk stays off it.
    expect(await a.release(id, t2, { holder: holder('a'), ttlMs: LONG_TTL })).toEqual({ ok: false, reason: 'busy' });
    expect((await b.state(id)).inFlight).toBeNull();
    expect(await a.acquire(id, holder('a'), LONG_TTL)).toEqual({ ok: false, reason: 'busy' });
    const theirs = holder('b', 'interactive');
    const t3 = tokenOf(await b.acquire(id, theirs, LONG_TTL));
    expect(t3).toBeGreaterThan(t2);
    expect((await a.state(id)).inFlight).toEqual(theirs);
    // Once b got in, its want is met: b's own bulk follows, and then a gets the line back.
    const t4 = tokenOf(await b.release(id, t3, { holder: holder('b'), ttlMs: LONG_TTL }));
    await b.release(id, t4);
    expect(tokenOf(await a.acquire(id, holder('a'), LONG_TTL))).toBeGreaterThan(t4);
  });

  it('forgets a want whose process stopped asking', async () => {
    const { a, b, id } = await open();
    const t1 = tokenOf(await a.acquire(id, holder('a'), LONG_TTL));
    expect(await b.acquire(id, holder('b', 'interactive'), LONG_TTL)).toEqual({ ok: false, reason: 'busy' });
    expect(await a.release(id, t1, { holder: holder('a'), ttlMs: LONG_TTL })).toEqual({ ok: false, reason: 'busy' });
    // b went away: a's bulk work gets the line back once the want has lapsed (250 ms).
    await sleep(300);
    expect((await a.acquire(id, holder('a'), LONG_TTL)).ok).toBe(true);
  });

  it('rejects arguments that could never be right', async () => {
    const { a, id } = await open({ maxTtlMs: 1_000 });
    await expect(a.acquire(id, holder(), 0)).rejects.toThrow(RangeError);
    await expect(a.acquire(id, holder(), 1_001)).rejects.toThrow(RangeError);
    await expect(a.acquire(id, holder(), 1.5)).rejects.toThrow(RangeError);
    await expect(a.acquire('', holder(), 100)).rejects.toThrow(TypeError);
    await expect(a.acquire(id, { ...holder(), kind: 'urgent' } as unknown as LineHolder, 100)).rejects.toThrow(/kind/);
    await expect(a.release(id, 0)).rejects.toThrow(RangeError);
    await expect(a.pause(id, '', 'ops')).rejects.toThrow(TypeError);
    // None of that touched the line.
    expect((await a.acquire(id, holder(), 100)).ok).toBe(true);
  });

  it('throws once closed instead of pretending', async () => {
    const { a, id } = await open();
    await a.close();
    await expect(a.acquire(id, holder(), LONG_TTL)).rejects.toThrow(/closed/);
    await expect(a.pause(id, 'x', 'y')).rejects.toThrow(/closed/);
  });

  it('prints mean acquire, handoff and release latency', async () => {
    const { a, id } = await open();
    const n = 500;
    const time = async (op: () => Promise<unknown>) => {
      const t = performance.now();
      await op();
      return performance.now() - t;
    };
    for (let i = 0; i < 20; i++) await a.release(id, tokenOf(await a.acquire(id, holder(), LONG_TTL))); // warm-up
    let acquire = 0;
    let release = 0;
    for (let i = 0; i < n; i++) {
      let token = 0;
      acquire += await time(async () => (token = tokenOf(await a.acquire(id, holder(), LONG_TTL))));
      release += await time(() => a.release(id, token));
    }
    let handoff = 0;
    let token = tokenOf(await a.acquire(id, holder(), LONG_TTL));
    for (let i = 0; i < n; i++) {
      handoff += await time(async () => (token = tokenOf(await a.release(id, token, { holder: holder(), ttlMs: LONG_TTL }))));
    }
    const ms = (total: number) => `${(total / n).toFixed(2)} ms`;
    console.log(
      `line (${target.kind}, ${databaseKind()} Postgres): mean of ${n}: ` +
        `acquire ${ms(acquire)}, release+handoff ${ms(handoff)}, plain release ${ms(release)}`,
    );
  });
}

/** The renew path (Postgres): the holder keeps its lease for its next request. */
function renewSuite(target: Target) {
  async function open(opts?: { maxTtlMs?: number }) {
    const harness = await target.open(opts);
    onTestFinished(() => harness.close());
    const renew = (line: Line, id: string, token: number, next: { holder: LineHolder; ttlMs: number; minLeftMs: number }) => line.renew!(id, token, next);
    return { ...harness, renew, id: `insurer:${randomUUID()}` };
  }

  it("keeps the lease and its token for the holder's next request, reported in flight, while others are refused", async () => {
    const { a, b, renew, id } = await open();
    const t1 = tokenOf(await a.acquire(id, holder('a'), LONG_TTL));
    const next = holder('a');
    expect(await renew(a, id, t1, { holder: next, ttlMs: LONG_TTL, minLeftMs: 1_000 })).toEqual({ ok: true, token: t1 });
    expect((await b.state(id)).inFlight).toEqual(next);
    expect(await b.acquire(id, holder('b'), LONG_TTL)).toEqual({ ok: false, reason: 'busy' });
    // A stale token renews nothing.
    expect(await renew(b, id, t1 - 1 || t1 + 1, { holder: holder('b'), ttlMs: LONG_TTL, minLeftMs: 1_000 })).toEqual({ ok: false, reason: 'busy' });
    expect((await b.state(id)).inFlight).toEqual(next);
    await a.release(id, t1);
    expect(tokenOf(await b.acquire(id, holder('b'), LONG_TTL))).toBeGreaterThan(t1);
  });

  it('extends the lease only when less than minLeftMs of it is left', async () => {
    const { a, b, renew, id } = await open();
    // Enough left: the expiry stays, so the lease ends when it was going to.
    const t1 = tokenOf(await a.acquire(id, holder('a'), 400));
    expect(await renew(a, id, t1, { holder: holder('a'), ttlMs: LONG_TTL, minLeftMs: 100 })).toEqual({ ok: true, token: t1 });
    await sleep(450);
    const t2 = tokenOf(await b.acquire(id, holder('b'), 400));
    expect(t2).toBeGreaterThan(t1);
    // Too little left: extended to ttlMs from now, so it outlives its first expiry.
    expect(await renew(b, id, t2, { holder: holder('b'), ttlMs: LONG_TTL, minLeftMs: 1_000 })).toEqual({ ok: true, token: t2 });
    await sleep(450);
    expect(await a.acquire(id, holder('a'), LONG_TTL)).toEqual({ ok: false, reason: 'busy' });
  });

  it('hands over as a fresh lease once the old one expired, unless another process took the line', async () => {
    const { a, b, renew, id } = await open();
    const t1 = tokenOf(await a.acquire(id, holder('a'), SHORT_TTL));
    await sleep(SHORT_TTL + 50);
    const t2 = tokenOf(await renew(a, id, t1, { holder: holder('a'), ttlMs: LONG_TTL, minLeftMs: 1_000 }));
    expect(t2).toBeGreaterThan(t1);
    await a.release(id, t2);
    const t3 = tokenOf(await a.acquire(id, holder('a'), SHORT_TTL));
    await sleep(SHORT_TTL + 50);
    const theirs = holder('b');
    tokenOf(await b.acquire(id, theirs, LONG_TTL));
    expect(await renew(a, id, t3, { holder: holder('a'), ttlMs: LONG_TTL, minLeftMs: 1_000 })).toEqual({ ok: false, reason: 'busy' });
    expect((await a.state(id)).inFlight).toEqual(theirs);
  });

  it('is refused from the moment a pause answers, and lets the line go; a chain of renewals ends with the one reported in flight', async () => {
    const { a, b, renew, id } = await open();
    let current = holder('a');
    const token = tokenOf(await a.acquire(id, current, LONG_TTL));
    let renewals = 0;
    const chain = (async () => {
      for (;;) {
        const next = holder('a');
        const got = await renew(a, id, token, { holder: next, ttlMs: LONG_TTL, minLeftMs: 1_000 });
        if (!got.ok) return got;
        expect(got.token).toBe(token);
        renewals++;
        current = next;
      }
    })();
    await sleep(30);
    const paused = await b.pause(id, 'stop the chain', 'test');
    expect(await chain).toEqual({ ok: false, reason: 'paused' });
    expect(renewals).toBeGreaterThan(2);
    expect(paused.inFlight).toEqual(current);
    expect((await b.state(id)).inFlight).toBeNull();
    expect(await b.acquire(id, holder('b'), LONG_TTL)).toEqual({ ok: false, reason: 'paused' });
    await b.resume(id);
    expect(tokenOf(await b.acquire(id, holder('b'), LONG_TTL))).toBeGreaterThan(token);
  });

  it("lets go instead of keeping the line for bulk work while another process's interactive request waits", async () => {
    const { a, b, renew, id } = await open();
    const t1 = tokenOf(await a.acquire(id, holder('a'), LONG_TTL));
    expect(await b.acquire(id, holder('b', 'interactive'), LONG_TTL)).toEqual({ ok: false, reason: 'busy' });
    expect(await renew(a, id, t1, { holder: holder('a', 'interactive'), ttlMs: LONG_TTL, minLeftMs: 1_000 })).toEqual({ ok: true, token: t1 });
    expect(await renew(a, id, t1, { holder: holder('a'), ttlMs: LONG_TTL, minLeftMs: 1_000 })).toEqual({ ok: false, reason: 'busy' });
    expect((await b.state(id)).inFlight).toBeNull();
    expect(tokenOf(await b.acquire(id, holder('b', 'interactive'), LONG_TTL))).toBeGreaterThan(t1);
  });

  it('rejects a minLeftMs outside 0..ttlMs', async () => {
    const { a, renew, id } = await open();
    const t1 = tokenOf(await a.acquire(id, holder('a'), LONG_TTL));
    await expect(renew(a, id, t1, { holder: holder('a'), ttlMs: 1_000, minLeftMs: 2_000 })).rejects.toThrow(RangeError);
    await expect(renew(a, id, t1, { holder: holder('a'), ttlMs: 1_000, minLeftMs: -1 })).rejects.toThrow(RangeError);
  });

  it('prints mean renew latency, kept and extended', async () => {
    const { a, renew, id } = await open();
    const n = 500;
    let token = tokenOf(await a.acquire(id, holder(), LONG_TTL));
    const time = async (minLeftMs: number) => {
      const t = performance.now();
      for (let i = 0; i < n; i++) token = tokenOf(await renew(a, id, token, { holder: holder(), ttlMs: LONG_TTL, minLeftMs }));
      return (performance.now() - t) / n;
    };
    await time(1_000); // warm-up
    const kept = await time(1_000);
    const extended = await time(LONG_TTL);
    console.log(`line (${target.kind}, ${databaseKind()} Postgres): mean of ${n}: renew kept ${kept.toFixed(2)} ms, renew extended ${extended.toFixed(2)} ms`);
  });
}

/** Held leases (both stores): kept across requests without a round trip, stopped by a pause's signal. */
function holdSuite(target: Target) {
  async function open(opts?: { maxTtlMs?: number }) {
    const harness = await target.open(opts);
    onTestFinished(() => harness.close());
    return { ...harness, id: `insurer:${randomUUID()}` };
  }

  it('a held lease: a pause signals its holder and answers once it stopped, with the request it named in flight', async () => {
    const { a, b, id } = await open();
    const signals: string[] = [];
    let token = 0;
    // Sent by the holder without asking the store: the store only knows the first request.
    const first = holder('a');
    const sentSince = holder('a');
    const unwatch = await a.hold!.watch(id, (signal) => {
      signals.push(signal);
      // The holder answers a moment later, naming what it has in flight.
      if (signal === 'stop') setTimeout(() => void a.hold!.ack(id, token, sentSince), 60);
    });
    onTestFinished(() => unwatch());
    token = tokenOf(await a.acquire(id, first, LONG_TTL, { held: true }));
    expect((await b.state(id)).inFlight).toEqual(first);

    const t0 = performance.now();
    const paused = await b.pause(id, 'insurer phoned', 'ops');
    expect(performance.now() - t0).toBeGreaterThanOrEqual(55);
    expect(signals).toContain('stop');
    expect(paused).toMatchObject({ changed: true, paused: true, inFlight: sentSince });
    expect((await b.state(id)).inFlight).toEqual(sentSince);
    // Its next round trip is refused and lets the lease go.
    expect(await a.release(id, token, { holder: holder('a'), ttlMs: LONG_TTL, held: true })).toEqual({ ok: false, reason: 'paused' });
    expect((await b.state(id)).inFlight).toBeNull();
    expect(await a.hold!.ack(id, token, null)).toBe(false);
  });

  it('a held lease whose holder answers with nothing in flight: the pause reports none', async () => {
    const { a, b, id } = await open();
    let token = 0;
    const unwatch = await a.hold!.watch(id, (signal) => void (signal === 'stop' && a.hold!.ack(id, token, null)));
    onTestFinished(() => unwatch());
    token = tokenOf(await a.acquire(id, holder('a'), LONG_TTL, { held: true }));
    expect(await b.pause(id, 'insurer phoned', 'ops')).toMatchObject({ paused: true, inFlight: null });
  });

  it('a held lease whose holder never answers: the pause waits for the lease to expire, and nothing is in flight then', async () => {
    const { a, b, id } = await open();
    tokenOf(await a.acquire(id, holder('a'), SHORT_TTL, { held: true }));
    const t0 = performance.now();
    const paused = await b.pause(id, 'insurer phoned', 'ops');
    expect(performance.now() - t0).toBeGreaterThanOrEqual(SHORT_TTL - 60);
    expect(paused).toMatchObject({ paused: true, inFlight: null });
  });

  it('a lease not held is paused at once, reporting its holder', async () => {
    const { a, b, id } = await open();
    const inFlight = holder('a');
    tokenOf(await a.acquire(id, inFlight, LONG_TTL));
    const t0 = performance.now();
    expect(await b.pause(id, 'insurer phoned', 'ops')).toMatchObject({ paused: true, inFlight });
    expect(performance.now() - t0).toBeLessThan(LONG_TTL / 2);
  });

  it("tells the holder of a held lease when another process's interactive request waits", async () => {
    const { a, b, id } = await open();
    const signals: string[] = [];
    const unwatch = await a.hold!.watch(id, (signal) => signals.push(signal));
    onTestFinished(() => unwatch());
    const token = tokenOf(await a.acquire(id, holder('a'), LONG_TTL, { held: true }));
    expect(await b.acquire(id, holder('b', 'bulk'), LONG_TTL)).toEqual({ ok: false, reason: 'busy' });
    expect(await b.acquire(id, holder('b', 'interactive'), LONG_TTL)).toEqual({ ok: false, reason: 'busy' });
    for (let i = 0; i < 100 && !signals.length; i++) await sleep(5);
    expect(signals).toEqual(['want']);
    // The holder asks before its next bulk request: refused, and the line is let go for b.
    expect(await a.release(id, token, { holder: holder('a'), ttlMs: LONG_TTL, held: true })).toEqual({ ok: false, reason: 'busy' });
    tokenOf(await b.acquire(id, holder('b', 'interactive'), LONG_TTL));
  });

  it('a renewal keeps a held lease held: a pause still waits for its holder', async () => {
    const { a, b, id } = await open();
    if (!a.renew) return expect(target.kind).toBe('redis'); // Redis hands over instead
    let token = 0;
    const named = holder('a');
    const unwatch = await a.hold!.watch(id, (signal) => void (signal === 'stop' && a.hold!.ack(id, token, named)));
    onTestFinished(() => unwatch());
    token = tokenOf(await a.acquire(id, holder('a'), LONG_TTL, { held: true }));
    expect(tokenOf(await a.renew(id, token, { holder: holder('a'), ttlMs: LONG_TTL, minLeftMs: LONG_TTL, held: true }))).toBe(token);
    expect(await b.pause(id, 'insurer phoned', 'ops')).toMatchObject({ paused: true, inFlight: named });
    expect(await a.renew(id, token, { holder: holder('a'), ttlMs: LONG_TTL, minLeftMs: LONG_TTL, held: true })).toEqual({ ok: false, reason: 'paused' });
    expect((await b.state(id)).inFlight).toBeNull();
  });
}

function redisOnlySuite(target: Target) {
  async function open(opts?: { maxTtlMs?: number }) {
    const harness = await target.open(opts);
    onTestFinished(() => harness.close());
    return { ...harness, forget: harness.forget!, keyPrefix: harness.keyPrefix!, id: `insurer:${randomUUID()}` };
  }

  it('keeps refusing a paused line after Redis lost its keys', async () => {
    const { a, b, fresh, forget, id } = await open({ maxTtlMs: 300 });
    const paused = await a.pause(id, 'insurer outage', 'ops');
    await forget();
    expect(await b.acquire(id, holder(), 100)).toEqual({ ok: false, reason: 'paused' });
    await forget();
    expect(await b.release(id, 1, { holder: holder(), ttlMs: 100 })).toEqual({ ok: false, reason: 'paused' });
    await forget();
    const later = await fresh();
    expect(await later.state(id)).toMatchObject({ paused: true, reason: 'insurer outage', pausedAt: paused.pausedAt });
    expect(await later.acquire(id, holder(), 100)).toEqual({ ok: false, reason: 'paused' });
    expect(await b.resume(id)).toMatchObject({ changed: true, paused: false });
  });

  it('after losing its keys, keeps the line busy for maxTtlMs (a lost lease may be in flight) and never repeats a token', async () => {
    const { a, b, forget, id } = await open({ maxTtlMs: LOST_TTL });
    const t1 = tokenOf(await a.acquire(id, holder(), LOST_TTL));
    await forget();
    expect(await b.acquire(id, holder('b'), LOST_TTL)).toEqual({ ok: false, reason: 'busy' });
    expect((await b.state(id)).inFlight).toBeNull(); // who it was went with the data
    expect(await a.release(id, t1)).toBeNull();
    expect(await b.acquire(id, holder('b'), LOST_TTL)).toEqual({ ok: false, reason: 'busy' });
    await sleep(LOST_TTL + 50);
    const t2 = tokenOf(await b.acquire(id, holder('b'), LOST_TTL));
    expect(t2).toBeGreaterThan(t1);
    await b.release(id, t2);
    // The busy spell starts when a process finds the data gone: Redis can't say when it lost it.
    await forget();
    expect(await a.acquire(id, holder(), LOST_TTL)).toEqual({ ok: false, reason: 'busy' });
    await sleep(LOST_TTL + 50);
    expect(tokenOf(await a.acquire(id, holder(), LOST_TTL))).toBeGreaterThan(t2);
  });

  it('never lets a slow resync undo a pause that happened meanwhile', async () => {
    const { b, make, forget, id } = await open();
    const slow = stallingDb(dbA);
    const a = await make(slow.db);
    // "a" finds no mirror and resyncs: it reads the unpaused state, then stalls before Redis.
    const stall = slow.stallOnce();
    const attempt = a.acquire(id, holder(), LONG_TTL);
    await stall.stalled();
    // Meanwhile the line is paused, and Redis loses everything again before "a" goes on.
    expect((await b.pause(id, 'paused during a resync', 'ops')).inFlight).toBeNull();
    await forget();
    stall.go();
    expect(await attempt).toEqual({ ok: false, reason: 'paused' });
    expect(await a.state(id)).toMatchObject({ paused: true, reason: 'paused during a resync' });
  });

  it('does not hold a new line busy when a second process sets it up before the first confirms', async () => {
    const { b, make, id } = await open();
    const slow = stallingDb(dbA);
    const a = await make(slow.db);
    // "a" is the first to set the line up: it has recorded that Redis may hand out leases on it,
    // and stalls before it confirms the mirror. No lease was ever handed out.
    const stall = slow.stallOnce(/SET mirrored_epoch/);
    const first = a.acquire(id, holder('a'), LONG_TTL);
    await stall.stalled();
    const second = holder('b');
    const got = await b.acquire(id, second, LONG_TTL);
    stall.go();
    expect(got.ok).toBe(true);
    expect(await first).toEqual({ ok: false, reason: 'busy' });
    expect((await a.state(id)).inFlight).toEqual(second);
  });

  it('keeps the line busy when a process that read it before it was ever mirrored rebuilds it after Redis lost a lease', async () => {
    const { b, make, forget, id } = await open({ maxTtlMs: LOST_TTL });
    const slow = stallingDb(dbA);
    const a = await make(slow.db);
    // "a" reads the new line (not mirrored yet) and stalls; "b" sets it up and takes a lease.
    const stall = slow.stallOnce();
    const attempt = a.acquire(id, holder('a'), LOST_TTL);
    await stall.stalled();
    const t1 = tokenOf(await b.acquire(id, holder('b'), LOST_TTL));
    // Redis loses the lease still in flight; "a" goes on with what it read before.
    await forget();
    stall.go();
    expect(await attempt).toEqual({ ok: false, reason: 'busy' });
    expect(await b.acquire(id, holder('b'), LOST_TTL)).toEqual({ ok: false, reason: 'busy' });
    await sleep(LOST_TTL + 50);
    expect(tokenOf(await a.acquire(id, holder('a'), LOST_TTL))).toBeGreaterThan(t1);
  });

  it('keeps the line busy when Redis runs a rolled-back pause late, after it lost a lease', async () => {
    const { b, make, forget, keyPrefix, id } = await open({ maxTtlMs: LOST_TTL });
    // "x" pauses a new line: its step reaches Redis, then its transaction rolls back.
    const x = await make({ ...dbA, tx: (fn) => dbA.tx(async (tx) => { await fn(tx); throw new Error('connection lost at commit'); }) } as Db);
    await expect(x.pause(id, 'maintenance', 'ops')).rejects.toThrow(/connection lost/);
    const control = `${keyPrefix}line:{${id}}:control`;
    const redis = new Redis(redisUrl);
    onTestFinished(() => void redis.disconnect());
    const lateEpoch = await redis.hget(control, 'epoch');
    expect(lateEpoch).not.toBeNull();
    // The line is set up and a lease handed out; then Redis loses it, and runs the pause's step
    // again after reconnecting (a client resends a command whose answer it never had).
    const t1 = tokenOf(await b.acquire(id, holder('b'), LOST_TTL));
    await forget();
    const lua = readFileSync(new URL('../../storage/line/lua/line-apply.lua', import.meta.url), 'utf8');
    const keys = ['control', 'lease', 'token'].map((k) => `${keyPrefix}line:{${id}}:${k}`);
    await redis.eval(lua, 3, ...keys, lateEpoch!, '1', 'maintenance', String(Date.now()), 'ops', String(LOST_TTL), '0');
    // Postgres holds no pause; the next process resyncs, and the lost lease may still be in flight.
    const a = await make(dbB);
    expect(await a.acquire(id, holder('a'), LOST_TTL)).toEqual({ ok: false, reason: 'busy' });
    await sleep(LOST_TTL + 50);
    expect(tokenOf(await a.acquire(id, holder('a'), LOST_TTL))).toBeGreaterThan(t1);
  });

  it('does not hold a line busy on its first use, even when two processes set it up at once', async () => {
    const { a, b } = await open({ maxTtlMs: 300 });
    for (let i = 0; i < 10; i++) {
      const id = `insurer:${randomUUID()}`;
      const results = await Promise.all(Array.from({ length: 10 }, (_, j) => (j % 2 ? a : b).acquire(id, holder(), 300)));
      expect(results.filter((r) => r.ok)).toHaveLength(1);
    }
  });
}

async function probeRedis(): Promise<Error | undefined> {
  const client = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 2_000, retryStrategy: () => null });
  // The socket error (ECONNREFUSED...) says more than the "Connection is closed" connect() rejects with.
  let socketError: Error | undefined;
  client.on('error', (err: Error) => void (socketError ??= err));
  try {
    await client.connect();
    await client.ping();
    return undefined;
  } catch (err) {
    return socketError ?? (err instanceof Error ? err : new Error(String(err)));
  } finally {
    client.disconnect();
  }
}

const probe = await probeRedis();
// In CI an unreachable Redis must fail the run, so the suite runs and each test reports why.
const runRedis = !probe || Boolean(process.env.CI);
if (!runRedis) console.log(`line: Redis suite excluded, ${probe?.message} (start Redis or set REDIS_URL)`);

describe('line (postgres)', () => {
  lineSuite(postgres);
  renewSuite(postgres);
  holdSuite(postgres);
});
describe.runIf(runRedis)('line (redis)', () => {
  lineSuite(redis);
  holdSuite(redis);
  redisOnlySuite(redis);
});

describe('createLine', () => {
  it('names REDIS_URL when Redis is unreachable', async () => {
    await expect(createLine({ db: dbA, redis: { url: 'redis://127.0.0.1:1' } })).rejects.toThrow(/REDIS_URL.*ECONNREFUSED/);
  });
});
