import type { Worker } from 'node:worker_threads';
import { errorFromWire, type WireError } from '../../../integrations/insurer/errors.ts';
import { startTsWorker } from '../../worker.ts';
import type { CallResult, InsurerCall, InsurerLine, LineStats, SendOptions } from './insurer-line.ts';
import { LineStoppedError, type Priority } from './scheduler.ts';

/** Where the line thread finds the line's store: its own connections, to the same places. */
export interface LineSpec {
  db: { connectionString: string; schema?: string };
  redis?: { url: string; keyPrefix?: string };
  /** See LineOptions.maxTtlMs (default 60 s). */
  maxTtlMs?: number;
}

export interface LineThreadOptions {
  spec: LineSpec;
  /** This process, as named in line holders. */
  node: string;
  insurers: { id: string; baseUrl: string; timeoutMs: number }[];
  /**
   * The thread's scheduling priority (nice, −20..19), so the next request goes out as soon as
   * the last answer is in even while the machine is busy with the rest of the process and the
   * database. Below the process's own it needs CAP_SYS_NICE or RLIMIT_NICE; refused, the thread runs at the
   * process's priority and `ready` says so. Unset: the process's.
   */
  nice?: number;
  onWarn(insurerId: string | null, message: string): void;
  /** An insurer's queue or counts changed (as the thread reports them, once per turn of its loop). */
  onQueueChange?(insurerId: string): void;
  /** The thread died after it had started (not stopped): nothing more reaches the insurers. */
  onFailed?(err: Error): void;
}

// Messages between the threads.
export type ToThread =
  | { type: 'send'; id: number; insurerId: string; kind: Priority; call: InsurerCall; notBefore: number; holdUntil: number }
  | { type: 'withdraw'; id: number }
  | { type: 'stop' };
export type Snapshot = { insurerId: string; waiting: Record<Priority, number>; stats: LineStats };
export type FromThread =
  | { type: 'ready'; priority: LinePriority }
  | { type: 'failed'; message: string }
  | { type: 'result'; id: number; value?: unknown; error?: WireError | 'withdrawn' }
  | { type: 'queue'; snapshot: Snapshot }
  | { type: 'warn'; insurerId: string | null; message: string }
  | { type: 'stopped' };

/** The line thread's nice value as it runs, and why it is not the one asked for, if it was refused. */
export interface LinePriority {
  nice: number;
  refused: string | null;
}

export interface LineThread {
  lines: Map<string, InsurerLine>;
  /** The thread itself (its id, resource use). */
  readonly worker: Worker;
  /** Resolves once the thread has its connections, with its priority; rejects if it could not make them. */
  ready: Promise<LinePriority>;
  /** Stops every line (queued requests reject with LineStoppedError) and the thread. */
  stop(): Promise<void>;
}

/**
 * The insurers' lines on a thread of their own: the scheduler, the lease and the insurer client
 * run there, so the next request goes out as soon as the last answer is in, whatever this
 * thread is busy with (storing answers, the actors, the API). Requests and answers cross as
 * messages; an answer is the same value, or the same InsurerError, the client gave.
 */
export function startLineThread(o: LineThreadOptions): LineThread {
  const worker: Worker = startTsWorker(new URL('./line-worker.ts', import.meta.url).href, { spec: o.spec, node: o.node, insurers: o.insurers, nice: o.nice });
  interface Pending {
    resolve(v: unknown): void;
    reject(e: unknown): void;
    signal?: AbortSignal;
    onAbort?: () => void;
  }
  const pending = new Map<number, Pending>();
  const lines = new Map<string, InsurerLine & { snapshot: Snapshot }>();
  let nextId = 1;
  let stopped = false;
  let failure: Error | undefined;
  let onReady!: { resolve(p: LinePriority): void; reject(e: Error): void };
  const ready = new Promise<LinePriority>((resolve, reject) => (onReady = { resolve, reject }));
  let onStopped: (() => void) | undefined;

  let started = false;
  const failAll = (err: Error) => {
    if (!failure && started && !stopped) o.onFailed?.(err);
    failure ??= err;
    for (const [id, p] of pending) {
      pending.delete(id);
      p.reject(err);
    }
    onReady.reject(err);
    onStopped?.();
  };

  worker.on('message', (m: FromThread) => {
    switch (m.type) {
      case 'ready':
        started = true;
        onReady.resolve(m.priority);
        return;
      case 'failed':
        failAll(new Error(`insurer line thread could not start: ${m.message}`));
        return;
      case 'warn':
        o.onWarn(m.insurerId, m.message);
        return;
      case 'queue':
        update(m.snapshot);
        return;
      case 'result': {
        const p = pending.get(m.id);
        if (!p) return;
        pending.delete(m.id);
        if (p.onAbort) p.signal!.removeEventListener('abort', p.onAbort);
        if (m.error === undefined) p.resolve(m.value);
        else if (m.error === 'withdrawn') p.reject(p.signal?.reason);
        else p.reject(m.error.name === 'LineStoppedError' ? new LineStoppedError(m.error.message) : errorFromWire(m.error));
        return;
      }
      case 'stopped':
        onStopped?.();
    }
  });
  worker.on('error', (err) => failAll(err));
  worker.on('exit', (code) => failAll(new LineStoppedError(`insurer line thread exited (${code})`)));
  ready.catch(() => {}); // observed by the caller; failAll also rejects it after a good start

  function update(s: Snapshot): void {
    const line = lines.get(s.insurerId);
    if (!line) return;
    line.snapshot = s;
    o.onQueueChange?.(s.insurerId);
  }

  for (const { id: insurerId } of o.insurers) {
    const line = {
      snapshot: { insurerId, waiting: { interactive: 0, listing: 0, bulk: 0 }, stats: { made: 0, failed: 0, inFlight: 0, lastRequestAt: 0 } } as Snapshot,
      get waiting() {
        return this.snapshot.waiting;
      },
      get stats() {
        return this.snapshot.stats;
      },
      send<C extends InsurerCall>(kind: Priority, call: C, { notBefore = 0, holdUntil = 0, signal }: SendOptions = {}): Promise<CallResult<C>> {
        if (failure) return Promise.reject(failure);
        if (stopped) return Promise.reject(new LineStoppedError('line stopped'));
        if (signal?.aborted) return Promise.reject(signal.reason);
        return new Promise((resolve, reject) => {
          const id = nextId++;
          const entry: Pending = { resolve: resolve as (v: unknown) => void, reject, signal };
          if (signal) {
            // Withdrawn only while queued: the thread answers `withdrawn`, or with the outcome if it was sent.
            entry.onAbort = () => worker.postMessage({ type: 'withdraw', id } satisfies ToThread);
            signal.addEventListener('abort', entry.onAbort, { once: true });
          }
          pending.set(id, entry);
          worker.postMessage({ type: 'send', id, insurerId, kind, call, notBefore, holdUntil } satisfies ToThread);
        });
      },
    };
    lines.set(insurerId, line);
  }

  return {
    lines,
    worker,
    ready,
    async stop() {
      if (stopped) return;
      stopped = true;
      if (!failure) {
        const done = new Promise<void>((resolve) => (onStopped = resolve));
        worker.postMessage({ type: 'stop' } satisfies ToThread);
        await Promise.race([done, new Promise((r) => setTimeout(r, 10_000).unref())]);
      }
      await worker.terminate();
    },
  };
}
