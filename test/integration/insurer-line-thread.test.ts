import { randomUUID } from 'node:crypto';
import { getPriority } from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import { startLineThread, type LineThread } from '../../http/modules/insurer/line-thread.ts';
import { LineStoppedError } from '../../http/modules/insurer/scheduler.ts';
import { GoneError, RetryableError, errorFromWire, errorToWire, InsurerTimeoutError, ContractError, TerminalError } from '../../integrations/insurer/errors.ts';
import { startInsurerSimulator, type InsurerSimulator } from '../../integrations/insurer/simulator.ts';
import { testDb, type TestDb } from '../support/db.ts';
import { lineKinds } from '../support/insurer.ts';
import { dropKeys } from '../support/redis.ts';

describe('insurer errors across threads', () => {
  it('come back as the same class with the same fields', () => {
    const cases = [
      new GoneError('care records'),
      new TerminalError('list patients', '404', { status: 404 }),
      new RetryableError('care records', '429', { status: 429, retryAfterMs: 1_000 }),
      new InsurerTimeoutError('care records', 2_000),
      new ContractError('list patients', ['patients.0.id: invalid_type'], { status: 200 }),
    ];
    for (const err of cases) {
      const back = errorFromWire(structuredClone(errorToWire(err)));
      expect(back.constructor).toBe(err.constructor);
      expect(back.message).toBe(err.message);
      expect(back).toMatchObject({ ...err });
    }
    expect(errorFromWire(errorToWire(new Error('socket hang up')))).toMatchObject({ message: 'socket hang up' });
  });
});

