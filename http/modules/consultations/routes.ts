import { createHash, randomUUID } from 'node:crypto';
import { Hono, type Context } from 'hono';
import { z } from 'zod';
import type { Clock } from '../../../actors/clock.ts';
import { NotAcceptedError, NotFoundError } from '../../../actors/errors.ts';
import type { ActorSystem } from '../../../actors/system.ts';
import type { ActorView } from '../../../actors/types.ts';
import { checkNationalId } from '../../../integrations/pridok/pid.ts';
import { E164 } from '../../../integrations/pridok/schemas.ts';
import { OUTCOMES } from '../../../machines/consultation.ts';
import { addScreeningNote, listConsultations } from '../../../storage/consultations/records.ts';
import type { Db } from '../../../storage/db.ts';
import { requireRole, type AuthEnv } from '../../auth.ts';
import { ProblemError } from '../../problem.ts';
import { iso, parseBody, parseQuery } from '../../request.ts';
import { checkIcpc2 } from './icpc2.ts';
import { BOOKING_ID, CONSULTATION_ID, SP_ID, type ConsultationModule } from './module.ts';

export interface ConsultationRouteDeps {
  db: Db;
  system: ActorSystem;
  clock: Clock;
  module: ConsultationModule;
}

const nationalId = z.string().superRefine((v, ctx) => {
  const r = checkNationalId(v);
  if (!r.ok) ctx.addIssue({ code: 'custom', message: r.reason });
});
/** The record system's field names are taken too (`PID`, `Firstname`, …), as aliases. */
const ALIASES: Record<string, string> = { PID: 'nationalId', Firstname: 'firstName', Lastname: 'lastName', Email: 'email', PhoneNumber: 'phone' };
const directBooking = z.preprocess(
  (v) => (v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).map(([k, x]) => [ALIASES[k] ?? k, x])) : v),
  z.strictObject({
    nationalId,
    firstName: z.string().trim().min(1).max(100),
    lastName: z.string().trim().min(1).max(100),
    // Without an address the consultation link cannot be mailed: its set-up then shows
    // `in_progress.setup_failed` and staff reach the patient another way.
    email: z.email().optional(),
    phone: E164.optional(),
  }),
);
const screening = z.strictObject({ reached: z.boolean({ error: 'reached must be true or false' }), note: z.string().max(5_000).optional() });
const declineBody = z.strictObject({ reason: z.string().trim().min(1).max(500) });
const assignBody = z.strictObject({ spId: z.string().regex(SP_ID, 'spId must be 1-100 of letters, digits and ._:@-') });
const cancelBody = z.strictObject({ reason: z.string().trim().min(1, 'reason is required').max(500) });
const resultSchema = z.strictObject({
  icpc2: z.string().superRefine((v, ctx) => {
    const r = checkIcpc2(v);
    if (!r.ok) ctx.addIssue({ code: 'custom', message: r.reason });
  }),
  outcome: z.enum(OUTCOMES),
  patientSsn: nationalId.optional(),
  patientJobDescription: z.string().max(500).optional(),
  authorSpId: z.string().regex(SP_ID).optional(),
  notes: z.string().max(20_000).optional(),
  policyNumber: z.string().max(100).optional(),
});
const completeBody = z.strictObject({ result: resultSchema });
const listQuery = z.strictObject({ state: z.string().regex(/^[a-z_]+(\.[a-z_]+)*$/, 'state is a state name such as screened or screening.follow_up_due').max(64).optional(), limit: z.coerce.number().int().min(1).max(500).default(100) });

