import { getPriority, setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { systemClock } from '../../../actors/clock.ts';
import { createInsurerClient } from '../../../integrations/insurer/client.ts';
import { errorToWire } from '../../../integrations/insurer/errors.ts';
import { createDb } from '../../../storage/db.ts';
import { createLine } from '../../../storage/line/index.ts';
import { callInsurer, whatOf } from './insurer-line.ts';
import type { FromThread, LineSpec, LineThreadOptions, Snapshot, ToThread } from './line-thread.ts';
import { lineId } from './insurer-line.ts';
import { LineScheduler } from './scheduler.ts';

/** The line thread (see line-thread.ts): schedulers, the line's store and the insurer clients. */
const port = parentPort!;
const { spec, node, insurers, nice } = workerData as { spec: LineSpec; node: string; insurers: LineThreadOptions['insurers']; nice?: number };
// On Linux the nice value is per thread: pid 0 is this thread alone, the rest of the process keeps its own.
let refused: string | null = null;
if (nice !== undefined) {
  try {
    setPriority(0, nice);
  } catch (err) {
    refused = err instanceof Error ? err.message : String(err);
  }
}
const post = (m: FromThread) => port.postMessage(m);
const warn = (insurerId: string | null, err: unknown) => post({ type: 'warn', insurerId, message: err instanceof Error ? err.message : String(err) });

const WITHDRAWN = Symbol('withdrawn');
const db = createDb({ connectionString: spec.db.connectionString, schema: spec.db.schema, max: 3 });
let line: Awaited<ReturnType<typeof createLine>>;
try {
  line = await createLine({ db, redis: spec.redis, maxTtlMs: spec.maxTtlMs, onError: (err) => warn(null, err) });
} catch (err) {
  post({ type: 'failed', message: err instanceof Error ? err.message : String(err) });
  await db.close().catch(() => {});
  throw err;
}

const lines = new Map<string, { scheduler: LineScheduler; client: ReturnType<typeof createInsurerClient> }>();
// The queue and the counts are reported once per turn of the loop, after the request at hand is
// on its way, when they changed.
const changed = new Set<string>();
let reporting = false;
const snapshot = (insurerId: string): Snapshot => {
  const { scheduler } = lines.get(insurerId)!;
  return { insurerId, waiting: scheduler.waiting, stats: { ...scheduler.stats } };
};
function report(insurerId: string): void {
  changed.add(insurerId);
  if (reporting) return;
  reporting = true;
  setImmediate(() => {
    reporting = false;
    for (const id of changed) post({ type: 'queue', snapshot: snapshot(id) });
    changed.clear();
  });
}
for (const { id, baseUrl, timeoutMs } of insurers) {
  const scheduler = new LineScheduler({
    line,
    lineId: lineId(id),
    node,
    requestTimeoutMs: timeoutMs,
    clock: systemClock,
    onError: (err) => warn(id, err),
    onQueueChange: () => report(id),
  });
  lines.set(id, { scheduler, client: createInsurerClient({ baseUrl, timeoutMs }) });
}

const withdrawals = new Map<number, AbortController>();
port.on('message', async (m: ToThread) => {
  if (m.type === 'withdraw') {
    withdrawals.get(m.id)?.abort(WITHDRAWN);
    return;
  }
  if (m.type === 'stop') {
    await Promise.all([...lines.values()].map(({ scheduler }) => scheduler.stop()));
    await line.close().catch(() => {});
    await db.close().catch(() => {});
    post({ type: 'stopped' });
    return;
  }
  const { id, insurerId, kind, call, notBefore, holdUntil } = m;
  const entry = lines.get(insurerId);
  if (!entry) {
    post({ type: 'result', id, error: errorToWire(new Error(`insurer ${insurerId} has no line in this thread`)) });
    return;
  }
  const { scheduler, client } = entry;
  const withdraw = new AbortController();
  withdrawals.set(id, withdraw);
  try {
    const value = await scheduler.run(kind, whatOf(call), (signal) => callInsurer(client, call, signal), { notBefore, holdUntil, signal: withdraw.signal });
    post({ type: 'result', id, value });
  } catch (err) {
    post({ type: 'result', id, error: err === WITHDRAWN ? 'withdrawn' : errorToWire(err) });
  } finally {
    withdrawals.delete(id);
    report(insurerId);
  }
});
post({ type: 'ready', priority: { nice: getPriority(0), refused } });
