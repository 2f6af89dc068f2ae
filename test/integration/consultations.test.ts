import { afterEach, describe, expect, it } from 'vitest';
import { generateNationalId } from '../../integrations/pridok/pid.ts';
import { verifyAuditChain } from '../../storage/audit.ts';
import { consultationHarness, type ConsultationHarness } from '../support/consultations.ts';
import { until } from '../support/insurer.ts';

const json = async (r: Response | Promise<Response>) => (await (await r).json()) as any;
const quiet = (ms = 200) => new Promise((r) => setTimeout(r, ms));
const RESULT = { icpc2: 'R74', outcome: 'helped', notes: 'Sore throat three days; advised rest.', patientJobDescription: 'teacher', policyNumber: 'POL-123' };

describe('referral → booking → consultation', () => {
  let h: ConsultationHarness;
  afterEach(async () => {
    await h?.close();
  });

  /** A referral taken to a consultation waiting in the queue. */
  async function queued(): Promise<{ bookingId: string; consultationId: string; userId: string }> {
    const { res } = await h.refer();
    expect(res.status).toBe(201);
    const { bookingId, userId } = (await res.json()) as any;
    expect((await h.req(`/bookings/${bookingId}/screenings`, { body: { reached: true } })).status).toBe(200);
    const made = await h.req(`/bookings/${bookingId}/consultation`, { method: 'POST' });
    expect(made.status).toBe(201);
    return { bookingId, userId, consultationId: ((await made.json()) as any).consultationId };
  }

  it('runs the whole lifecycle over HTTP: webhook, screening, queue, pickup, start (rooms, link), complete, result, report', async () => {
    h = await consultationHarness();
    const { res, referral } = await h.refer();
    expect(res.status).toBe(201);
    const { bookingId, userId } = (await res.json()) as any;
    expect(bookingId).toMatch(/^bkg_/);
    expect(userId).toMatch(/^usr_/);
    expect(await json(h.req(`/bookings/${bookingId}`))).toMatchObject({ state: 'received', flow: 'referral', userId });

    // Not reached, then reached; the attempts are recorded.
    expect(await json(h.req(`/bookings/${bookingId}/screenings`, { body: { reached: false, note: 'voicemail' } }))).toMatchObject({ state: 'screening.waiting' });
    expect(await json(h.req(`/bookings/${bookingId}/screenings`, { body: { reached: true, note: 'needs a doctor today' } }))).toMatchObject({ state: 'screened' });
    const booking = await json(h.req(`/bookings/${bookingId}`));
    expect(booking.attempts.map((a: any) => a.reached)).toEqual([false, true]);

    const made = await h.req(`/bookings/${bookingId}/consultation`, { method: 'POST' });
    expect(made.status).toBe(201);
    const { consultationId } = (await made.json()) as any;
    expect(await json(h.req(`/bookings/${bookingId}`))).toMatchObject({ state: 'consultation_created', consultationId });

    await h.clock.advance(10 * 60_000);
    const queue = await json(h.req('/consultations?state=ready_for_pickup', { token: 'doctor' }));
    expect(queue.items).toEqual([expect.objectContaining({ id: consultationId, state: 'ready_for_pickup', waitingMs: 10 * 60_000 })]);

    const picked = await json(h.req(`/consultations/${consultationId}/pickup`, { method: 'POST', token: 'doctor' }));
    expect(picked).toMatchObject({ state: 'pending_sp', spId: 'dr-1', assignedAt: new Date(h.clock.now()).toISOString() });
    const started = await json(h.req(`/consultations/${consultationId}/start`, { method: 'POST', token: 'doctor' }));
    expect(started).toMatchObject({ state: 'in_progress', startsAt: new Date(h.clock.now()).toISOString() });
    // Rooms are made and the patient gets the link, once.
    await until(() => json(h.req(`/consultations/${consultationId}`, { token: 'doctor' })), (v) => v.rooms?.linkSent === true);
    const sent = h.comms.stats.messages;
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({ to: referral.Email, consultationId });

    await h.clock.advance(20 * 60_000);
    const done = await h.req(`/consultations/${consultationId}/complete`, { body: { result: RESULT }, token: 'doctor' });
    expect(done.status).toBe(200);
    const view = await json(h.req(`/consultations/${consultationId}`, { token: 'secretary' }));
    expect(view).toMatchObject({ id: consultationId, state: 'completed', spId: 'dr-1', bookingId });
    expect(Date.parse(view.endsAt) - Date.parse(view.startsAt)).toBe(20 * 60_000);
    expect(Date.parse(view.startsAt) - Date.parse(view.createdAt)).toBe(10 * 60_000);

    // The result: the authoring doctor and the auditor read it; every read is audited.
    expect(await json(h.req(`/consultations/${consultationId}/result`, { token: 'doctor' }))).toMatchObject({ ...RESULT, authorSpId: 'dr-1' });
    expect((await h.req(`/consultations/${consultationId}/result`, { token: 'doctor2' })).status).toBe(403);
    expect((await h.req(`/consultations/${consultationId}/result`, { token: 'secretary' })).status).toBe(403);
    expect(await json(h.req(`/consultations/${consultationId}/result`, { token: 'auditor' }))).toMatchObject({ icpc2: 'R74' });
    const reads = await h.t.db.query(`SELECT principal, action FROM audit_log WHERE resource = 'consultation_result' ORDER BY id`);
    expect(reads.rows).toEqual([
      { principal: 'dr-1', action: 'write' },
      { principal: 'dr-1', action: 'read' },
      { principal: 'aud-1', action: 'read' },
    ]);
    expect(await verifyAuditChain(h.t.db)).toBeNull();

    // The report: times and outcome counts, no person.
    const from = new Date(h.clock.now() - 3_600_000).toISOString();
    const to = new Date(h.clock.now() + 1).toISOString();
    const report = await json(h.req(`/reports/consultations?from=${from}&to=${to}`, { token: 'admin' }));
    expect(report).toMatchObject({ consultations: 1, byOutcome: { helped: 1 }, waitingSeconds: { n: 1, p50: 600 }, treatmentSeconds: { n: 1, p50: 1200 } });
    const csv = await (await h.req(`/reports/consultations?from=${from}&to=${to}&format=csv`, { token: 'auditor' })).text();
    expect(csv).toContain('outcome,helped,1');
    expect(csv).toContain('waiting_seconds,p50,600');
    expect(csv).not.toContain(referral.Lastname);
    const metrics = await (await h.req('/metrics', { token: 'admin' })).text();
    expect(metrics).toMatch(/consultation_waiting_seconds_count 1/);
    expect(metrics).toMatch(/consultation_treatment_seconds_count 1/);
  }, 30_000);

  it('refuses a bad signature, a replayed old timestamp, invalid ids and contacts, bad results: each its 4xx, nothing stored', async () => {
    h = await consultationHarness();
    const counts = async () => (await h.t.db.query(`SELECT (SELECT count(*) FROM users)::int AS u, (SELECT count(*) FROM referrals)::int AS r, (SELECT count(*) FROM journal)::int AS j`)).rows[0];
    const nothing = { u: 0, r: 0, j: 0 };
    const status = async (p: Promise<{ res: Response }>) => {
      const { res } = await p;
      return { status: res.status, field: ((await res.json()) as any).field };
    };
    expect(await status(h.refer({}, { secret: 'another-secret-0123456789' }))).toEqual({ status: 401, field: 'X-Signature' });
    // Signed correctly, but six minutes ago: a replay.
    expect(await status(h.refer({}, { timestampSec: Math.floor(h.clock.now() / 1000) - 360 }))).toEqual({ status: 401, field: 'X-Timestamp' });
    const noSig = await h.req('/webhooks/pridok/referrals', { body: { JournalGuid: 'x' }, token: null });
    expect(noSig.status).toBe(401);

    const rnd = () => Math.random();
    const valid = generateNationalId(rnd);
    const flip = (pid: string, i: number) => pid.slice(0, i) + String((Number(pid[i]) + 1) % 10) + pid.slice(i + 1);
    expect(await status(h.refer({ PID: flip(valid, 9) }))).toEqual({ status: 422, field: 'PID' });
    expect(await status(h.refer({ PID: flip(valid, 10) }))).toEqual({ status: 422, field: 'PID' });
    expect(await status(h.refer({ PID: valid.slice(0, 10) }))).toEqual({ status: 422, field: 'PID' });
    expect(await status(h.refer({ Email: 'not-an-address' }))).toEqual({ status: 422, field: 'Email' });
    expect(await status(h.refer({ PhoneNumber: '91234567' }))).toEqual({ status: 422, field: 'PhoneNumber' });
    expect(await counts()).toEqual(nothing);
    // A D-number is a valid PID.
    expect((await h.refer({ PID: generateNationalId(rnd, { dnr: true }) })).res.status).toBe(201);

    // Bad results at completion: 422 naming the field, the consultation unchanged, nothing stored.
    const { consultationId } = await queued();
    await h.req(`/consultations/${consultationId}/pickup`, { method: 'POST', token: 'doctor' });
    await h.req(`/consultations/${consultationId}/start`, { method: 'POST', token: 'doctor' });
    for (const [result, field] of [
      [{ ...RESULT, icpc2: 'Q12' }, 'result.icpc2'],
      [{ ...RESULT, icpc2: 'R7' }, 'result.icpc2'],
      [{ ...RESULT, icpc2: 'Z99' }, 'result.icpc2'],
      [{ ...RESULT, outcome: 'cured' }, 'result.outcome'],
      [{ ...RESULT, patientSsn: flip(valid, 10) }, 'result.patientSsn'],
    ] as const) {
      const r = await h.req(`/consultations/${consultationId}/complete`, { body: { result }, token: 'doctor' });
      expect(r.status).toBe(422);
      expect(((await r.json()) as any).field).toBe(field);
    }
    expect((await json(h.req(`/consultations/${consultationId}`))).state).toBe('in_progress');
    expect((await h.t.db.query('SELECT count(*)::int AS n FROM consultation_results')).rows[0].n).toBe(0);
  }, 30_000);

  it('a duplicate webhook makes one user and one booking; another referral of the same person finds the user', async () => {
    h = await consultationHarness();
    const first = await h.refer();
    const ids = (await first.res.json()) as any;
    const { res } = await h.refer({ ...first.referral });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual(ids);
    const other = await h.refer({ PID: first.referral.PID, JournalGuid: crypto.randomUUID() });
    expect(other.res.status).toBe(201);
    const second = (await other.res.json()) as any;
    expect(second.userId).toBe(ids.userId);
    expect(second.bookingId).not.toBe(ids.bookingId);
    const rows = await h.t.db.query(`SELECT (SELECT count(*) FROM users)::int AS u, (SELECT count(*) FROM referrals)::int AS r`);
    expect(rows.rows[0]).toEqual({ u: 1, r: 2 });
    const user = await h.t.db.query('SELECT referred_by, marketing_opt_out FROM users');
    expect(user.rows[0]).toEqual({ referred_by: 'KK01', marketing_opt_out: true });
  }, 30_000);

  it('a direct booking by a secretary: idempotent with a key, validated, and without an address its set-up shows as failed', async () => {
    h = await consultationHarness();
    const person = { nationalId: generateNationalId(Math.random), firstName: 'Kari', lastName: 'Nordmann' };
    const bad = await h.req('/bookings', { body: { ...person, nationalId: '12345678901' } });
    expect(bad.status).toBe(422);
    expect(((await bad.json()) as any).field).toBe('nationalId');
    expect((await h.req('/bookings', { body: person, token: 'doctor' })).status).toBe(403);
    const first = await h.req('/bookings', { body: person, headers: { 'idempotency-key': 'call-77' } });
    expect(first.status).toBe(201);
    const made = (await first.json()) as any;
    expect(await json(h.req('/bookings', { body: person, headers: { 'idempotency-key': 'call-77' } }))).toEqual(made);
    expect(await json(h.req(`/bookings/${made.bookingId}`))).toMatchObject({ state: 'received', flow: 'direct', userId: made.userId });
    // The webhook's field names are taken too; the same person is the same user.
    const alias = await json(h.req('/bookings', { body: { PID: person.nationalId, Firstname: 'Kari', Lastname: 'Nordmann', Email: 'kari@example.no' } }));
    expect(alias.userId).toBe(made.userId);
    // No address at the first booking, one given at the second: the link goes to it.
    await h.req(`/bookings/${made.bookingId}/screenings`, { body: { reached: true } });
    const { consultationId } = await json(h.req(`/bookings/${made.bookingId}/consultation`, { method: 'POST' }));
    await h.req(`/consultations/${consultationId}/pickup`, { method: 'POST', token: 'doctor' });
    await h.req(`/consultations/${consultationId}/start`, { method: 'POST', token: 'doctor' });
    await until(() => json(h.req(`/consultations/${consultationId}`)), (v) => v.rooms?.linkSent === true);
    expect(h.comms.stats.messages.map((m) => m.to)).toEqual(['kari@example.no']);
    // A person with no address at all: the set-up cannot succeed and says so.
    const nobody = await json(h.req('/bookings', { body: { nationalId: generateNationalId(Math.random), firstName: 'Ola', lastName: 'Nordmann' } }));
    await h.req(`/bookings/${nobody.bookingId}/screenings`, { body: { reached: true } });
    const second = await json(h.req(`/bookings/${nobody.bookingId}/consultation`, { method: 'POST' }));
    await h.req(`/consultations/${second.consultationId}/pickup`, { method: 'POST', token: 'doctor' });
    await h.req(`/consultations/${second.consultationId}/start`, { method: 'POST', token: 'doctor' });
    await until(() => h.t.db.query(`SELECT state FROM actors WHERE key = $1`, [second.consultationId]), (r) => r.rows[0]?.state === 'in_progress.setup_failed');
    expect((await json(h.req(`/consultations/${second.consultationId}`))).state).toBe('in_progress');
  }, 30_000);

  it('two identical webhooks at once: one 201, one 200, one user, one booking', async () => {
    h = await consultationHarness();
    const first = await h.refer();
    const ids = (await first.res.json()) as any;
    const fresh = { ...first.referral, JournalGuid: crypto.randomUUID(), PID: generateNationalId(Math.random) };
    const [a, b] = await Promise.all([h.refer(fresh), h.refer(fresh)]);
    expect([a.res.status, b.res.status].sort()).toEqual([200, 201]);
    const [ja, jb] = [(await a.res.json()) as any, (await b.res.json()) as any];
    expect(ja).toEqual(jb);
    expect(ja.userId).not.toBe(ids.userId);
    const rows = await h.t.db.query(`SELECT (SELECT count(*) FROM users)::int AS u, (SELECT count(*) FROM referrals)::int AS r`);
    expect(rows.rows[0]).toEqual({ u: 2, r: 2 });
  }, 30_000);

  it('a booking not reached: a follow-up falls due; not reached within the expiry period: expired (timers survive a restart)', async () => {
    h = await consultationHarness();
    const { res } = await h.refer();
    const { bookingId } = (await res.json()) as any;
    // Here: follow-up after 60 s, expiry 10 minutes after creation.
    await h.clock.advance(60_000);
    expect(await json(h.req(`/bookings/${bookingId}/screenings`, { body: { reached: false } }))).toMatchObject({ state: 'screening.waiting' });
    await h.clock.advance(60_000 - 1);
    expect((await json(h.req(`/bookings/${bookingId}`))).state).toBe('screening.waiting');
    await h.restart();
    await h.clock.advance(1);
    await until(() => json(h.req(`/bookings/${bookingId}`)), (b) => b.state === 'screening.follow_up_due' && b.followUpDue === true);
    expect((await json(h.req('/bookings?state=screening.follow_up_due'))).items.map((b: any) => b.bookingId)).toEqual([bookingId]);
    // Ten minutes from creation (not from the last call): expired; it takes no more calls.
    await h.clock.advance(600_000 - 120_000 - 1);
    expect((await json(h.req(`/bookings/${bookingId}`))).state).toBe('screening.follow_up_due');
    await h.clock.advance(1);
    await until(() => json(h.req(`/bookings/${bookingId}`)), (b) => b.state === 'expired');
    const late = await h.req(`/bookings/${bookingId}/screenings`, { body: { reached: true } });
    expect(late.status).toBe(409);
    expect(((await late.json()) as any).state).toBe('expired');
    expect((await h.req(`/bookings/${bookingId}/consultation`, { method: 'POST' })).status).toBe(409);
  }, 30_000);

  it('refuses every transition its state does not take (409 naming the state) and every role violation (403)', async () => {
    h = await consultationHarness();
    const { consultationId, bookingId } = await queued();
    const post = (path: string, token: any, body: unknown = {}) => h.req(`/consultations/${consultationId}/${path}`, { body, token });
    const conflict = async (p: Promise<Response>, state: string) => {
      const r = await p;
      expect(r.status).toBe(409);
      expect(((await r.json()) as any).state).toBe(state);
    };
    // Roles.
    expect((await post('pickup', 'secretary')).status).toBe(403);
    expect((await post('assign', 'doctor', { spId: 'dr-1' })).status).toBe(403);
    expect((await post('start', 'secretary')).status).toBe(403);
    expect((await post('complete', 'secretary', { result: RESULT })).status).toBe(403);
    expect((await h.req('/bookings', { token: 'doctor' })).status).toBe(403);
    expect((await h.req(`/bookings/${bookingId}/screenings`, { body: { reached: true }, token: 'doctor' })).status).toBe(403);
    expect((await h.req('/reports/consultations?from=2026-01-01T00:00:00Z&to=2026-12-31T00:00:00Z', { token: 'doctor' })).status).toBe(403);
    expect((await h.req('/consultations', { token: 'integration' })).status).toBe(403);
    expect((await h.req('/consultations', { token: null })).status).toBe(401);
    // ready_for_pickup: start, complete and release are not taken.
    await conflict(post('release', 'secretary'), 'ready_for_pickup');
    await conflict(post('start', 'doctor'), 'ready_for_pickup');
    // Asked again (a lost answer): the same consultation, not a second one.
    expect(await json(h.req(`/bookings/${bookingId}/consultation`, { method: 'POST' }))).toEqual({ consultationId });
    // pending_sp (assigned by the secretary to dr-2): dr-1 may not start it; pickup is not taken.
    expect((await json(post('assign', 'secretary', { spId: 'dr-2' })))).toMatchObject({ state: 'pending_sp', spId: 'dr-2' });
    expect((await post('start', 'doctor')).status).toBe(403);
    await conflict(post('pickup', 'doctor'), 'pending_sp');
    await conflict(post('assign', 'secretary', { spId: 'dr-1' }), 'pending_sp');
    // Released back to the queue, picked up by dr-1, started: pickup and start are not taken.
    expect(await json(post('release', 'doctor2'))).toMatchObject({ state: 'ready_for_pickup', spId: null });
    await post('pickup', 'doctor');
    await post('start', 'doctor');
    await conflict(post('start', 'doctor'), 'in_progress');
    await conflict(post('release', 'doctor'), 'in_progress');
    // A doctor completes only what is assigned to them.
    expect((await post('complete', 'doctor2', { result: RESULT })).status).toBe(403);
    expect((await post('complete', 'doctor', { result: RESULT })).status).toBe(200);
    await conflict(post('cancel', 'secretary', { reason: 'too late' }), 'completed');
    await conflict(post('complete', 'doctor', { result: RESULT }), 'completed');

    // Cancel from an open state, with a reason.
    const other = await queued();
    expect((await h.req(`/consultations/${other.consultationId}/cancel`, { body: {} })).status).toBe(422);
    expect(await json(h.req(`/consultations/${other.consultationId}/cancel`, { body: { reason: 'patient recovered' } }))).toMatchObject({ state: 'cancelled' });
    await conflict(h.req(`/consultations/${other.consultationId}/pickup`, { method: 'POST', token: 'doctor' }), 'cancelled');
  }, 30_000);

  it('stores no plaintext national id, name, ICPC-2 code or notes', async () => {
    h = await consultationHarness();
    const { res, referral } = await h.refer();
    const { bookingId } = (await res.json()) as any;
    await h.req(`/bookings/${bookingId}/screenings`, { body: { reached: true, note: 'mother called back' } });
    const { consultationId } = (await json(h.req(`/bookings/${bookingId}/consultation`, { method: 'POST' }))) as any;
    await h.req(`/consultations/${consultationId}/pickup`, { method: 'POST', token: 'doctor' });
    await h.req(`/consultations/${consultationId}/start`, { method: 'POST', token: 'doctor' });
    const ssn = generateNationalId(Math.random);
    expect((await h.req(`/consultations/${consultationId}/complete`, { body: { result: { ...RESULT, patientSsn: ssn } }, token: 'doctor' })).status).toBe(200);
    // Free-text reasons of a cancel and a decline are sealed too.
    const other = await queued();
    await h.req(`/consultations/${other.consultationId}/cancel`, { body: { reason: 'Patient admitted to hospital overnight' } });
    const third = (await (await h.refer()).res.json()) as any;
    await h.req(`/bookings/${third.bookingId}/decline`, { body: { reason: 'Prefers her own general practitioner' } });
    const tables = ['users', 'referrals', 'consultation_results', 'screening_notes', 'actors', 'journal', 'transitions', 'timers', 'audit_log'];
    const raw = JSON.stringify(await Promise.all(tables.map(async (t) => (await h.t.db.query(`SELECT * FROM ${t}`)).rows)));
    expect(raw).toContain('v1.k1.');
    // Sealed values are base64url and may hold any short string by chance: look outside them.
    const dump = raw.replace(/v1\.k1\.[A-Za-z0-9_.-]+/g, '');
    for (const secret of [referral.PID, ssn, referral.Lastname, referral.Email, referral.PhoneNumber, RESULT.notes, 'mother called back', RESULT.policyNumber, 'admitted to hospital', 'general practitioner', 'sore throat']) {
      expect(dump.toLowerCase()).not.toContain(secret.toLowerCase());
    }
    expect(dump).not.toMatch(/"R74"|icpc2/);
  }, 30_000);

  it('comms failing: the start completes once it recovers, and the link is sent exactly once', async () => {
    h = await consultationHarness();
    const { consultationId } = await queued();
    await h.req(`/consultations/${consultationId}/pickup`, { method: 'POST', token: 'doctor' });
    h.comms.configure({ down: true });
    expect((await json(h.req(`/consultations/${consultationId}/start`, { method: 'POST', token: 'doctor' }))).state).toBe('in_progress');
    await until(() => h.t.db.query(`SELECT state FROM actors WHERE key = $1`, [consultationId]), (r) => r.rows[0]?.state === 'in_progress.retrying');
    expect(h.comms.stats.messages).toHaveLength(0);
    // Up, but every answer is lost (slower than our timeout): the work is done, we do not know it.
    h.comms.configure({ down: false, latencyMs: 1_500 });
    await h.clock.advance(1_000);
    await until(async () => h.comms.stats.rooms.size, (n) => n === 1, 15_000);
    await until(() => h.t.db.query(`SELECT state FROM actors WHERE key = $1`, [consultationId]), (r) => r.rows[0]?.state === 'in_progress.retrying', 15_000);
    // Answers arrive again: the retry, with the same keys, gets the first answers back; rooms and mail were made once.
    h.comms.configure({ down: false, failureRate: 0, latencyMs: 0 });
    await h.clock.advance(4_000);
    await until(() => json(h.req(`/consultations/${consultationId}`, { token: 'doctor' })), (v) => v.rooms?.linkSent === true);
    await h.clock.advance(60_000);
    await quiet();
    expect(h.comms.stats.messages).toHaveLength(1);
    expect(h.comms.stats.rooms.size).toBe(2);
    // The chat room whose answer was lost was asked for again with its key, and answered from the first time.
    expect(h.comms.stats.calls.filter((c) => c.replayed).length).toBeGreaterThanOrEqual(1);
  }, 30_000);

  it('a restart mid-lifecycle loses nothing, and the SLA alert fires after a restart at its original time', async () => {
    h = await consultationHarness({ slaMs: 30 * 60_000 });
    const { consultationId } = await queued();
    await h.clock.advance(20 * 60_000);
    await h.restart();
    expect((await json(h.req(`/consultations/${consultationId}`))).state).toBe('ready_for_pickup');
    await h.clock.advance(10 * 60_000 - 1);
    expect((await json(h.req(`/consultations/${consultationId}`))).slaBreached).toBe(false);
    expect(h.module.stats.slaAlerts).toBe(0);
    await h.clock.advance(1);
    await until(() => json(h.req(`/consultations/${consultationId}`)), (v) => v.slaBreached === true);
    expect(h.module.stats.slaAlerts).toBe(1);
    // The lifecycle goes on after the restart.
    await h.req(`/consultations/${consultationId}/pickup`, { method: 'POST', token: 'doctor' });
    await h.restart();
    expect(await json(h.req(`/consultations/${consultationId}/start`, { method: 'POST', token: 'doctor' }))).toMatchObject({ state: 'in_progress' });
    await until(() => json(h.req(`/consultations/${consultationId}`)), (v) => v.rooms?.linkSent === true);
    expect(h.comms.stats.messages).toHaveLength(1);
  }, 30_000);
});
