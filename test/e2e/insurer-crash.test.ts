import { randomInt } from 'node:crypto';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { startInsurerSimulator, type InsurerSimulator, type RecordedRequest } from '../../integrations/insurer/simulator.ts';
import { preciseNow } from '../../integrations/insurer/simulator-stats.ts';
import { withClient } from '../support/pgdb.ts';
import { embeddedUrl, freshStorage, killAllServers, startServer, type RunningServer, type Storage, type TestStorage } from '../support/server.ts';

/**
 * kill -9 the real server in the middle of an insurer's full sync, restart it on the same
 * storage, and check that the run resumes and completes with nothing lost, that the insurer
 * never saw two requests at once (the request cut by the kill included), and that a pause
 * survives the crash: nothing reaches the insurer until resume.
 * Reproduce a failure with INSURER_CRASH_SEED=<seed from the summary line>.
 */

const PATIENTS = 400;
const SEED = Number(process.env.INSURER_CRASH_SEED ?? randomInt(2 ** 31));

interface Progress {
  runId: string | null;
  state: string;
  runState: string;
  counts: { listed: number; new: number; removed: number; synced: number; pending: number; retrying: number; cancelled_410: number; failed: number };
  requests: { made: number; failed: number; inFlight: number };
  pause: { paused: boolean; reason: string | null; pausedAt: string | null; pausedBy: string | null };
}

// Every wait in a test draws on one budget, so a stall fails with its diagnostics before the
// test's own timeout (180 s) cuts it off without them.
const BUDGET_MS = 165_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const finished = (p: Progress) => p.runState === 'completed' || p.runState === 'failed';

function insurersEnv(sim: InsurerSimulator): Record<string, string> {
  return { INSURERS: JSON.stringify([{ id: 'KK01', baseUrl: sim.url, timeoutMs: 1_000, dailyAt: '02:00', timeZone: 'Europe/Berlin' }]) };
}

async function progressOf(server: RunningServer): Promise<Progress> {
  const res = await server.fetch('/insurers/KK01/sync');
  const body = (await res.json()) as Progress;
  expect(res.status, JSON.stringify(body)).toBe(200);
  return body;
}

/** Polls the server's progress until `done` holds; fails with the last progress and the server's output. */
async function waitProgress(server: RunningServer, done: (p: Progress) => boolean, timeoutMs: number, everyMs = 50): Promise<Progress> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const p = await progressOf(server);
    if (done(p)) return p;
    if (Date.now() > deadline) throw new Error(`progress condition not met within ${timeoutMs} ms; last: ${JSON.stringify(p)}\n${server.output()}`);
    await sleep(everyMs);
  }
}

async function startSync(server: RunningServer): Promise<string> {
  const res = await server.fetch('/insurers/KK01/sync', { method: 'POST' });
  const body = (await res.json()) as { runId: string };
  expect(res.status, JSON.stringify(body)).toBe(202);
  return body.runId;
}

function storageUrl(storage: Storage): string {
  return storage.kind === 'external' ? storage.databaseUrl : embeddedUrl(storage.dataDir);
}

/**
 * What the database holds for each stored patient (with its syncs, for failure messages), and
 * the run's patient syncs by status. Read while the server runs (embedded postgres lives with it).
 */
async function storedState(storage: Storage, runId: string) {
  return withClient(storageUrl(storage), async (c) => {
    const patients = await c.query<{ patient_id: string; insured: boolean; synced: boolean; records: number; syncs: unknown }>(
      `SELECT p.patient_id, p.insured, p.records_synced_at IS NOT NULL AS synced,
              (SELECT count(*)::int FROM care_records r WHERE r.insurer_id = p.insurer_id AND r.patient_id = p.patient_id) AS records,
              (SELECT json_agg(json_build_object('id', s.id, 'status', s.status, 'attempts', s.attempts, 'error', s.last_error))
                 FROM patient_syncs s WHERE s.insurer_id = p.insurer_id AND s.patient_id = p.patient_id) AS syncs
         FROM insurer_patients p WHERE p.insurer_id = 'KK01'`,
    );
    const syncs = await c.query<{ status: string; n: number }>(`SELECT status, count(*)::int AS n FROM patient_syncs WHERE run_id = $1 GROUP BY status`, [runId]);
    return {
      patients: new Map(patients.rows.map((r) => [r.patient_id, r])),
      syncs: Object.fromEntries(syncs.rows.map((r) => [r.status, r.n])) as Record<string, number>,
    };
  });
}

/**
 * Every listed patient that does not answer 410 is insured with its care records; every 410
 * patient is uninsured and holds none; no patient sync of the run is left open.
 */
