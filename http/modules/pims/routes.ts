import { Hono, type Context } from 'hono';
import { z } from 'zod';
import type { Clock } from '../../../actors/clock.ts';
import { NotFoundError } from '../../../actors/errors.ts';
import type { ActorSystem } from '../../../actors/system.ts';
import type { ActorView } from '../../../actors/types.ts';
import type { Db } from '../../../storage/db.ts';
import { listVisits, readItems } from '../../../storage/pims/items.ts';
import { requireRole, type AuthEnv } from '../../auth.ts';
import { ProblemError } from '../../problem.ts';
import { decodeCursor, encodeCursor, iso, parseBody, parseQuery } from '../../request.ts';
import { checkinKey } from './effects.ts';
import { PIMS_PATIENT_ID, VISIT_ID } from './ids.ts';
import type { PimsModule } from './module.ts';

export interface PimsRouteDeps {
  db: Db;
  system: ActorSystem;
  clock: Clock;
  module: PimsModule;
}

const visitId = z.string({ error: 'visitId is required' }).regex(VISIT_ID, 'visitId must be 1-64 of letters, digits and ._:- (starting with a letter or digit)');
const checkinBody = z.strictObject({
  visitId,
  patientId: z.string({ error: 'patientId is required' }).regex(PIMS_PATIENT_ID, 'patientId must be 1-64 of letters, digits and ._:- (starting with a letter or digit)'),
  checkedInAt: z.iso.datetime({ offset: true, error: 'checkedInAt must be an ISO 8601 date-time' }),
});
const checkoutBody = z.strictObject({ visitId });
const readQuery = z.strictObject({
  maxAgeMs: z.coerce.number().int().min(0).max(7 * 24 * 3600_000).optional(),
  waitMs: z.coerce.number().int().min(0).max(30_000).default(5_000),
});
const listQuery = z.strictObject({
  state: z.string().regex(/^[A-Za-z]+(\.[A-Za-z]+)*$/, 'state is a state name such as open, open.error or closed').max(64).default('open'),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  cursor: z.string().max(200).optional(),
});

/**
 * Practice-system hooks (integration role) and visit reads (integration and admin). A hook is
 * answered once its event is committed to the visit's journal: the actor does the rest.
 */
