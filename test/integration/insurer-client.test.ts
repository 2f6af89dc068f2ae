import { afterEach, describe, expect, it, vi } from 'vitest';
import { createInsurerClient, type InsurerClient } from '../../integrations/insurer/client.ts';
import {
  ContractError,
  GoneError,
  InsurerTimeoutError,
  RetryableError,
  TerminalError,
  isRetryable,
  parseRetryAfter,
} from '../../integrations/insurer/errors.ts';
import type { Patient } from '../../integrations/insurer/schemas.ts';
import { startInsurerSimulator, type InsurerSimulator, type InsurerSimulatorOptions } from '../../integrations/insurer/simulator.ts';

const sims: InsurerSimulator[] = [];
afterEach(async () => {
  await Promise.all(sims.splice(0).map((s) => s.close()));
});

/** A simulator that answers everything at once unless a test asks otherwise. */
async function simulator(options: InsurerSimulatorOptions = {}): Promise<{ sim: InsurerSimulator; client: InsurerClient }> {
  const sim = await startInsurerSimulator({ failureRate: 0, latencyMs: 0, ...options });
  sims.push(sim);
  return { sim, client: createInsurerClient({ baseUrl: sim.url, timeoutMs: 5_000 }) };
}

let keys = 0;
const key = () => `test-${++keys}`;

async function listAll(client: InsurerClient, limit = 50): Promise<{ patients: Patient[]; pages: number }> {
  const patients: Patient[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const page = await client.listPatients({ cursor, limit, idempotencyKey: key() });
    patients.push(...page.patients);
    cursor = page.nextCursor;
    pages++;
  } while (cursor !== null);
  return { patients, pages };
}

async function failure(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => expect.fail('expected the request to fail'),
    (err: unknown) => err,
  );
}

