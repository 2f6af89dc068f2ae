import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import {
  careRecordsOf,
  decodeCursor,
  encodeCursor,
  mulberry32,
  pageAfter,
  patientAt,
  patientIdOf,
  patientNumberOf,
  seededGone,
} from './simulator-data.ts';
import {
  defaultSimulatorSettings,
  type FailureKind,
  type InsurerSimulatorOptions,
  type InsurerSimulatorSettings,
  type InsurerSimulatorStats,
} from './simulator-settings.ts';
import { SimulatorStats, type RecordedRequest, type RequestKind } from './simulator-stats.ts';

export type { RecordedRequest, RequestKind, RequestStatus } from './simulator-stats.ts';
export {
  defaultSimulatorSettings,
  type FailureMix,
  type InsurerSimulatorOptions,
  type InsurerSimulatorSettings,
  type InsurerSimulatorStats,
  type Latency,
} from './simulator-settings.ts';

export interface InsurerSimulator {
  /** `http://127.0.0.1:<port>`, the client's `baseUrl`. */
  readonly url: string;
  readonly port: number;
  /** Live settings: change any field and the next request sees it. */
  readonly settings: InsurerSimulatorSettings;
  /** What the simulator saw since start or the last `resetStats()`. */
  readonly stats: InsurerSimulatorStats;
  resetStats(): void;
  /** Requests whose time in flight overlaps `[t0, t1]` (ms, `performance.timeOrigin` based). */
  requestsBetween(t0: number, t1: number): RecordedRequest[];
  /** Total ms with at least one request in flight. */
  busyTime(): number;
  /** Total ms with two or more requests in flight. */
  overlapTime(): number;
  /** Take patients off the list; their care records answer 410 from then on. Returns how many. */
  removePatients(ids: Iterable<string>): number;
  /** Append `n` new patients to the end of the list; returns their ids. */
  addPatients(n: number): string[];
  /** Whether this patient's care records answer 410 (seeded share, or removed). */
  isGone(id: string): boolean;
  /** The ids currently on the list, in order. O(patientCount): for tests. */
  patientIds(): string[];
  /** Stop listening and drop every connection, hung ones included. Idempotent. */
  close(): Promise<void>;
}

/**
 * A real HTTP server on 127.0.0.1 speaking the insurer's contract, with configurable failure,
 * latency, 410s and page sizes, recording every request it sees.
 *
 * @example
 * const sim = await startInsurerSimulator({ patientCount: 500, failureRate: 0.8, seed: 7 });
 * // ... run the sync against sim.url ...
 * expect(sim.stats.maxInFlight).toBe(1);
 * await sim.close();
 */
