import { randomUUID } from 'node:crypto';
import { Hono, type Context } from 'hono';
import { z } from 'zod';
import { NotAcceptedError } from '../../../actors/errors.ts';
import type { ActorSystem } from '../../../actors/system.ts';
import type { Clock } from '../../../actors/clock.ts';
import { auditTrail } from '../../../storage/audit.ts';
import type { Db } from '../../../storage/db.ts';
import { activeRun, createRun, deleteUnstartedRun } from '../../../storage/insurer/runs.ts';
import { getSync, scheduleInteractive } from '../../../storage/insurer/syncs.ts';
import type { Line } from '../../../storage/line/types.ts';
import { requireRole, type AuthEnv } from '../../auth.ts';
import { ProblemError } from '../../problem.ts';
import { iso, parseQuery, readJson } from '../../request.ts';
import { INSURER_ID, PATIENT_ID, lineId, type InsurerModule } from './module.ts';
import { progress } from './progress.ts';

export interface InsurerRouteDeps {
  db: Db;
  system: ActorSystem;
  clock: Clock;
  line: Line;
  module: InsurerModule;
}

const auditCtx = (c: Context<AuthEnv>) => {
  const p = c.get('principal');
  return { principal: p.subject, role: p.role, reason: c.get('requestId') };
};

