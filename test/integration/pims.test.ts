import { afterEach, describe, expect, it } from 'vitest';
import { ADMIN, pimsHarness, type PimsHarness } from '../support/pims.ts';
import { databaseKind } from '../support/db.ts';
import { until } from '../support/insurer.ts';

const json = async (r: Response | Promise<Response>) => (await (await r).json()) as any;

/** Lets the runtime and the effects' real IO run (the manual clock does not move). */
const quiet = (ms = 300) => new Promise((r) => setTimeout(r, ms));

// The visit's life on the machine's PostgreSQL (when DATABASE_URL is set) and on the embedded one.
const variants = databaseKind() === 'external' ? (['default', 'embedded'] as const) : (['embedded'] as const);

describe.each(variants)('practice-system visits (%s storage)', (storage) => {
  let h: PimsHarness;
  afterEach(async () => {
    await h?.close();
  });

  const checkin = (visitId: string, patientId = 'P-000001') => h.req('/pims/checkins', { body: { visitId, patientId, checkedInAt: new Date(h.clock.now()).toISOString() } });
  const items = (visitId: string, query = '') => json(h.req(`/visits/${visitId}/line-items${query}`));
  const stateOf = async (visitId: string) => (await items(visitId)).state as string;
  /**
   * Time until the visit's next durable timer, as stored. The line-items read shows the live
   * state, whose save may still be on its way: settle first (advancing by nothing), so the timers
   * read are the ones that state stored.
   */
  const dueIn = async (visitId: string) => {
    await h.clock.advance(0);
    return Number((await h.t.db.query(`SELECT min(due_at) AS d FROM timers WHERE type = 'visit' AND key = $1`, [visitId])).rows[0].d) - h.clock.now();
  };

  it('check-in fetches once; max age → exactly one refresh; checkout → final fetch, no more; retention → removed', async () => {
    h = await pimsHarness({ storage });
    const v = h.sim.openVisit();
    const res = await checkin(v.id);
    expect(res.status).toBe(202);
    expect(await json(checkin(v.id))).toMatchObject({ visitId: v.id, duplicate: true });

    await until(() => items(v.id), (b) => b.state === 'open.fresh');
    expect(h.fetches(v.id)).toBe(1);
    const first = await items(v.id);
    expect(first).toMatchObject({ visitId: v.id, ageMs: 0, stale: false, failures: 0, lastError: null });
    expect(first.items).toEqual(h.sim.lineItems(v.id));

    // Due between 80% and 100% of the max age (60 s here): nothing before 48 s.
    await h.clock.advance(47_000);
    await quiet();
    expect(h.fetches(v.id)).toBe(1);
    expect((await items(v.id)).ageMs).toBe(47_000);
    const changed = h.sim.changeItems(v.id);
    await h.clock.advance(13_000);
    await until(async () => h.fetches(v.id), (n) => n >= 2);
    await until(() => items(v.id), (b) => b.state === 'open.fresh' && b.ageMs < 13_000);
    await quiet();
    expect(h.fetches(v.id)).toBe(2);
    expect((await items(v.id)).items).toEqual(changed);

    const out = await h.req('/pims/checkouts', { body: { visitId: v.id } });
    expect(out.status).toBe(202);
    await until(() => items(v.id), (b) => b.state === 'closed');
    expect(h.fetches(v.id)).toBe(3);
    const closed = await items(v.id);
    expect(closed.final).toBe(true);
    // Checked out: however long it stays, nothing is fetched any more; its items stay readable.
    await h.clock.advance(10 * 60_000);
    await quiet();
    expect(h.fetches(v.id)).toBe(3);
    expect((await items(v.id)).items).toEqual(closed.items);
    expect(await json(h.req('/pims/checkouts', { body: { visitId: v.id } }))).toMatchObject({ duplicate: true });

    // Retention (an hour here) → removed: its items are gone and it is unknown.
    await h.clock.advance(3_600_000);
    await until(async () => (await h.req(`/visits/${v.id}/line-items`)).status, (s) => s === 404);
    expect((await h.t.db.query('SELECT count(*)::int AS n FROM visit_line_items')).rows[0].n).toBe(0);
    expect(h.fetches(v.id)).toBe(3);
    // Who the visit was for is forgotten in its stored state.
    const row = await h.t.db.query(`SELECT snapshot FROM actors WHERE type = 'visit' AND key = $1`, [v.id]);
    expect(row.rows[0].snapshot.context).toMatchObject({ patientId: null, checkedInAt: null });
  }, 60_000);

  it('a restart between refreshes: the next refresh happens at its original time, not a max age after the restart', async () => {
    h = await pimsHarness({ storage });
    const v = h.sim.openVisit();
    await checkin(v.id);
    await until(() => items(v.id), (b) => b.state === 'open.fresh');
    const due = await dueIn(v.id);
    await h.clock.advance(20_000);
    await h.restart();
    // The new process wakes the visit only when its timer falls due: to the millisecond.
    await h.clock.advance(due - 20_000 - 1);
    await quiet();
    expect(h.fetches(v.id)).toBe(1);
    await h.clock.advance(1);
    await until(async () => h.fetches(v.id), (n) => n === 2);
    await until(() => items(v.id), (b) => b.state === 'open.fresh' && b.ageMs === 0);
    // A restart after a refresh fell due (the process was down): it refreshes at once.
    const next = await dueIn(v.id);
    await h.restart(() => h.clock.set(h.clock.now() + next + 30_000));
    await h.clock.advance(0);
    await until(async () => h.fetches(v.id), (n) => n === 3);
    await quiet();
    expect(h.fetches(v.id)).toBe(3);
  }, 30_000);

  it('a read with maxAgeMs refreshes first when the items are older, and waits for the fresh ones', async () => {
    h = await pimsHarness({ storage });
    const v = h.sim.openVisit();
    await checkin(v.id);
    await until(() => items(v.id), (b) => b.state === 'open.fresh');
    await h.clock.advance(10_000);
    // Young enough: answered from the cache, nothing fetched.
    const cached = await items(v.id, '?maxAgeMs=20000');
    expect(cached).toMatchObject({ ageMs: 10_000, refresh: { asked: false } });
    expect(h.fetches(v.id)).toBe(1);
    const fresh = await items(v.id, '?maxAgeMs=5000');
    expect(fresh).toMatchObject({ ageMs: 0, refresh: { asked: true, done: true } });
    expect(h.fetches(v.id)).toBe(2);
    // The practice system is down: the cached items are served, and the answer says so.
    h.sim.configure({ down: true });
    await h.clock.advance(10_000);
    const stale = await items(v.id, '?maxAgeMs=1000&waitMs=300');
    expect(stale).toMatchObject({ ageMs: 10_000, refresh: { asked: true, done: false } });
    expect(stale.items).toHaveLength(5);
    expect(stale.refresh.reason).toMatch(/cached/);
  }, 30_000);

  it('a practice system that fails: retries back off, stale items are served, error state after N failures, recovery', async () => {
    h = await pimsHarness({ storage });
    const v = h.sim.openVisit();
    await checkin(v.id);
    await until(() => items(v.id), (b) => b.state === 'open.fresh');
    h.sim.configure({ down: true });
    await h.clock.advance(await dueIn(v.id));
    await until(() => items(v.id), (b) => b.state === 'open.retrying');
    const retrying = await items(v.id);
    expect(retrying.failures).toBe(1);
    expect(retrying.lastError).toMatch(/503/);
    expect(retrying.items).toHaveLength(5);
    // Served with their age: the refresh fell due before the max age (jitter), so not stale yet.
    expect(retrying.ageMs).toBeGreaterThanOrEqual(48_000);
    expect(retrying.stale).toBe(false);
    // Back-off 1 s then 2 s, each with jitter (half to all of it).
    const first = await dueIn(v.id);
    expect(first).toBeGreaterThanOrEqual(500);
    expect(first).toBeLessThanOrEqual(1_000);
    await h.clock.advance(first);
    await until(() => items(v.id), (b) => b.failures === 2 && b.state === 'open.retrying');
    const second = await dueIn(v.id);
    expect(second).toBeGreaterThanOrEqual(1_000);
    expect(second).toBeLessThanOrEqual(2_000);
    await h.clock.advance(second);
    // The third failure in a row shows `error`; the last good items are still served.
    await until(() => items(v.id), (b) => b.state === 'open.error');
    expect(await items(v.id)).toMatchObject({ failures: 3 });
    const metrics = await (await h.req('/metrics', { token: ADMIN })).text();
    expect(metrics).toContain('actors_by_state{type="visit",state="open.error"} 1');
    expect((await items(v.id)).items).toHaveLength(5);
    const failing = h.fetches(v.id);
    expect(failing).toBe(4);
    // In error it keeps trying, at a slower pace (30 s here, minus up to a quarter).
    const slow = await dueIn(v.id);
    expect(slow).toBeGreaterThanOrEqual(22_500);
    await h.clock.advance(slow - 1);
    await quiet();
    expect(h.fetches(v.id)).toBe(failing);
    // Past the max age now: still served, and marked stale.
    expect(await items(v.id)).toMatchObject({ state: 'open.error', stale: true });
    expect((await items(v.id)).items).toHaveLength(5);
    h.sim.configure({ down: false });
    await h.clock.advance(1);
    await until(() => items(v.id), (b) => b.state === 'open.fresh');
    expect(await items(v.id)).toMatchObject({ failures: 0, lastError: null, ageMs: 0, stale: false });
    expect(h.fetches(v.id)).toBe(failing + 1);
  }, 30_000);

  it('a 429 is honoured: the retry waits at least its Retry-After, and it is not counted as an error', async () => {
    h = await pimsHarness({ storage, sim: { rateLimitPerSec: 1 }, ratePerSec: 1_000 });
    // The census's first listing took the simulator's one token: let its bucket refill.
    await until(async () => h.sim.stats.calls.length, (n) => n === 1);
    await quiet(1_100);
    const a = h.sim.openVisit();
    const b = h.sim.openVisit();
    // Two check-ins at once: one fetch gets the token, the other a 429 with Retry-After: 1.
    await Promise.all([checkin(a.id), checkin(b.id)]);
    await until(async () => [await stateOf(a.id), await stateOf(b.id)].sort().join(), (x) => x === 'open.fresh,open.retrying');
    const [late] = (await stateOf(a.id)) === 'open.retrying' ? [a] : [b];
    const refused = h.sim.stats.calls.filter((c) => c.status === 429);
    expect(refused).toHaveLength(1);
    expect((await items(late!.id)).lastError).toMatch(/429/);
    expect(await (await h.req('/metrics', { token: ADMIN })).text()).toContain('pims_retry_after_holds_total 1');
    // Not a failure of the practice system: no error state however often it happens.
    expect((await items(late!.id)).failures).toBe(1);
    expect(await dueIn(late!.id)).toBeGreaterThanOrEqual(1_000);
    await quiet(1_100); // the simulator's bucket refills in real time
    await h.clock.advance(await dueIn(late!.id));
    await until(() => items(late!.id), (x) => x.state === 'open.fresh');
    expect(h.sim.stats.calls.filter((c) => c.status === 429)).toHaveLength(1);
  }, 30_000);

  it('a checkout right behind its check-in is taken; a 404 while open is retried, not closed; a new check-in reopens a closed visit', async () => {
    h = await pimsHarness({ storage });
    const v = h.sim.openVisit();
    const [cin, cout] = [await checkin(v.id), await h.req('/pims/checkouts', { body: { visitId: v.id } })];
    expect(cin.status).toBe(202);
    expect(cout.status).toBe(202);
    await until(() => items(v.id), (b) => b.state === 'closed');
    // Checked in again later (another checkedInAt): open again, fetching.
    const again = await h.req('/pims/checkins', { body: { visitId: v.id, patientId: 'P-000001', checkedInAt: new Date(h.clock.now() + 1_000).toISOString() } });
    expect(await again.json()).toMatchObject({ duplicate: false });
    await until(() => items(v.id), (b) => b.state === 'open.fresh');

    // A visit the practice system does not know (yet): retried with back-off, shown, never closed.
    const early = 'V-777777';
    expect((await checkin(early)).status).toBe(202);
    await until(() => items(early), (b) => b.state === 'open.retrying');
    expect((await items(early)).lastError).toMatch(/404/);
    h.sim.openVisit({ id: early });
    await h.clock.advance(await dueIn(early));
    await until(() => items(early), (b) => b.state === 'open.fresh');
  }, 30_000);

  it('the census checks in open visits without an actor and checks out those no longer open', async () => {
    h = await pimsHarness({ storage, sim: { visitCount: 5 }, censusIntervalMs: 120_000 });
    // A new census runs at once: the five open visits, whose hooks nobody sent, get actors.
    const listed = async () => (await json(h.req('/visits?state=open'))).items as any[];
    await until(listed, (l) => l.length === 5 && l.every((x) => x.state === 'open.fresh'));
    const [gone, ...rest] = h.sim.openVisits();
    h.sim.closeVisit(gone!.id);
    const added = h.sim.openVisit();
    await h.clock.advance(119_000);
    await quiet();
    expect((await listed()).map((x) => x.visitId).sort()).toEqual([gone!.id, ...rest.map((x) => x.id)].sort());
    await h.clock.advance(1_000);
    await until(listed, (l) => l.some((x) => x.visitId === added.id) && !l.some((x) => x.visitId === gone!.id));
    await until(() => items(gone!.id), (x) => x.state === 'closed');
    expect((await items(gone!.id)).final).toBe(true);
    const census = await json(h.req('/actors/pims-census/main', { token: ADMIN }));
    expect(census.context.last).toMatchObject({ open: 5, checkedIn: 1, checkedOut: 1, skipped: 0, failed: 0 });
    // A visit whose id this system cannot take is skipped and counted; the others still heal.
    h.sim.openVisit({ id: 'V 1/bad' });
    const next = h.sim.openVisit();
    await h.clock.advance(120_000);
    await until(listed, (l) => l.some((x) => x.visitId === next.id));
    await until(() => json(h.req('/actors/pims-census/main', { token: ADMIN })), (c) => c.context.runs === 3);
    expect((await json(h.req('/actors/pims-census/main', { token: ADMIN }))).context).toMatchObject({ lastError: null, last: { checkedIn: 1, skipped: 1 } });
  }, 30_000);

  it('bad input gets a 400 naming the field and changes nothing; unknown visit 404; roles enforced', async () => {
    h = await pimsHarness({ storage });
    const bad = async (body: unknown, field: string) => {
      const r = await h.req('/pims/checkins', { body });
      expect(r.status).toBe(400);
      expect(r.headers.get('content-type')).toMatch(/problem\+json/);
      expect((await r.json()) as any).toMatchObject({ field });
    };
    await bad({ patientId: 'P-1', checkedInAt: '2026-03-02T08:00:00Z' }, 'visitId');
    await bad({ visitId: 'V 1', patientId: 'P-1', checkedInAt: '2026-03-02T08:00:00Z' }, 'visitId');
    await bad({ visitId: 'V-1', checkedInAt: '2026-03-02T08:00:00Z' }, 'patientId');
    await bad({ visitId: 'V-1', patientId: 'P-1', checkedInAt: 'yesterday' }, 'checkedInAt');
    await bad({ visitId: 'V-1', patientId: 'P-1', checkedInAt: '2026-03-02T08:00:00Z', extra: 1 }, 'extra');
    const malformed = await h.req('/pims/checkins', { body: '{"visitId":' });
    expect(malformed.status).toBe(400);
    expect((await h.req('/pims/checkouts', { body: {} })).status).toBe(400);
    const unknown = await h.req('/pims/checkouts', { body: { visitId: 'V-404' } });
    expect(unknown.status).toBe(404);
    expect((await unknown.json()) as any).toMatchObject({ field: 'visitId' });
    expect((await h.req('/visits/V-404/line-items')).status).toBe(404);
    expect((await h.req('/visits/V%201/line-items')).status).toBe(400);
    expect((await h.req('/visits?limit=0')).status).toBe(400);
    expect((await h.req('/visits/V-1/line-items?maxAgeMs=-1')).status).toBe(400);
    // Hooks are the integration's; reads are the integration's and admin's.
    expect((await h.req('/pims/checkins', { body: { visitId: 'V-1', patientId: 'P-1', checkedInAt: '2026-03-02T08:00:00Z' }, token: ADMIN })).status).toBe(403);
    expect((await h.req('/visits', { token: ADMIN })).status).toBe(200);
    expect((await h.req('/visits', { token: 'nope-nope-nope-nope' })).status).toBe(401);
    // Nothing was stored by any of it.
    const journal = await h.t.db.query(`SELECT count(*)::int AS n FROM journal WHERE type = 'visit'`);
    expect(journal.rows[0].n).toBe(0);
    expect(h.sim.stats.calls.filter((c) => c.visitId)).toEqual([]);
  }, 30_000);
});