export async function startInsurerSimulator(options: InsurerSimulatorOptions = {}): Promise<InsurerSimulator> {
  const { port = 0, failureMix, ...rest } = options;
  const settings: InsurerSimulatorSettings = {
    ...defaultSimulatorSettings,
    ...rest,
    failureMix: { ...defaultSimulatorSettings.failureMix, ...failureMix },
  };
  const stats = new SimulatorStats();
  const removed = new Set<number>();
  const failRandom = mulberry32(settings.seed ^ 0x5bd1e995);
  const latencyRandom = mulberry32(settings.seed ^ 0x27d4eb2f);
  const sockets = new Set<Socket>();
  const hangs = new Set<NodeJS.Timeout>();

  function isGone(id: string): boolean {
    const n = patientNumberOf(id);
    if (n === undefined || n > settings.patientCount) return false;
    return removed.has(n) || seededGone(settings.seed, n, settings.gone410Share);
  }

  function latencyFor(kind: RequestKind, patientId: string | undefined): number {
    const l = settings.latencyMs;
    if (typeof l === 'number') return l;
    if (typeof l === 'function') return l(patientId === undefined ? { kind } : { kind, patientId });
    return l.min + latencyRandom() * (l.max - l.min);
  }

  function pickFailure(): FailureKind | undefined {
    if (!(failRandom() < settings.failureRate)) return undefined;
    const mix = settings.failureMix;
    const kinds = ['500', '503', '429', 'reset', 'timeout'] as const;
    const total = kinds.reduce((sum, k) => sum + Math.max(0, mix[k]), 0);
    if (total <= 0) return '500';
    let u = failRandom() * total;
    for (const k of kinds) {
      u -= Math.max(0, mix[k]);
      if (u < 0) return k;
    }
    return '500';
  }

  function handle(req: IncomingMessage, res: ServerResponse): void {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const route = routeOf(req.method ?? 'GET', path);
    const header = req.headers['idempotency-key'];
    const idempotencyKey = typeof header === 'string' && header !== '' ? header : null;
    const rec = stats.begin({ method: req.method ?? 'GET', path, kind: route.kind, patientId: route.patientId, idempotencyKey });
    let timer: NodeJS.Timeout | undefined;
    res.on('close', function onClose() {
      if (timer) {
        clearTimeout(timer);
        hangs.delete(timer);
      }
      stats.end(rec, 'aborted'); // no-op when already ended
    });

    function send(status: number, body: unknown, headers: Record<string, string> = {}): void {
      if (rec.end !== undefined) return;
      const payload = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), ...headers });
      res.end(payload);
      // Ended when the whole answer is handed to the socket, so a client that sends its next
      // request after reading this one is never counted as overlapping.
      stats.end(rec, status);
    }

    const answer = decide(route, idempotencyKey, url, q);
    const delay = answer.kind === 'timeout' ? settings.hangMs : latencyFor(route.kind, route.patientId);
    const act = () => {
      if (timer) hangs.delete(timer);
      timer = undefined;
      if (rec.end !== undefined) return;
      if (answer.kind === 'reset' || answer.kind === 'timeout') {
        stats.end(rec, answer.kind);
        const socket = req.socket;
        if (answer.kind === 'reset' && typeof socket.resetAndDestroy === 'function') socket.resetAndDestroy();
        else socket.destroy();
        return;
      }
      send(answer.status, answer.body, answer.headers);
    };
    if (answer.kind === 'timeout') rec.status = 'timeout';
    if (delay > 0) {
      timer = setTimeout(act, delay);
      if (answer.kind === 'timeout') hangs.add(timer);
    } else act();
  }

  type Answer =
    | { kind: 'respond'; status: number; body: unknown; headers?: Record<string, string> }
    | { kind: 'reset' }
    | { kind: 'timeout' };

  function decide(route: Route, idempotencyKey: string | null, url: string, q: number): Answer {
    if (idempotencyKey === null) {
      stats.missingIdempotencyKey++;
      return { kind: 'respond', status: 400, body: { error: 'missing Idempotency-Key header' } };
    }
    if (route.kind === 'other') {
      if (route.status === 405) return { kind: 'respond', status: 405, body: { error: 'method not allowed' }, headers: { allow: 'GET' } };
      return { kind: 'respond', status: 404, body: { error: 'not found' } };
    }
    const failure = pickFailure();
    if (failure === 'reset' || failure === 'timeout') return { kind: failure };
    if (failure === '429') return { kind: 'respond', status: 429, body: { error: 'too many requests' }, headers: { 'retry-after': '1' } };
    if (failure !== undefined) return { kind: 'respond', status: Number(failure), body: { error: 'unavailable' } };

    if (route.kind === 'list') {
      const cursor = q === -1 ? null : new URLSearchParams(url.slice(q + 1)).get('cursor');
      const after = cursor === null ? 0 : decodeCursor(cursor);
      if (after === undefined) return { kind: 'respond', status: 400, body: { error: 'invalid cursor' } };
      const { numbers, more } = pageAfter(after, settings.pageSize, settings.patientCount, removed);
      const last = numbers[numbers.length - 1];
      return {
        kind: 'respond',
        status: 200,
        body: {
          patients: numbers.map((n) => patientAt(settings.seed, n, settings.payloadBytes)),
          nextCursor: more && last !== undefined ? encodeCursor(last) : null,
        },
      };
    }
    const n = patientNumberOf(route.patientId);
    if (n === undefined || n > settings.patientCount) return { kind: 'respond', status: 404, body: { error: 'unknown patient' } };
    if (isGone(route.patientId)) return { kind: 'respond', status: 410, body: { error: 'patient is no longer insured' } };
    return { kind: 'respond', status: 200, body: { careRecords: careRecordsOf(settings.seed, n, settings.careRecordsPerPatient) } };
  }

  const server = createServer(handle);
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const boundPort = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;

  return {
    url: `http://127.0.0.1:${boundPort}`,
    port: boundPort,
    settings,
    stats,
    resetStats: () => stats.reset(),
    requestsBetween: (t0, t1) => stats.requestsBetween(t0, t1),
    busyTime: () => stats.busyTime(),
    overlapTime: () => stats.overlapTime(),
    removePatients(ids) {
      let count = 0;
      for (const id of ids) {
        const n = patientNumberOf(id);
        if (n === undefined || n > settings.patientCount || removed.has(n)) continue;
        removed.add(n);
        count++;
      }
      return count;
    },
    addPatients(n) {
      const first = settings.patientCount + 1;
      settings.patientCount += n;
      return Array.from({ length: n }, (_, i) => patientIdOf(first + i));
    },
    isGone,
    patientIds() {
      const ids: string[] = [];
      for (let n = 1; n <= settings.patientCount; n++) if (!removed.has(n)) ids.push(patientIdOf(n));
      return ids;
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        for (const t of hangs) clearTimeout(t);
        hangs.clear();
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
      return closing;
    },
  };
}

type Route =
  | { kind: 'list'; patientId?: undefined }
  | { kind: 'care-records'; patientId: string }
  | { kind: 'other'; status: number; patientId?: undefined };

function routeOf(method: string, path: string): Route {
  const isGet = method === 'GET';
  if (path === '/patients') return isGet ? { kind: 'list' } : { kind: 'other', status: 405 };
  const m = /^\/patients\/([^/]+)\/care-records$/.exec(path);
  if (m) {
    if (!isGet) return { kind: 'other', status: 405 };
    let id: string;
    try {
      id = decodeURIComponent(m[1] as string);
    } catch {
      return { kind: 'other', status: 404 };
    }
    return { kind: 'care-records', patientId: id };
  }
  return { kind: 'other', status: 404 };
}