/** Insurer sync, pause and single-patient routes (admin), patient reads (admin) and audit (auditor). */
export function insurerRoutes({ db, system, clock, line, module }: InsurerRouteDeps) {
  const app = new Hono<AuthEnv>();
  for (const path of ['/insurers', '/insurers/*']) app.use(path, requireRole('admin'));
  app.use('/patients/:id/audit', requireRole('auditor', 'admin'));
  app.use('/patients/:id', requireRole('admin'));

  function insurer(c: Context<AuthEnv>) {
    const id = c.req.param('id')!;
    if (!INSURER_ID.test(id)) throw new ProblemError(400, 'insurer id must be 1-32 of letters, digits, _ and -', 'id');
    const handle = module.handles.get(id);
    if (!handle) throw new ProblemError(404, `no insurer '${id}' is configured`, 'id');
    return handle;
  }

  function patientId(c: Context<AuthEnv>, name = 'patientId') {
    const id = c.req.param(name)!;
    if (!PATIENT_ID.test(id)) throw new ProblemError(400, `${name} must be 1-64 of letters, digits and ._:-`, name);
    return id;
  }

  app.get('/insurers', async (c) => c.json({ items: await Promise.all([...module.handles.values()].map((h) => progress(db, line, h, clock.now()))) }));

  app.post('/insurers/:id/sync', async (c) => {
    const { settings } = insurer(c);
    // The run is recorded first: the database admits one active run per insurer, so of two
    // concurrent calls exactly one records its run, and the other answers 409 naming it.
    const runId = `run_${randomUUID()}`;
    const { created, active } = await createRun(db, { id: runId, insurerId: settings.id, trigger: 'manual', now: clock.now() });
    if (!created) throw new ProblemError(409, `a sync is already running for ${settings.id}`, 'id', { runId: active.id });
    try {
      await system.sendAndWait('insurer', settings.id, { type: 'sync', runId, trigger: 'manual' }, { idempotencyKey: runId });
    } catch (err) {
      // Withdrawn while nothing was done for it, so it blocks no later sync. (Should the event
      // have been stored after all, the supervisor records the run again when it starts it.)
      await deleteUnstartedRun(db, runId);
      if (!(err instanceof NotAcceptedError)) throw err;
      // The supervisor was already starting another run (the daily one) whose row was not written yet.
      const other = await activeRun(db, settings.id);
      throw new ProblemError(409, `a sync is already running for ${settings.id}`, 'id', { runId: other?.id ?? null });
    }
    return c.json({ runId, state: 'listing' }, 202);
  });

  app.get('/insurers/:id/sync', async (c) => c.json(await progress(db, line, insurer(c), clock.now())));

  const pauseBody = z.strictObject({ reason: z.string().trim().min(1, 'reason is required').max(500) });

  app.post('/insurers/:id/pause', async (c) => {
    const h = insurer(c);
    const parsed = pauseBody.safeParse(await readJson(c));
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new ProblemError(422, issue.message, issue.path.join('.') || 'reason');
    }
    const id = lineId(h.settings.id);
    const state = await line.pause(id, parsed.data.reason, c.get('principal').subject);
    // The request in flight at the pause was given the line before it, but may not have reached
    // the insurer yet (its process can be slow to send): answer once it has let go of the line
    // (its lease ends at the latest), so that nothing starts at the insurer after the answer.
    if (state.inFlight) await letGo(id, state.inFlight.requestId, h.settings.timeoutMs + 5_000);
    return c.json(pauseView(state));
  });

  /** Until `requestId` no longer holds the line (done, aborted, or its lease expired), or `maxMs` passed. */
  async function letGo(id: string, requestId: string, maxMs: number): Promise<void> {
    const deadline = performance.now() + maxMs;
    while ((await line.state(id)).inFlight?.requestId === requestId && performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  app.post('/insurers/:id/resume', async (c) => {
    const h = insurer(c);
    const state = await line.resume(lineId(h.settings.id));
    return c.json(pauseView(state));
  });

  app.post('/insurers/:id/patients/:patientId/sync', async (c) => {
    const { settings } = insurer(c);
    const pid = patientId(c);
    const syncId = `sync_${randomUUID()}`;
    // One statement: the patient must be stored, and the scheduled sync is then recorded.
    const scheduled = await scheduleInteractive(db, { id: syncId, insurerId: settings.id, patientId: pid, requestedBy: c.get('principal').subject }, clock.now());
    if (!scheduled) throw new ProblemError(404, `no patient with that id is stored for ${settings.id}; run a full sync first`, 'patientId');
    // Stored, so it is answered: the actor gets the sync in the background, not behind the
    // journal writes of a bulk run (and again at start-up should this process die first).
    module.dispatch(settings.id, pid, syncId);
    return c.json({ syncId, status: 'scheduled' }, 202);
  });

  app.get('/insurers/:id/patients/:patientId/sync/:syncId', async (c) => {
    const { settings } = insurer(c);
    const pid = patientId(c);
    const sync = await getSync(db, c.req.param('syncId'));
    if (!sync || sync.insurerId !== settings.id || sync.patientId !== pid) throw new ProblemError(404, 'no such sync', 'syncId');
    return c.json({
      syncId: sync.id,
      insurerId: sync.insurerId,
      patientId: sync.patientId,
      kind: sync.kind,
      runId: sync.runId,
      status: sync.status,
      attempts: sync.attempts,
      lastError: sync.lastError,
      createdAt: iso(sync.createdAt),
      updatedAt: iso(sync.updatedAt),
      finishedAt: iso(sync.finishedAt),
    });
  });

  app.get('/patients/:id', async (c) => {
    const pid = patientId(c, 'id');
    const found = await module.patients.read(pid, auditCtx(c), clock.now());
    if (!found.length) throw new ProblemError(404, 'no patient with that id', 'id');
    return c.json({
      id: pid,
      insurers: found.map((p) => ({
        insurerId: p.insurerId,
        firstName: p.firstName,
        lastName: p.lastName,
        birthDate: p.birthDate,
        insured: p.insured,
        recordsSyncedAt: iso(p.recordsSyncedAt),
        careRecords: p.careRecords,
      })),
    });
  });

  const auditQuery = z.object({ after: z.coerce.number().int().min(0).default(0), limit: z.coerce.number().int().min(1).max(1000).default(100) });

  app.get('/patients/:id/audit', async (c) => {
    const pid = patientId(c, 'id');
    const q = parseQuery(c, auditQuery);
    const rows = await auditTrail(db, 'patient', pid, q.after, q.limit);
    const items = rows.map((r) => ({ id: r.id, at: iso(r.at), who: r.principal, role: r.role, action: r.action, insurerId: r.scope, why: r.reason, hash: r.hash }));
    return c.json({ items, next: items.length === q.limit ? items.at(-1)!.id : null });
  });

  return app;
}

function pauseView(s: Awaited<ReturnType<Line['pause']>>) {
  return {
    paused: s.paused,
    changed: s.changed,
    reason: s.reason,
    pausedAt: iso(s.pausedAt),
    pausedBy: s.pausedBy,
    inFlight: s.inFlight ? { requestId: s.inFlight.requestId, what: s.inFlight.what, kind: s.inFlight.kind, node: s.inFlight.node, startedAt: iso(s.inFlight.startedAt) } : null,
  };
}