describe('practice-system visits at scale', () => {
  let h: PimsHarness;
  afterEach(async () => {
    await h?.close();
  });
  const checkin = (visitId: string, patientId = 'P-000001') => h.req('/pims/checkins', { body: { visitId, patientId, checkedInAt: new Date(h.clock.now()).toISOString() } });

  it('2,000 visits checked in at once: fetched within the rate limit, refreshes spread over the period', async () => {
    const rate = 400;
    h = await pimsHarness({ ratePerSec: rate, sim: { rateLimitPerSec: rate * 2 } });
    const visits = Array.from({ length: 2_000 }, () => h.sim.openVisit());
    let next = 0;
    await Promise.all(
      Array.from({ length: 50 }, async () => {
        while (next < visits.length) expect((await checkin(visits[next++]!.id)).status).toBe(202);
      }),
    );
    await until(async () => h.sim.stats.calls.filter((c) => c.status === 200).length, (n) => n >= 2_000, 30_000, 200);
    await until(async () => (await h.t.db.query(`SELECT count(*)::int AS n FROM timers WHERE type = 'visit'`)).rows[0].n, (n) => n === 2_000, 10_000);
    expect(h.sim.stats.calls.filter((c) => c.status !== 200)).toEqual([]);
    // One token per request, burst 1: no second ever saw more than the rate (+1 at its edge).
    expect(h.sim.stats.maxPerWindow(1_000)).toBeLessThanOrEqual(rate + 1);
    // Their refreshes are due spread over the last 20% of the max age (48-60 s after their
    // fetch), not all at once: no 1%-of-the-period bucket holds more than a few percent.
    const due = (await h.t.db.query(`SELECT due_at FROM timers WHERE type = 'visit'`)).rows.map((r) => Number(r.due_at) - h.clock.now());
    expect(Math.min(...due)).toBeGreaterThanOrEqual(48_000);
    expect(Math.max(...due)).toBeLessThanOrEqual(60_000);
    const buckets = new Map<number, number>();
    for (const d of due) buckets.set(Math.floor(d / 600), (buckets.get(Math.floor(d / 600)) ?? 0) + 1);
    expect(buckets.size).toBeGreaterThanOrEqual(19);
    expect(Math.max(...buckets.values())).toBeLessThan(2_000 * 0.1);

    h.sim.resetStats();
    await h.clock.advance(60_000);
    await until(async () => h.sim.stats.calls.length, (n) => n >= 2_000, 30_000, 200);
    expect(h.sim.stats.maxPerWindow(1_000)).toBeLessThanOrEqual(rate + 1);
    expect(h.sim.stats.calls.every((c) => c.status === 200)).toBe(true);
    // Exactly one request per refresh.
    const per = new Map<string, number>();
    for (const c of h.sim.stats.calls) if (c.visitId) per.set(c.visitId, (per.get(c.visitId) ?? 0) + 1);
    expect(per.size).toBe(2_000);
    expect(Math.max(...per.values())).toBe(1);
  }, 120_000);
});