async function expectAllStored(sim: InsurerSimulator, storage: Storage, runId: string): Promise<{ gone: number }> {
  const { patients, syncs } = await storedState(storage, runId);
  const listed = sim.patientIds();
  const wrong: string[] = [];
  let gone = 0;
  for (const id of listed) {
    const row = patients.get(id);
    const want = sim.isGone(id) ? { insured: false, synced: false, records: 0 } : { insured: true, synced: true, records: sim.settings.careRecordsPerPatient };
    if (sim.isGone(id)) gone++;
    if (!row) wrong.push(`${id}: not stored`);
    else if (row.insured !== want.insured || row.synced !== want.synced || row.records !== want.records) {
      const seen = sim.stats.requests.filter((r) => r.patientId === id).map((r) => `#${r.id}:${r.status}`);
      const got = { insured: row.insured, synced: row.synced, records: row.records };
      wrong.push(`${id}: stored ${JSON.stringify(got)}, want ${JSON.stringify(want)}; syncs ${JSON.stringify(row.syncs)}; insurer saw ${seen.join(' ')}`);
    }
  }
  expect(wrong, `patients not stored as the insurer lists them (syncs of the run by status: ${JSON.stringify(syncs)})`).toEqual([]);
  expect(patients.size, 'patients stored').toBe(listed.length);
  expect(syncs, 'patient syncs of the run by status').toEqual({ done: listed.length - gone, ...(gone ? { cancelled_410: gone } : {}) });
  return { gone };
}

/** The run's counts add up: everything listed is new, synced or cancelled by a 410, nothing failed or open. */
function expectCountsAddUp(p: Progress, gone: number): void {
  expect(p.counts, JSON.stringify(p)).toEqual({
    listed: PATIENTS,
    new: PATIENTS,
    removed: 0,
    synced: PATIENTS - gone,
    pending: 0,
    retrying: 0,
    cancelled_410: gone,
    failed: 0,
  });
  expect(p.counts.synced + p.counts.cancelled_410).toBe(p.counts.listed);
}

/** The insurer never had two of our requests at once, missing idempotency keys none. */
function expectOneAtATime(sim: InsurerSimulator): void {
  const overlapping: string[] = [];
  const sorted = [...sim.stats.requests].sort((a, b) => a.start - b.start);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]!;
    const cur = sorted[i]!;
    if ((prev.end ?? Infinity) > cur.start) overlapping.push(`#${prev.id} ${prev.path} [${prev.start.toFixed(3)}, ${prev.end?.toFixed(3)}] ${prev.status} and #${cur.id} ${cur.path} from ${cur.start.toFixed(3)}`);
  }
  expect(overlapping, 'overlapping requests').toEqual([]);
  expect(sim.stats.maxInFlight).toBe(1);
  expect(sim.overlapTime()).toBe(0);
  expect(sim.stats.missingIdempotencyKey).toBe(0);
}

/** Share of the wall time (first request to last) with a request in flight. */
function utilisation(sim: InsurerSimulator): string {
  const reqs = sim.stats.requests;
  if (!reqs.length) return 'n/a';
  const wall = (reqs.at(-1)!.end ?? reqs.at(-1)!.start) - reqs[0]!.start;
  return `${((sim.busyTime() / wall) * 100).toFixed(0)}% of ${(wall / 1000).toFixed(1)} s`;
}

const describeRequest = (r: RecordedRequest) => `#${r.id} ${r.path} start ${r.start.toFixed(1)} end ${r.end?.toFixed(1) ?? '(open)'} ${r.status}`;

const storages: TestStorage[] = [];
const sims: InsurerSimulator[] = [];
afterEach(async () => {
  await killAllServers();
  await Promise.all(sims.splice(0).map((s) => s.close()));
  await Promise.all(storages.splice(0).map((s) => s.cleanup()));
});