/** A UUID-shaped digest of `text` (ids derived from a client's idempotency key). */
function uuidFrom(text: string): string {
  const h = createHash('sha256').update(text).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

type Ctx = Record<string, unknown>;

/**
 * Bookings (secretary), the consultation queue and its lifecycle (doctor, secretary), results
 * (the authoring doctor and the auditor). Every route checks its role; a lifecycle event the
 * consultation's state does not take is a 409 naming the state.
 */
export function consultationRoutes({ db, system, clock, module }: ConsultationRouteDeps) {
  const app = new Hono<AuthEnv>();
  const staff = requireRole('secretary', 'admin');
  const anyClinical = requireRole('secretary', 'doctor', 'admin');
  const audit = (c: Context<AuthEnv>) => ({ principal: c.get('principal').subject, role: c.get('principal').role, reason: c.get('requestId') });

  async function actor(type: 'booking' | 'consultation', id: string): Promise<ActorView> {
    const pattern = type === 'booking' ? BOOKING_ID : CONSULTATION_ID;
    if (!pattern.test(id)) throw new ProblemError(400, `${type} id is not one this API handed out`, 'id');
    try {
      const view = await system.get(type, id);
      if (view.status === 'pending' || view.state === 'new') throw new NotFoundError('not created');
      return view;
    } catch (err) {
      if (err instanceof NotFoundError) throw new ProblemError(404, `no ${type} with that id`, 'id');
      throw err;
    }
  }

  /** Sends a lifecycle event and waits for it: the machine's refusal is a 409 naming the state. */
  async function lifecycle(type: 'booking' | 'consultation', id: string, event: Record<string, unknown>) {
    try {
      return (await system.sendAndWait(type, id, event)).snapshot;
    } catch (err) {
      if (!(err instanceof NotAcceptedError) || type !== 'consultation') throw err;
      // A consultation's states are the five top-level ones; its set-up steps are inside `in_progress`.
      const state = err.state.split('.')[0]!;
      throw new ProblemError(409, `'${err.eventType}' is not allowed while the consultation is ${state}`, 'type', { state, seq: err.seq });
    }
  }

  // Bookings.
  app.post('/bookings', staff, async (c) => {
    const b = await parseBody(c, directBooking, 422);
    const now = clock.now();
    const user = await module.users.fetchOrCreate({ nationalId: b.nationalId, firstName: b.firstName, lastName: b.lastName, email: b.email, phone: b.phone }, audit(c), now);
    // With an Idempotency-Key, a retried request names the same booking (and creates it once).
    const key = c.req.header('idempotency-key');
    const bookingId = key ? `bkg_${uuidFrom(`${c.get('principal').subject}\u0000${key}`)}` : `bkg_${randomUUID()}`;
    await system.sendAndWait('booking', bookingId, { type: 'create', flow: 'direct', userId: user.id, insurer: null, at: now }, { idempotencyKey: 'create' });
    return c.json({ bookingId, userId: user.id }, 201);
  });

  app.get('/bookings', staff, async (c) => {
    const q = parseQuery(c, listQuery);
    const rows = await system.list('booking', { ...(q.state ? { state: q.state } : {}), limit: q.limit });
    return c.json({ items: rows.map((r) => ({ bookingId: r.key, state: r.state, updatedAt: r.updated_at })) });
  });

  app.get('/bookings/:id', staff, async (c) => {
    const v = await actor('booking', c.req.param('id'));
    const ctx = v.context as Ctx;
    return c.json({ id: v.key, state: v.state, flow: ctx.flow, userId: ctx.userId, createdAt: iso(ctx.createdAt as number), attempts: ctx.attempts, consultationId: ctx.consultationId, followUpDue: ctx.followUpDue });
  });

  app.post('/bookings/:id/screenings', requireRole('secretary'), async (c) => {
    const id = c.req.param('id');
    await actor('booking', id);
    const b = await parseBody(c, screening, 422);
    const now = clock.now();
    const by = c.get('principal').subject;
    const snap = await lifecycle('booking', id, { type: 'screened', reached: b.reached, at: now, by });
    if (b.note) await addScreeningNote(db, module.users.cipher, id, now, by, b.note);
    return c.json({ bookingId: id, state: snap.state });
  });

  app.post('/bookings/:id/decline', requireRole('secretary'), async (c) => {
    const id = c.req.param('id');
    await actor('booking', id);
    const b = await parseBody(c, declineBody, 422);
    const snap = await lifecycle('booking', id, { type: 'decline', reason: module.users.cipher.encrypt(b.reason, `booking/${id}/decline`), at: clock.now() });
    return c.json({ bookingId: id, state: snap.state });
  });

  app.post('/bookings/:id/consultation', requireRole('secretary'), async (c) => {
    const id = c.req.param('id');
    const booking = await actor('booking', id);
    const ctx = booking.context as Ctx;
    // Derived from the booking, so a retried request names the same consultation.
    const consultationId = `con_${id.slice(4)}`;
    const retried = booking.state === 'consultation_created' && ctx.consultationId === consultationId;
    if (booking.state !== 'screened' && !retried) {
      throw new ProblemError(409, `booking is ${booking.state}: a consultation is created once the patient was reached`, 'state', { state: booking.state });
    }
    const now = clock.now();
    // The booking moves first (a decline racing this one wins or loses there), then the
    // consultation is created, keyed: a retry after a lost answer creates it once.
    if (!retried) await lifecycle('booking', id, { type: 'createConsultation', consultationId, at: now });
    await system.sendAndWait('consultation', consultationId, { type: 'create', bookingId: id, userId: ctx.userId, at: now, slaDueAt: now + module.timing.slaMs }, { idempotencyKey: 'create' });
    return c.json({ consultationId }, 201);
  });

  // Consultations.
  app.get('/consultations', anyClinical, async (c) => {
    const q = parseQuery(c, listQuery);
    const now = clock.now();
    const rows = await listConsultations(db, q.state ?? 'ready_for_pickup', q.limit);
    return c.json({
      items: rows.map((r) => ({ id: r.consultationId, state: r.state.split('.')[0], createdAt: iso(r.createdAt), waitingMs: r.createdAt === null ? null : now - r.createdAt, bookingId: r.bookingId, spId: r.spId })),
    });
  });

  const view = (v: ActorView) => {
    const ctx = v.context as Ctx;
    return {
      id: v.key,
      state: v.state.split('.')[0],
      createdAt: iso(ctx.createdAt as number | null),
      assignedAt: iso(ctx.assignedAt as number | null),
      startsAt: iso(ctx.startsAt as number | null),
      endsAt: iso(ctx.endsAt as number | null),
      spId: ctx.spId ?? null,
      bookingId: ctx.bookingId ?? null,
      slaBreached: ctx.slaBreachedAt !== null && ctx.slaBreachedAt !== undefined,
      rooms: v.state.startsWith('in_progress') || v.state === 'completed' ? { chat: ctx.chat ?? null, video: ctx.video ?? null, linkSent: ctx.linkMessageId !== null } : null,
    };
  };

  app.get('/consultations/:id', requireRole('secretary', 'doctor', 'admin', 'auditor'), async (c) => c.json(view(await actor('consultation', c.req.param('id')))));

  /**
   * The consultation; 403 unless the caller is the doctor it is assigned to. In a state where
   * nobody is assigned (or that takes no more events) the machine answers instead: 409 naming it.
   * The machine checks the doctor again with the event itself (a release and a pick-up by another
   * doctor may come between).
   */
  async function mine(c: Context<AuthEnv>) {
    const v = await actor('consultation', c.req.param('id')!);
    const assigned = v.state === 'pending_sp' || v.state.startsWith('in_progress');
    const sp = (v.context as Ctx).spId;
    if (assigned && sp !== c.get('principal').subject) throw new ProblemError(403, 'this consultation is assigned to another doctor', 'Authorization');
    return v;
  }

  app.post('/consultations/:id/pickup', requireRole('doctor'), async (c) => {
    const id = c.req.param('id');
    await actor('consultation', id);
    return c.json(view(await lifecycle('consultation', id, { type: 'pickup', spId: c.get('principal').subject, at: clock.now() })));
  });

  app.post('/consultations/:id/assign', requireRole('secretary'), async (c) => {
    const id = c.req.param('id');
    await actor('consultation', id);
    const b = await parseBody(c, assignBody, 422);
    return c.json(view(await lifecycle('consultation', id, { type: 'assign', spId: b.spId, at: clock.now() })));
  });

  app.post('/consultations/:id/release', requireRole('doctor', 'secretary'), async (c) => {
    const id = c.req.param('id');
    if (c.get('principal').role === 'doctor') await mine(c);
    else await actor('consultation', id);
    return c.json(view(await lifecycle('consultation', id, { type: 'release', at: clock.now() })));
  });

  app.post('/consultations/:id/start', requireRole('doctor'), async (c) => {
    const id = c.req.param('id');
    await mine(c);
    const started = await lifecycle('consultation', id, { type: 'start', spId: c.get('principal').subject, at: clock.now() });
    const ctx = started.context as Ctx;
    module.metrics.waiting.observe(((ctx.startsAt as number) - (ctx.createdAt as number)) / 1000);
    return c.json(view(started));
  });

  app.post('/consultations/:id/complete', requireRole('doctor'), async (c) => {
    const id = c.req.param('id');
    const v = await mine(c);
    const b = await parseBody(c, completeBody, 422);
    const author = c.get('principal').subject;
    if (b.result.authorSpId !== undefined && b.result.authorSpId !== author) throw new ProblemError(422, 'result.authorSpId must be the completing doctor', 'result.authorSpId');
    if (!v.state.startsWith('in_progress')) {
      throw new ProblemError(409, `consultation is ${v.state.split('.')[0]}: only one in progress can be completed`, 'type', { state: v.state.split('.')[0] });
    }
    // The result is stored (sealed, audited) before the state moves, so a completed
    // consultation always has its result; a refused completion (a cancel got there first)
    // takes its result away again.
    await module.results.store(id, { ...b.result, authorSpId: author }, audit(c), clock.now());
    let done;
    try {
      done = await lifecycle('consultation', id, { type: 'complete', spId: author, outcome: b.result.outcome, at: clock.now() });
    } catch (err) {
      if ((await system.get('consultation', id)).state !== 'completed') await module.results.remove(id);
      throw err;
    }
    const ctx = done.context as Ctx;
    module.metrics.treatment.observe(((ctx.endsAt as number) - (ctx.startsAt as number)) / 1000);
    return c.json(view(done));
  });

  app.post('/consultations/:id/cancel', requireRole('secretary', 'doctor', 'admin'), async (c) => {
    const id = c.req.param('id');
    await actor('consultation', id);
    const b = await parseBody(c, cancelBody, 422);
    const sealed = module.users.cipher.encrypt(b.reason, `consultation/${id}/cancel`);
    return c.json(view(await lifecycle('consultation', id, { type: 'cancel', reason: sealed, at: clock.now() })));
  });

  app.get('/consultations/:id/result', requireRole('doctor', 'auditor'), async (c) => {
    const id = c.req.param('id');
    const v = await actor('consultation', id);
    if (v.state !== 'completed') throw new ProblemError(404, `consultation is ${v.state.split('.')[0]}: it has no result yet`, 'id');
    const author = await module.results.author(id);
    const p = c.get('principal');
    if (p.role === 'doctor' && p.subject !== author) throw new ProblemError(403, 'only the authoring doctor (or an auditor) may read this result', 'Authorization');
    const result = await module.results.read(id, audit(c), clock.now());
    if (!result) throw new ProblemError(404, 'no result stored', 'id');
    return c.json({ consultationId: id, ...result });
  });

  return app;
}
