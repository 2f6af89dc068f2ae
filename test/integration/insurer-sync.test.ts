import { afterEach, describe, expect, it } from 'vitest';
import { verifyAuditChain } from '../../storage/audit.ts';
import { AUDITOR, insurerHarness, lineKinds, until, type InsurerHarness } from '../support/insurer.ts';

const progressOf = async (h: InsurerHarness) => (await (await h.req('/insurers/KK01/sync')).json()) as any;
const finished = (p: any) => p.runState === 'completed' || p.runState === 'failed';

describe.each(lineKinds)('insurer patient sync (simulator at 80% failures), line on %s', (lineOn) => {
  let h: InsurerHarness;
  afterEach(async () => {
    await h?.close();
  });

  it('syncs 1,000 patients: records stored, 410s compensated, removed patients deleted, counts add up, one request at a time', async () => {
    h = await insurerHarness({ patientCount: 1_000, pageSize: 200, failureRate: 0.8, latencyMs: 0, gone410Share: 0.05, seed: 7 }, { lineOn });
    const start = await h.req('/insurers/KK01/sync', { method: 'POST' });
    expect(start.status).toBe(202);
    const { runId } = (await start.json()) as any;
    const again = await h.req('/insurers/KK01/sync', { method: 'POST' });
    expect(again.status).toBe(409);
    expect(((await again.json()) as any).runId).toBe(runId);

    const p = await until(() => progressOf(h), finished, 120_000);
    expect(p).toMatchObject({ runId, state: 'completed', counts: { listed: 1_000, new: 1_000, removed: 0, pending: 0, retrying: 0, failed: 0 } });
    const gone = (await h.sim.patientIds()).filter((id: string) => h.sim.isGone(id));
    expect(gone.length).toBeGreaterThan(10);
    expect(p.counts.cancelled_410).toBe(gone.length);
    expect(p.counts.synced + p.counts.cancelled_410).toBe(1_000);
    expect(p.requests.made).toBeGreaterThan(p.requests.failed);
    expect(h.sim.stats.maxInFlight).toBe(1);
    expect(h.sim.overlapTime()).toBe(0);

    const db = h.t.db;
    const stored = await db.query(
      `SELECT count(*) FILTER (WHERE insured AND records_synced_at IS NOT NULL)::int AS synced,
              count(*) FILTER (WHERE NOT insured)::int AS uninsured,
              (SELECT count(DISTINCT patient_id)::int FROM care_records) AS with_records,
              (SELECT count(*)::int FROM care_records c JOIN insurer_patients p USING (insurer_id, patient_id) WHERE NOT p.insured) AS records_of_uninsured
         FROM insurer_patients`,
    );
    expect(stored.rows[0]).toEqual({ synced: 1_000 - gone.length, uninsured: gone.length, with_records: 1_000 - gone.length, records_of_uninsured: 0 });
    // Names and birth dates are not stored in the clear.
    const raw = await db.query(`SELECT first_name, birth_date FROM insurer_patients LIMIT 1`);
    expect(raw.rows[0].first_name).toMatch(/^v1\./);
    expect(raw.rows[0].birth_date).toMatch(/^v1\./);

    // A second run after the insurer dropped some patients: they are deleted (mark and sweep).
    const dropped = (await h.sim.patientIds()).slice(0, 25);
    h.sim.removePatients(dropped);
    const second = (await (await h.req('/insurers/KK01/sync', { method: 'POST' })).json()) as any;
    const p2 = await until(() => progressOf(h), (v) => v.runId === second.runId && finished(v), 120_000);
    expect(p2).toMatchObject({ state: 'completed', counts: { listed: 975, new: 0, removed: 25 } });
    const left = await db.query(`SELECT count(*)::int AS n FROM insurer_patients WHERE patient_id = ANY($1)`, [dropped]);
    expect(left.rows[0].n).toBe(0);
    expect(h.sim.stats.maxInFlight).toBe(1);

    // Every write and delete of patient data has its audit record, chained.
    const audit = await db.query(`SELECT action, count(*)::int AS n FROM audit_log GROUP BY action`);
    const byAction = Object.fromEntries(audit.rows.map((r) => [r.action, r.n]));
    expect(byAction.delete).toBe(gone.length + 25);
    expect(byAction.write).toBe(1_000 + 975 + (1_000 - gone.length));
    expect(await verifyAuditChain(db)).toBeNull();
    await expect(db.query(`UPDATE audit_log SET role = 'x'`)).rejects.toThrow(/append-only/);
  }, 240_000);

  it('sends nothing after a pause until resume, reports the request in flight, then completes', async () => {
    h = await insurerHarness({ patientCount: 300, pageSize: 100, failureRate: 0.8, latencyMs: 5, seed: 3 }, { lineOn });
    await h.req('/insurers/KK01/sync', { method: 'POST' });
    await until(() => progressOf(h), (p) => p.requests.made > 50);
    const pause = await h.req('/insurers/KK01/pause', { body: { reason: 'insurer phoned' } });
    const pausedAt = performance.timeOrigin + performance.now();
    expect(pause.status).toBe(200);
    const body = (await pause.json()) as any;
    expect(body).toMatchObject({ paused: true, changed: true, reason: 'insurer phoned', pausedBy: 'ops-1' });
    // Pausing again changes nothing.
    expect(await (await h.req('/insurers/KK01/pause', { body: { reason: 'again' } })).json()).toMatchObject({ paused: true, changed: false, reason: 'insurer phoned' });
    expect((await progressOf(h)).state).toBe('paused');

    await new Promise((r) => setTimeout(r, 1_000)); // the quiet period being checked
    const during = h.sim.stats.requests.filter((r) => r.start > pausedAt);
    expect(during).toEqual([]);
    const inFlightAtPause = h.sim.stats.requests.filter((r) => r.start <= pausedAt && (r.end ?? Infinity) > pausedAt);
    expect(inFlightAtPause.length).toBeLessThanOrEqual(1);
    if (inFlightAtPause.length) expect(body.inFlight).not.toBeNull();

    const resume = await h.req('/insurers/KK01/resume', { method: 'POST' });
    expect(await resume.json()).toMatchObject({ paused: false, changed: true });
    expect(await (await h.req('/insurers/KK01/resume', { method: 'POST' })).json()).toMatchObject({ paused: false, changed: false });
    const p = await until(() => progressOf(h), finished, 120_000);
    expect(p.state).toBe('completed');
    expect(h.sim.stats.maxInFlight).toBe(1);
  }, 240_000);

  it('answers a single-patient sync at once, has it stored, and finishes it before the bulk run', async () => {
    h = await insurerHarness({ patientCount: 600, pageSize: 300, failureRate: 0.8, latencyMs: 2, gone410Share: 0, seed: 5 }, { lineOn });
    await h.req('/insurers/KK01/sync', { method: 'POST' });
    await until(() => progressOf(h), (p) => p.counts.listed >= 300);
    const t0 = performance.now();
    const res = await h.req('/insurers/KK01/patients/P-000250/sync', { method: 'POST' });
    const ackMs = performance.now() - t0;
    expect(res.status).toBe(202);
    expect(ackMs).toBeLessThan(1_000);
    const { syncId, status } = (await res.json()) as any;
    expect(status).toBe('scheduled');
    const row = await h.t.db.query('SELECT status, kind FROM patient_syncs WHERE id = $1', [syncId]);
    expect(row.rows[0]).toMatchObject({ kind: 'interactive' });

    const done = await until(
      async () => (await (await h.req(`/insurers/KK01/patients/P-000250/sync/${syncId}`)).json()) as any,
      (s) => s.status === 'done' || s.status === 'failed',
      60_000,
      20,
    );
    expect(done).toMatchObject({ status: 'done', kind: 'interactive' });
    expect(done.attempts).toBeGreaterThanOrEqual(1);
    const p = await progressOf(h);
    expect(finished(p)).toBe(false);
    await until(() => progressOf(h), finished, 120_000);
  }, 240_000);

  it('starts one run for two concurrent sync calls; the other answers 409 naming it, and the run is recorded before the answer', async () => {
    h = await insurerHarness({ patientCount: 20, pageSize: 20, failureRate: 0, latencyMs: 0, gone410Share: 0, seed: 2 }, { lineOn });
    const answers = await Promise.all([0, 1, 2].map(() => h.req('/insurers/KK01/sync', { method: 'POST' })));
    const bodies = (await Promise.all(answers.map((r) => r.json()))) as any[];
    const started = answers.flatMap((r, i) => (r.status === 202 ? [bodies[i]] : []));
    expect(started).toHaveLength(1);
    const runId = started[0].runId;
    for (const [i, r] of answers.entries()) if (r.status !== 202) expect([r.status, bodies[i].runId]).toEqual([409, runId]);
    const row = await h.t.db.query('SELECT state FROM insurer_runs WHERE id = $1', [runId]);
    expect(row.rows).toHaveLength(1);
    const p = await until(() => progressOf(h), finished, 60_000);
    expect(p).toMatchObject({ runId, state: 'completed' });
    expect((await h.t.db.query('SELECT count(*)::int AS n FROM insurer_runs')).rows[0].n).toBe(1);
  }, 120_000);

  it('validates input and audits every read of patient data', async () => {
    h = await insurerHarness({ patientCount: 20, pageSize: 20, failureRate: 0, latencyMs: 0, gone410Share: 0, seed: 1 }, { lineOn });
    expect((await h.req('/insurers/NOPE/sync')).status).toBe(404);
    expect((await h.req('/insurers/bad!id/sync')).status).toBe(400);
    expect((await h.req('/insurers/KK01/pause', { body: { reason: '' } })).status).toBe(422);
    expect((await h.req('/insurers/KK01/patients/bad id!/sync', { method: 'POST' })).status).toBe(400);
    expect((await h.req('/insurers/KK01/patients/P-999999/sync', { method: 'POST' })).status).toBe(404);
    expect((await h.req('/patients/P-000001/audit')).status).toBe(200); // admin may read the audit
    expect((await h.req('/patients/P-000001', { token: AUDITOR })).status).toBe(403);

    await h.req('/insurers/KK01/sync', { method: 'POST' });
    await until(() => progressOf(h), finished, 60_000);
    const res = await h.req('/patients/P-000003');
    expect(res.status).toBe(200);
    const patient = (await res.json()) as any;
    expect(patient.insurers[0]).toMatchObject({ insurerId: 'KK01', insured: true });
    expect(patient.insurers[0].careRecords).toHaveLength(3);
    const audit = (await (await h.req('/patients/P-000003/audit', { token: AUDITOR })).json()) as any;
    expect(audit.items.map((a: any) => [a.action, a.role])).toEqual([
      ['write', 'system'],
      ['write', 'system'],
      ['read', 'admin'],
    ]);
    expect(audit.items[2]).toMatchObject({ who: 'ops-1', insurerId: 'KK01' });
  }, 120_000);
});