describe.each(['external', 'embedded'] as const)('insurer sync across SIGKILL (%s storage)', (kind) => {
  it('resumes the run after a restart: same run, nothing lost, never two requests in flight', async () => {
    const t0 = Date.now();
    const left = () => Math.max(1_000, t0 + BUDGET_MS - Date.now());
    const seed = SEED + (kind === 'embedded' ? 1 : 0);
    // Kill once this many care-record syncs have finished: well into the run, far from its end.
    const killAfter = 20 + (seed % 131);
    const storage = await freshStorage(kind, inject('databaseUrl'));
    storages.push(storage);
    const sim = await startInsurerSimulator({ patientCount: PATIENTS, pageSize: 100, failureRate: 0.8, latencyMs: { min: 1, max: 2 }, seed });
    sims.push(sim);

    let server = await startServer(storage.storage, { env: insurersEnv(sim) });
    const runId = await startSync(server);
    const before = await waitProgress(server, (p) => p.counts.synced + p.counts.cancelled_410 >= killAfter || finished(p), left(), 10);
    expect(finished(before), `the run ended before the kill point: ${JSON.stringify(before)}`).toBe(false);
    const killedAt = preciseNow();
    await server.kill('SIGKILL');
    const exitedAt = preciseNow();
    // The request the kill cut, if any: the simulator sees its socket close.
    const cut = sim.stats.requests.filter((r) => r.start <= exitedAt && (r.end === undefined || r.end >= killedAt));
    const requestsBefore = sim.stats.requests.length;

    server = await startServer(storage.storage, { env: insurersEnv(sim) });
    const restartMs = server.readyAt - Math.round(killedAt);
    const resumed = await progressOf(server);
    expect(resumed.runId, 'the run after the restart').toBe(runId);

    const p = await waitProgress(server, finished, left());
    const firstAfter = sim.stats.requests.find((r) => r.start > exitedAt);
    expect(p.runId).toBe(runId);
    expect(p.runState, JSON.stringify(p)).toBe('completed');
    expect(p.state).toBe('completed');
    const { gone } = await expectAllStored(sim, storage.storage, runId);
    expect(gone, 'the seed gives some 410 patients').toBeGreaterThan(0);
    expectCountsAddUp(p, gone);
    expect(cut.length, `requests in flight at the kill: ${cut.map(describeRequest).join('; ')}`).toBeLessThanOrEqual(1);
    expect(cut.every((r) => r.end !== undefined), 'the simulator saw the cut request end').toBe(true);
    expectOneAtATime(sim);

    expect(await server.stop()).toBe(0);
    console.log(
      `[insurer-crash ${kind}] seed=${seed} killAfter=${killAfter} progressAtKill=${JSON.stringify(before.counts)} requestsBeforeKill=${requestsBefore} ` +
        `cutAtKill=${cut.map(describeRequest).join('; ') || 'none'} restartReadyMs=${restartMs} firstRequestAfterKillMs=${firstAfter ? (firstAfter.start - exitedAt).toFixed(0) : 'n/a'} ` +
        `requests=${sim.stats.requests.length} made=${p.requests.made} failed=${p.requests.failed} gone=${gone} lineBusy=${utilisation(sim)} totalMs=${Date.now() - t0}`,
    );
  }, 180_000);

  it('keeps a pause across SIGKILL: nothing is sent after the restart until resume, then the run completes', async () => {
    const t0 = Date.now();
    const left = () => Math.max(1_000, t0 + BUDGET_MS - Date.now());
    const seed = SEED + (kind === 'embedded' ? 3 : 2);
    const storage = await freshStorage(kind, inject('databaseUrl'));
    storages.push(storage);
    const sim = await startInsurerSimulator({ patientCount: PATIENTS, pageSize: 100, failureRate: 0.8, latencyMs: { min: 1, max: 2 }, seed });
    sims.push(sim);

    let server = await startServer(storage.storage, { env: insurersEnv(sim) });
    const runId = await startSync(server);
    await waitProgress(server, (p) => p.counts.synced + p.counts.cancelled_410 >= 10 || finished(p), left(), 10);
    const pauseRes = await server.fetch('/insurers/KK01/pause', { method: 'POST', body: JSON.stringify({ reason: 'insurer phoned' }) });
    const pausedAt = preciseNow();
    const pause = (await pauseRes.json()) as { paused: boolean; changed: boolean; reason: string; inFlight: unknown };
    expect(pauseRes.status, JSON.stringify(pause)).toBe(200);
    expect(pause).toMatchObject({ paused: true, changed: true, reason: 'insurer phoned' });
    await server.kill('SIGKILL');
    const killedAt = preciseNow();

    server = await startServer(storage.storage, { env: insurersEnv(sim) });
    const readyAt = preciseNow();
    const p = await progressOf(server);
    expect(p).toMatchObject({ runId, state: 'paused', pause: { paused: true, reason: 'insurer phoned' } });
    expect(['listing', 'syncing']).toContain(p.runState);
    // Pausing again changes nothing: the pause is the one stored before the crash.
    const again = await server.fetch('/insurers/KK01/pause', { method: 'POST', body: JSON.stringify({ reason: 'again' }) });
    expect(await again.json()).toMatchObject({ paused: true, changed: false, reason: 'insurer phoned' });

    await sleep(1_500); // the quiet period being checked
    const quietUntil = preciseNow();
    const afterPause = sim.stats.requests.filter((r) => r.start > pausedAt);
    expect(afterPause.map(describeRequest), 'requests started after the pause answer').toEqual([]);
    const inFlightAtPause = sim.stats.requests.filter((r) => r.start <= pausedAt && (r.end ?? Infinity) > pausedAt);
    expect(inFlightAtPause.length).toBeLessThanOrEqual(1);
    if (inFlightAtPause.length) expect(pause.inFlight, `in flight at the pause: ${describeRequest(inFlightAtPause[0]!)}`).not.toBeNull();
    expect((await progressOf(server)).state).toBe('paused');

    const resume = await server.fetch('/insurers/KK01/resume', { method: 'POST' });
    expect(await resume.json()).toMatchObject({ paused: false, changed: true });
    const done = await waitProgress(server, finished, left());
    expect(done).toMatchObject({ runId, runState: 'completed', state: 'completed' });
    const { gone } = await expectAllStored(sim, storage.storage, runId);
    expectCountsAddUp(done, gone);
    expectOneAtATime(sim);

    expect(await server.stop()).toBe(0);
    console.log(
      `[insurer-pause-crash ${kind}] seed=${seed} inFlightAtPause=${inFlightAtPause.map(describeRequest).join('; ') || 'none'} ` +
        `restartReadyMs=${(readyAt - killedAt).toFixed(0)} quietMs=${(quietUntil - pausedAt).toFixed(0)} requests=${sim.stats.requests.length} lineBusy=${utilisation(sim)} totalMs=${Date.now() - t0}`,
    );
  }, 180_000);
});