describe('insurer client against the simulator', () => {
  it('pages through the patient list, pages larger than asked for', async () => {
    const { sim, client } = await simulator({ patientCount: 250, pageSize: 100 });
    const { patients, pages } = await listAll(client, 10);
    expect(pages).toBe(3);
    expect(patients).toHaveLength(250);
    expect(patients[0]).toEqual({ id: 'P-000001', firstName: expect.any(String), lastName: expect.any(String), birthDate: expect.stringMatching(/^\d{4}-\d{2}-\d{2}$/) });
    expect(patients.at(-1)?.id).toBe('P-000250');
    expect(sim.stats.requests.map((r) => r.kind)).toEqual(['list', 'list', 'list']);
    expect(sim.stats.requests.every((r) => r.status === 200 && r.idempotencyKey?.startsWith('test-'))).toBe(true);
  });

  it('reads care records and keeps fields it does not know', async () => {
    const { sim, client } = await simulator({ careRecordsPerPatient: 4 });
    const id = sim.patientIds().find((p) => !sim.isGone(p))!;
    const records = await client.careRecords(id, { idempotencyKey: key() });
    expect(records).toHaveLength(4);
    for (const r of records) {
      expect(r).toMatchObject({ id: expect.any(String), type: expect.any(String), startsOn: expect.stringMatching(/^\d{4}-/) });
      expect(r.endsOn === null || typeof r.endsOn === 'string').toBe(true);
      expect(r.provider).toEqual(expect.any(String));
    }
    expect(sim.stats.requests[0]).toMatchObject({ kind: 'care-records', patientId: id, status: 200 });
  });

  it('turns 410 into a GoneError that is not retried and does not name the patient', async () => {
    const { sim, client } = await simulator({ gone410Share: 0.2 });
    const gone = sim.patientIds().filter((p) => sim.isGone(p));
    expect(gone.length).toBeGreaterThan(100);
    expect(gone.length).toBeLessThan(300);
    const err = await failure(client.careRecords(gone[0]!, { idempotencyKey: key() }));
    expect(err).toBeInstanceOf(GoneError);
    expect(isRetryable(err)).toBe(false);
    expect((err as GoneError).message).toBe('care records request failed: 410');
  });

  it.each([500, 503] as const)('turns %i into a RetryableError', async (status) => {
    const { client } = await simulator({ failureRate: 1, failureMix: { 500: 0, 503: 0, 429: 0, reset: 0, [status]: 1 } });
    const err = await failure(client.careRecords('P-000001', { idempotencyKey: key() }));
    expect(err).toBeInstanceOf(RetryableError);
    expect(err).not.toBeInstanceOf(InsurerTimeoutError);
    expect((err as RetryableError).status).toBe(status);
    expect((err as RetryableError).message).toBe(`care records request failed: ${status}`);
  });

  it('turns 429 into a RetryableError carrying Retry-After', async () => {
    const { client } = await simulator({ failureRate: 1, failureMix: { 500: 0, 503: 0, 429: 1, reset: 0 } });
    const err = await failure(client.listPatients({ limit: 10, idempotencyKey: key() }));
    expect(err).toBeInstanceOf(RetryableError);
    expect((err as RetryableError).retryAfterMs).toBe(1000);
  });

  it('turns a connection reset into a RetryableError', async () => {
    const { sim, client } = await simulator({ failureRate: 1, failureMix: { 500: 0, 503: 0, 429: 0, reset: 1 } });
    const err = await failure(client.careRecords('P-000002', { idempotencyKey: key() }));
    expect(err).toBeInstanceOf(RetryableError);
    expect(err).not.toBeInstanceOf(InsurerTimeoutError);
    expect((err as RetryableError).status).toBeUndefined();
    expect(sim.stats.requests).toHaveLength(1); // the client does not quietly resend
    expect(sim.stats.requests[0]?.status).toBe('reset');
    expect(sim.stats.inFlight).toBe(0);
  });

  it('gives up on a hung request after timeoutMs with an InsurerTimeoutError', async () => {
    const { sim } = await simulator({ failureRate: 1, failureMix: { 500: 0, 503: 0, 429: 0, reset: 0, timeout: 1 }, hangMs: 10_000 });
    const client = createInsurerClient({ baseUrl: sim.url, timeoutMs: 150 });
    const t0 = performance.now();
    const err = await failure(client.careRecords('P-000003', { idempotencyKey: key() }));
    const elapsed = performance.now() - t0;
    expect(err).toBeInstanceOf(InsurerTimeoutError);
    expect(isRetryable(err)).toBe(true);
    expect(elapsed).toBeGreaterThanOrEqual(140);
    expect(elapsed).toBeLessThan(1_000);
    // The simulator sees the client hang up; the hung request stops counting as in flight.
    await vi.waitFor(() => expect(sim.stats.inFlight).toBe(0));
    expect(sim.stats.requests[0]?.status).toBe('timeout');
  });

  it('stops when the caller aborts, without calling it a timeout', async () => {
    const { sim } = await simulator({ failureRate: 1, failureMix: { 500: 0, 503: 0, 429: 0, reset: 0, timeout: 1 } });
    const client = createInsurerClient({ baseUrl: sim.url, timeoutMs: 5_000 });
    const lease = new AbortController();
    const pending = failure(client.listPatients({ limit: 1, idempotencyKey: key(), signal: lease.signal }));
    await vi.waitFor(() => expect(sim.stats.inFlight).toBe(1));
    lease.abort();
    const err = await pending;
    expect(err).toBeInstanceOf(RetryableError);
    expect(err).not.toBeInstanceOf(InsurerTimeoutError);
    await vi.waitFor(() => expect(sim.stats.inFlight).toBe(0));
  });

  it('answers 400 to a request without an Idempotency-Key', async () => {
    const { sim } = await simulator();
    const res = await fetch(`${sim.url}/patients?limit=5`);
    expect(res.status).toBe(400);
    await res.text();
    expect(sim.stats.missingIdempotencyKey).toBe(1);
    expect(sim.stats.requests[0]).toMatchObject({ kind: 'list', idempotencyKey: null, status: 400 });
  });

  it('maps other 4xx to TerminalError and a bad 200 body to ContractError', async () => {
    const { client } = await simulator({ patientCount: 5 });
    expect(await failure(client.careRecords('P-999999', { idempotencyKey: key() }))).toBeInstanceOf(TerminalError);
    const bad = createInsurerClient({
      baseUrl: 'http://insurer.invalid',
      timeoutMs: 1_000,
      fetch: async () => new Response(JSON.stringify({ patients: [{ id: 'P 1', firstName: 'Ana' }], nextCursor: null }), { status: 200 }),
    });
    const err = await failure(bad.listPatients({ limit: 1, idempotencyKey: key() }));
    expect(err).toBeInstanceOf(ContractError);
    expect(isRetryable(err)).toBe(true);
    expect((err as ContractError).message).not.toContain('Ana');
    expect((err as ContractError).issues).toContain('patients.0.id: invalid_format');
  });

  it('never fails at failureRate 0 and always fails at failureRate 1', async () => {
    const { sim, client } = await simulator({ failureRate: 0 });
    for (let i = 1; i <= 40; i++) await client.careRecords(`P-${String(i).padStart(6, '0')}`, { idempotencyKey: key() }).catch((e) => expect(e).toBeInstanceOf(GoneError));
    expect(sim.stats.requests.every((r) => r.status === 200 || r.status === 410)).toBe(true);

    sim.settings.failureRate = 1;
    sim.resetStats();
    for (let i = 0; i < 40; i++) expect(await failure(client.listPatients({ limit: 5, idempotencyKey: key() }))).toBeInstanceOf(RetryableError);
    expect(sim.stats.requests).toHaveLength(40);
    expect(sim.stats.requests.some((r) => r.status === 200)).toBe(false);
  });

  it('records how many requests were in flight at once, and busy and overlap time', async () => {
    const { sim, client } = await simulator({ latencyMs: 40 });
    const t0 = performance.timeOrigin + performance.now();
    await Promise.all([1, 2, 3].map((i) => client.careRecords(`P-00000${i}`, { idempotencyKey: key() }).catch(() => {})));
    const t1 = performance.timeOrigin + performance.now();
    expect(sim.stats.maxInFlight).toBe(3);
    expect(sim.overlapTime()).toBeGreaterThan(20);
    expect(sim.busyTime()).toBeGreaterThanOrEqual(sim.overlapTime());
    expect(sim.busyTime()).toBeLessThanOrEqual(t1 - t0);
    expect(sim.requestsBetween(t0, t1)).toHaveLength(3);

    sim.resetStats();
    const s0 = performance.timeOrigin + performance.now();
    for (const i of [4, 5, 6]) await client.careRecords(`P-00000${i}`, { idempotencyKey: key() }).catch(() => {});
    const s1 = performance.timeOrigin + performance.now();
    expect(sim.stats.maxInFlight).toBe(1);
    expect(sim.overlapTime()).toBe(0);
    expect(sim.busyTime()).toBeGreaterThanOrEqual(3 * 39);
    expect(sim.busyTime()).toBeLessThanOrEqual(s1 - s0);
    expect(sim.requestsBetween(s1 + 1, s1 + 1000)).toHaveLength(0);
  });

  it('lists fewer patients after removePatients, more after addPatients', async () => {
    const { sim, client } = await simulator({ patientCount: 120, pageSize: 50, gone410Share: 0 });
    expect(sim.removePatients(['P-000002', 'P-000050', 'P-000051', 'P-000120', 'X-1'])).toBe(4);
    const { patients, pages } = await listAll(client);
    expect(patients).toHaveLength(116);
    expect(pages).toBe(3);
    expect(patients.map((p) => p.id)).not.toContain('P-000050');
    expect(sim.isGone('P-000050')).toBe(true);
    expect(await failure(client.careRecords('P-000050', { idempotencyKey: key() }))).toBeInstanceOf(GoneError);

    expect(sim.addPatients(2)).toEqual(['P-000121', 'P-000122']);
    const after = await listAll(client);
    expect(after.patients.map((p) => p.id).slice(-2)).toEqual(['P-000121', 'P-000122']);
  });

  it('parses large pages', async () => {
    const { sim, client } = await simulator({ patientCount: 200, pageSize: 100, payloadBytes: 100_000 });
    const { patients, pages } = await listAll(client);
    expect(pages).toBe(2);
    expect(patients).toHaveLength(200);
    expect(patients[0]).not.toHaveProperty('notes'); // the filler is not kept in memory
    expect(sim.stats.requests.every((r) => r.status === 200)).toBe(true);
  });

  it('gives the same patients and the same 410 set for the same seed', async () => {
    const a = await simulator({ seed: 42, patientCount: 500, gone410Share: 0.1 });
    const b = await simulator({ seed: 42, patientCount: 500, gone410Share: 0.1 });
    const c = await simulator({ seed: 43, patientCount: 500, gone410Share: 0.1 });
    const goneOf = (s: InsurerSimulator) => s.patientIds().filter((id) => s.isGone(id));
    expect(goneOf(a.sim)).toEqual(goneOf(b.sim));
    expect(goneOf(a.sim)).not.toEqual(goneOf(c.sim));
    expect((await listAll(a.client)).patients).toEqual((await listAll(b.client)).patients);

    // What isGone says is what the wire says.
    const sample = a.sim.patientIds().slice(0, 60);
    for (const id of sample) {
      const gone = await a.client.careRecords(id, { idempotencyKey: key() }).then(() => false, (e) => e instanceof GoneError);
      expect(gone).toBe(a.sim.isGone(id));
    }
  });
});

describe('parseRetryAfter', () => {
  it('reads seconds and HTTP-dates', () => {
    const now = Date.parse('2025-01-01T00:00:00Z');
    expect(parseRetryAfter('1', now)).toBe(1000);
    expect(parseRetryAfter('0.5', now)).toBe(500);
    expect(parseRetryAfter('Wed, 01 Jan 2025 00:00:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter('Tue, 31 Dec 2024 00:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter(null, now)).toBeUndefined();
  });
});
