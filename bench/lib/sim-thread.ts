import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { startTsWorker } from '../../http/worker.ts';
import { startInsurerSimulator, type InsurerSimulatorOptions, type RecordedRequest } from '../../integrations/insurer/simulator.ts';
import type { SimulatorStats } from '../../integrations/insurer/simulator-stats.ts';

/**
 * The insurer simulator on its own thread (its own event loop), as the insurer is a system of its
 * own: what the runtime does between requests then delays only our side of the line, as it would
 * with a real insurer, not the simulator's reading of the next request. Its record comes back by
 * message; how many requests it has in flight right now is shared memory, for the idle sampler.
 */
export interface SimThread {
  readonly url: string;
  /** Requests in flight at the simulator at this moment. */
  inFlightNow(): number;
  /** Forgets the record (a new phase); see SimulatorStats.reset. */
  reset(): Promise<void>;
  /** The record since the last reset. */
  snapshot(): Promise<SimSnapshot>;
  close(): Promise<void>;
}

export interface SimSnapshot {
  requests: RecordedRequest[];
  maxInFlight: number;
  /** ms with at least one, and with two or more, requests in flight. */
  busyMs: number;
  overlapMs: number;
}

type Ask = { op: 'reset' | 'snapshot' | 'close'; id: number };

export async function startSimThread(options: InsurerSimulatorOptions): Promise<SimThread> {
  const shared = new Int32Array(new SharedArrayBuffer(4));
  const worker = startTsWorker(import.meta.url, { options, shared });
  const waiting = new Map<number, (value: unknown) => void>();
  let nextId = 0;
  const url = await new Promise<string>((resolve, reject) => {
    worker.once('error', reject);
    worker.once('message', (m: { url: string }) => {
      worker.off('error', reject);
      resolve(m.url);
    });
  });
  worker.on('message', (m: { id: number; value: unknown }) => {
    waiting.get(m.id)?.(m.value);
    waiting.delete(m.id);
  });
  const ask = <T>(op: Ask['op']) =>
    new Promise<T>((resolve) => {
      const id = nextId++;
      waiting.set(id, resolve as (value: unknown) => void);
      worker.postMessage({ op, id } satisfies Ask);
    });
  let closing: Promise<void> | undefined;
  return {
    url,
    inFlightNow: () => Atomics.load(shared, 0),
    reset: () => ask<void>('reset'),
    snapshot: () => ask<SimSnapshot>('snapshot'),
    close() {
      closing ??= ask<void>('close').then(() => worker.terminate().then(() => {}));
      return closing;
    },
  };
}

if (!isMainThread && parentPort) {
  const { options, shared } = workerData as { options: InsurerSimulatorOptions; shared: Int32Array };
  const sim = await startInsurerSimulator(options);
  const stats = sim.stats as SimulatorStats;
  const begin = stats.begin.bind(stats);
  const end = stats.end.bind(stats);
  stats.begin = (fields) => {
    const rec = begin(fields);
    Atomics.store(shared, 0, stats.inFlight);
    return rec;
  };
  stats.end = (rec, status) => {
    end(rec, status);
    Atomics.store(shared, 0, stats.inFlight);
  };
  const port = parentPort;
  port.on('message', async ({ op, id }: Ask) => {
    if (op === 'reset') sim.resetStats();
    if (op === 'close') await sim.close();
    const value =
      op === 'snapshot' ? ({ requests: stats.requests, maxInFlight: stats.maxInFlight, busyMs: sim.busyTime(), overlapMs: sim.overlapTime() } satisfies SimSnapshot) : undefined;
    port.postMessage({ id, value });
  });
  port.postMessage({ url: sim.url });
}