describe.each(lineKinds)('insurer line thread, line on %s', (lineOn) => {
  let t: TestDb | undefined;
  let sim: InsurerSimulator | undefined;
  let thread: LineThread | undefined;
  let keyPrefix = '';
  afterEach(async () => {
    await thread?.stop();
    await sim?.close();
    await t?.cleanup();
    if (lineOn === 'redis') await dropKeys(process.env.REDIS_URL!, keyPrefix);
    thread = sim = t = undefined;
  });

  async function start(simOptions: Parameters<typeof startInsurerSimulator>[0], redisUrl = process.env.REDIS_URL) {
    t = await testDb();
    sim = await startInsurerSimulator(simOptions);
    keyPrefix = `test:${randomUUID()}:`;
    const warnings: string[] = [];
    thread = startLineThread({
      spec: { db: { connectionString: t.url, schema: t.schema }, redis: lineOn === 'redis' ? { url: redisUrl!, keyPrefix } : undefined },
      node: 'test',
      insurers: [{ id: 'KK01', baseUrl: sim.url, timeoutMs: 1_000 }],
      onWarn: (_insurer, message) => warnings.push(message),
    });
    return { line: thread.lines.get('KK01')!, warnings };
  }

  it('sends requests on the thread and answers with the insurer’s data, or its error of the same class', async () => {
    const { line } = await start({ patientCount: 30, failureRate: 0, gone410Share: 0, latencyMs: 0, seed: 4 });
    await thread!.ready;
    const page = await line.send('listing', { op: 'listPatients', cursor: null, limit: 10, idempotencyKey: 'list:1' });
    expect(page.patients.length).toBeGreaterThanOrEqual(10);
    const records = await line.send('bulk', { op: 'careRecords', patientId: page.patients[0]!.id, idempotencyKey: 'c:1' });
    expect(Array.isArray(records)).toBe(true);
    sim!.removePatients([page.patients[1]!.id]);
    await expect(line.send('bulk', { op: 'careRecords', patientId: page.patients[1]!.id, idempotencyKey: 'c:2' })).rejects.toBeInstanceOf(GoneError);
    sim!.settings.failureRate = 1;
    sim!.settings.failureMix = { 500: 0, 503: 0, 429: 1, reset: 0, timeout: 0 };
    const err = await line.send('bulk', { op: 'careRecords', patientId: page.patients[2]!.id, idempotencyKey: 'c:3' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RetryableError);
    expect(err).toMatchObject({ status: 429, retryAfterMs: 1_000 });
    await expect(async () => line.stats).not.toThrow();
    expect(sim!.stats.maxInFlight).toBe(1);
  });

  it('withdraws a queued request whose signal aborts: it never reaches the insurer', async () => {
    const { line } = await start({ patientCount: 5, failureRate: 0, gone410Share: 0, latencyMs: 300, seed: 5 });
    await thread!.ready;
    const first = line.send('bulk', { op: 'careRecords', patientId: 'P-000001', idempotencyKey: 'c:1' });
    const withdraw = new AbortController();
    const second = line.send('bulk', { op: 'careRecords', patientId: 'P-000002', idempotencyKey: 'c:2' }, { signal: withdraw.signal });
    while (sim!.stats.requests.length === 0) await new Promise((r) => setTimeout(r, 5));
    withdraw.abort(new Error('superseded'));
    await expect(second).rejects.toThrow('superseded');
    await first;
    expect(sim!.stats.requests.map((r) => r.patientId)).toEqual(['P-000001']);
  });

  it('rejects what is still queued with LineStoppedError when it stops, after the request in flight ended', async () => {
    const { line } = await start({ patientCount: 5, failureRate: 0, gone410Share: 0, latencyMs: 200, seed: 6 });
    await thread!.ready;
    const first = line.send('bulk', { op: 'careRecords', patientId: 'P-000001', idempotencyKey: 'c:1' });
    const queued = line.send('bulk', { op: 'careRecords', patientId: 'P-000002', idempotencyKey: 'c:2' }).catch((e: unknown) => e);
    while (sim!.stats.requests.length === 0) await new Promise((r) => setTimeout(r, 5));
    await thread!.stop();
    expect(await queued).toBeInstanceOf(LineStoppedError);
    await expect(first).resolves.toBeDefined();
    await expect(line.send('bulk', { op: 'careRecords', patientId: 'P-000003', idempotencyKey: 'c:3' })).rejects.toBeInstanceOf(LineStoppedError);
    expect(sim!.stats.requests).toHaveLength(1);
  });

});

describe('line thread priority', () => {
  async function startAt(nice: number) {
    const t = await testDb();
    const thread = startLineThread({ spec: { db: { connectionString: t.url, schema: t.schema } }, node: 'test', insurers: [], nice, onWarn: () => {} });
    try {
      return await thread.ready;
    } finally {
      await thread.stop();
      await t.cleanup();
    }
  }

  it('runs at the nice value it is given; the rest of the process keeps its own', async () => {
    const own = getPriority();
    const lower = Math.min(19, own + 5);
    expect(await startAt(lower)).toEqual({ nice: lower, refused: null });
    expect(getPriority()).toBe(own);
  });

  it('a raise it may not make is reported, and the thread runs at the process priority', async () => {
    const own = getPriority();
    const raised = Math.max(-20, own - 5);
    const priority = await startAt(raised);
    expect(getPriority()).toBe(own);
    // Raising needs CAP_SYS_NICE: root has it (as in CI); anyone else is refused.
    if (process.getuid?.() === 0) expect(priority).toEqual({ nice: raised, refused: null });
    else expect(priority).toMatchObject({ nice: own, refused: expect.stringMatching(/EACCES|permission/i) });
  });
});

it('a line thread that cannot reach Redis fails to start, naming REDIS_URL', async () => {
  const t = await testDb();
  const thread = startLineThread({
    spec: { db: { connectionString: t.url, schema: t.schema }, redis: { url: 'redis://127.0.0.1:1' } },
    node: 'test',
    insurers: [{ id: 'KK01', baseUrl: 'http://127.0.0.1:1', timeoutMs: 1_000 }],
    onWarn: () => {},
  });
  try {
    await expect(thread.ready).rejects.toThrow(/REDIS_URL/);
  } finally {
    await thread.stop();
    await t.cleanup();
  }
});

it('a line thread that dies after start fails what is queued and says so once', async () => {
  const t = await testDb();
  const sim = await startInsurerSimulator({ patientCount: 5, failureRate: 0, gone410Share: 0, latencyMs: 500, seed: 7 });
  const failures: Error[] = [];
  const thread = startLineThread({
    spec: { db: { connectionString: t.url, schema: t.schema } },
    node: 'test',
    insurers: [{ id: 'KK01', baseUrl: sim.url, timeoutMs: 2_000 }],
    onWarn: () => {},
    onFailed: (err) => failures.push(err),
  });
  try {
    await thread.ready;
    const line = thread.lines.get('KK01')!;
    const queued = line.send('bulk', { op: 'careRecords', patientId: 'P-000001', idempotencyKey: 'c:1' }).catch((e: unknown) => e);
    while (sim.stats.requests.length === 0) await new Promise((r) => setTimeout(r, 5));
    await thread.worker.terminate();
    expect(await queued).toBeInstanceOf(LineStoppedError);
    await expect(line.send('bulk', { op: 'careRecords', patientId: 'P-000002', idempotencyKey: 'c:2' })).rejects.toBeInstanceOf(LineStoppedError);
    expect(failures).toHaveLength(1);
  } finally {
    await thread.stop();
    await sim.close();
    await t.cleanup();
  }
});