export function pimsRoutes({ db, system, clock, module }: PimsRouteDeps) {
  const app = new Hono<AuthEnv>();
  app.use('/pims/*', requireRole('integration'));
  for (const path of ['/visits', '/visits/*']) app.use(path, requireRole('integration', 'admin'));
  const { maxAgeMs } = module.settings.timing;

  /**
   * The visit's actor, or 404 when there is none or it was removed. A check-in stored but not
   * yet processed counts: a checkout right behind it is queued after it in the journal.
   */
  async function visit(id: string): Promise<ActorView> {
    try {
      const view = await system.get('visit', id);
      if (view.state === 'removed') throw new NotFoundError('removed');
      return view;
    } catch (err) {
      if (err instanceof NotFoundError) throw new ProblemError(404, 'no visit with that id is known', 'visitId');
      throw err;
    }
  }

  app.post('/pims/checkins', async (c) => {
    const b = await parseBody(c, checkinBody);
    const sent = await system.send('visit', b.visitId, { type: 'checkin', patientId: b.patientId, checkedInAt: b.checkedInAt }, { idempotencyKey: checkinKey(b.checkedInAt) });
    return c.json({ visitId: b.visitId, seq: sent.seq, duplicate: sent.duplicate }, 202);
  });

  app.post('/pims/checkouts', async (c) => {
    const b = await parseBody(c, checkoutBody);
    await visit(b.visitId);
    const sent = await system.send('visit', b.visitId, { type: 'checkout', at: clock.now() }, { idempotencyKey: 'checkout' });
    return c.json({ visitId: b.visitId, seq: sent.seq, duplicate: sent.duplicate }, 202);
  });

  app.get('/visits', async (c) => {
    const q = parseQuery(c, listQuery);
    const rows = await listVisits(db, q.state, decodeCursor(q.cursor) ?? '', q.limit);
    const now = clock.now();
    return c.json({
      items: rows.map((r) => ({
        visitId: r.visitId,
        state: r.state,
        fetchedAt: iso(r.fetchedAt),
        ageMs: r.fetchedAt === null ? null : now - r.fetchedAt,
        stale: r.fetchedAt === null || now - r.fetchedAt > maxAgeMs,
        itemCount: r.itemCount,
      })),
      nextCursor: rows.length === q.limit ? encodeCursor(rows.at(-1)!.visitId) : null,
    });
  });

  app.get('/visits/:id/line-items', async (c) => {
    const id = c.req.param('id');
    if (!VISIT_ID.test(id)) throw new ProblemError(400, 'visit id must be 1-64 of letters, digits and ._:-', 'id');
    const q = parseQuery(c, readQuery);
    let view = await visit(id);
    let stored = await readItems(db, id);
    const asked = q.maxAgeMs !== undefined && (!stored || clock.now() - stored.fetchedAt > q.maxAgeMs);
    let refresh: { asked: boolean; done: boolean; waitedMs: number; reason?: string } = { asked: false, done: false, waitedMs: 0 };
    if (asked) {
      if (!view.state.startsWith('open')) {
        refresh = { asked: true, done: false, waitedMs: 0, reason: `the visit is ${view.state}: it is not refreshed any more` };
      } else if (view.state !== 'open.fresh' && view.state !== 'open.fetching') {
        // Backing off after failures: a read does not cut the back-off (or a Retry-After) short.
        const next = view.timers[0]?.dueAt;
        refresh = { asked: true, done: false, waitedMs: 0, reason: `the practice system failed the last ${(view.context as { failures?: number }).failures ?? 0} fetch(es); next attempt ${next ?? 'soon'}; these are the cached items` };
      } else {
        const t0 = performance.now();
        const done = await refreshed(id, stored?.fetchedAt ?? -1, q.waitMs);
        refresh = { asked: true, done, waitedMs: Math.round(performance.now() - t0) };
        if (!done) refresh.reason = `no fresh line items within ${q.waitMs} ms; these are the cached ones`;
        [view, stored] = await Promise.all([visit(id), readItems(db, id)]);
      }
    }
    const now = clock.now();
    const ctx = view.context as { failures?: number; lastError?: string | null; checkedInAt?: string | null };
    return c.json({
      visitId: id,
      state: view.state,
      items: stored?.items ?? [],
      fetchedAt: iso(stored?.fetchedAt),
      ageMs: stored ? now - stored.fetchedAt : null,
      stale: !stored || now - stored.fetchedAt > maxAgeMs,
      final: stored?.final ?? false,
      checkedInAt: ctx.checkedInAt ?? null,
      failures: ctx.failures ?? 0,
      lastError: ctx.lastError ?? null,
      refresh,
    });
  });

  /**
   * Asks the visit to refresh, and waits (at most `waitMs`) for items fetched after `since`:
   * told at once by this process's effects, or seen in storage when another process fetched.
   */
  async function refreshed(id: string, since: number, waitMs: number): Promise<boolean> {
    let done = false;
    let wake: () => void = () => {};
    const onFetched = (at: number) => {
      if (at > since) (done = true), wake();
    };
    module.fetched.on(id, onFetched);
    try {
      await system.send('visit', id, { type: 'refresh' });
      const deadline = performance.now() + waitMs;
      while (!done) {
        const left = deadline - performance.now();
        if (left <= 0) break;
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, Math.min(left, 100));
        });
        if (!done) done = ((await readItems(db, id))?.fetchedAt ?? -1) > since;
      }
      return done;
    } finally {
      module.fetched.off(id, onFetched);
    }
  }

  return app;
}
