import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { LineItem, Visit } from './schemas.ts';
import { VisitBook, mulberry32, toVisit } from './simulator-data.ts';
import { TokenBuckets } from './simulator-rate-limit.ts';
import { checkSettings, defaultPimsSimulatorSettings, type PimsSimulatorOptions, type PimsSimulatorSettings } from './simulator-settings.ts';
import { PimsSimulatorStats } from './simulator-stats.ts';

export { defaultPimsSimulatorSettings, type PimsSimulatorOptions, type PimsSimulatorSettings } from './simulator-settings.ts';
export { PimsSimulatorStats, type PimsCall } from './simulator-stats.ts';

export interface ChurnOptions {
  /** Real time between rounds. */
  intervalMs: number;
  /** Visits opened per round (default 1). */
  open?: number;
  /** Random open visits closed per round (default 1). */
  close?: number;
  /** Random open visits whose items change per round (default 1). */
  change?: number;
}

export interface PimsSimulator {
  /** `http://127.0.0.1:<port>`, the client's `baseUrl`. */
  readonly url: string;
  readonly port: number;
  /** Live settings: change a field and the next request sees it. */
  readonly settings: PimsSimulatorSettings;
  /** Checks, then applies, some settings. */
  configure(partial: Partial<PimsSimulatorSettings>): void;
  /** Every request since start or the last `resetStats()`. */
  readonly stats: PimsSimulatorStats;
  resetStats(): void;
  /** Adds an open visit with `itemsPerVisit` items, checked in now unless `checkedInAt` is given. */
  openVisit(fields?: Partial<Visit>): Visit;
  /** Takes the visit off the open list; its line items still answer 200. Returns whether it was open. */
  closeVisit(id: string): boolean;
  /** Forgets the visit: its line items answer 404 from now on. Returns whether it existed. */
  removeVisit(id: string): boolean;
  /** Changes one item's quantity and maybe adds an item, with a later `updatedAt`. Returns the new items. */
  changeItems(id: string): LineItem[];
  /** The open visits, as `GET /visits?status=open` lists them. */
  openVisits(): Visit[];
  /** A visit's items as `GET /visits/{id}/line-items` answers them; undefined when it would 404. */
  lineItems(id: string): LineItem[] | undefined;
  /** Opens, closes and changes visits every `intervalMs` until the returned function is called. */
  churn(options: ChurnOptions): () => void;
  /** Stops churning, stops listening and drops every connection, idle and busy. Idempotent. */
  close(): Promise<void>;
}

type Route =
  | { kind: 'open-visits'; visitId?: undefined }
  | { kind: 'line-items'; visitId: string }
  | { kind: 'other'; status: 400 | 404 | 405; visitId?: undefined };

interface Answer {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

/**
 * A real HTTP server on 127.0.0.1 speaking the practice system's contract, with outages,
 * failures, latency and a per-client rate limit, and visits that open, close and change while
 * a sync runs. Records every request.
 *
 * @example
 * const sim = await startPimsSimulator({ visitCount: 50, rateLimitPerSec: 10 });
 * // ... run the sync against sim.url with clientId 'sync' ...
 * expect(sim.stats.maxPerWindow(1000, 'sync')).toBeLessThanOrEqual(10);
 * await sim.close();
 */
export async function startPimsSimulator(options: PimsSimulatorOptions = {}): Promise<PimsSimulator> {
  const { port = 0, now = Date.now, seed = 1, ...overrides } = options;
  checkSettings(overrides);
  const settings: PimsSimulatorSettings = { ...defaultPimsSimulatorSettings, ...overrides };
  const book = new VisitBook(seed, now);
  const stats = new PimsSimulatorStats();
  const buckets = new TokenBuckets();
  const failRandom = mulberry32(seed ^ 0x5bd1e995);
  const churnRandom = mulberry32(seed ^ 0x27d4eb2f);
  const pending = new Set<NodeJS.Timeout>();
  const churns = new Set<NodeJS.Timeout>();

  // The initial visits were checked in a minute apart, the last one now.
  const t0 = now();
  for (let n = 1; n <= settings.visitCount; n++) book.open({}, settings.itemsPerVisit, t0 - (settings.visitCount - n) * 60_000);

  function decide(route: Route, client: string, wallAt: number): Answer {
    if (settings.down) return { status: 503, body: { error: 'service unavailable' } };
    const waitMs = buckets.take(client, settings.rateLimitPerSec, wallAt);
    if (waitMs > 0) {
      // Whole seconds, at least 1, as most servers send it.
      const retryAfter = String(Math.max(1, Math.ceil(waitMs / 1000)));
      return { status: 429, body: { error: 'too many requests' }, headers: { 'retry-after': retryAfter } };
    }
    if (settings.failureRate > 0 && failRandom() < settings.failureRate) return { status: 503, body: { error: 'service unavailable' } };
    if (route.kind === 'other') {
      if (route.status === 405) return { status: 405, body: { error: 'method not allowed' }, headers: { allow: 'GET' } };
      return { status: route.status, body: { error: route.status === 400 ? 'only status=open is supported' : 'not found' } };
    }
    if (route.kind === 'open-visits') return { status: 200, body: { visits: book.openVisits().map(toVisit) } };
    const visit = book.get(route.visitId);
    if (!visit) return { status: 404, body: { error: 'unknown visit' } };
    return { status: 200, body: { items: book.itemsOf(visit) } };
  }

  function handle(req: IncomingMessage, res: ServerResponse): void {
    const wallAt = performance.now();
    const at = now();
    const target = req.url ?? '/';
    const q = target.indexOf('?');
    const path = q === -1 ? target : target.slice(0, q);
    const route = routeOf(req.method ?? 'GET', path, new URLSearchParams(q === -1 ? '' : target.slice(q + 1)));
    const header = req.headers['x-client-id'];
    const client = typeof header === 'string' && header !== '' ? header : 'anonymous';
    // Decided (body included) at arrival, so the record holds the status even when the client
    // hangs up during the latency, and a visit closed meanwhile does not change the answer.
    const answer = decide(route, client, wallAt);
    stats.record({ at, wallAt, client, path, ...(route.visitId === undefined ? {} : { visitId: route.visitId }), status: answer.status });

    function send(): void {
      if (res.destroyed) return;
      const payload = JSON.stringify(answer.body);
      res.writeHead(answer.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), ...answer.headers });
      res.end(payload);
    }
    if (settings.latencyMs <= 0) return send();
    const timer = setTimeout(function answerLater() {
      pending.delete(timer);
      send();
    }, settings.latencyMs);
    pending.add(timer);
    res.on('close', function clientGone() {
      clearTimeout(timer);
      pending.delete(timer);
    });
  }

  function churnRound(open: number, close: number, change: number): void {
    for (let i = 0; i < close; i++) {
      const candidates = book.openVisits();
      if (candidates.length === 0) break;
      book.close(candidates[Math.floor(churnRandom() * candidates.length)]!.id);
    }
    for (let i = 0; i < open; i++) book.open({}, settings.itemsPerVisit);
    for (let i = 0; i < change; i++) {
      const candidates = book.openVisits();
      if (candidates.length === 0) break;
      book.change(candidates[Math.floor(churnRandom() * candidates.length)]!.id);
    }
  }

  const server = createServer(handle);
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
    configure(partial) {
      checkSettings(partial);
      Object.assign(settings, partial);
    },
    stats,
    resetStats: () => stats.reset(),
    openVisit: (fields = {}) => toVisit(book.open(fields, settings.itemsPerVisit)),
    closeVisit: (id) => book.close(id),
    removeVisit: (id) => book.remove(id),
    // Copies, so a test editing what it got back cannot change what the server answers.
    changeItems: (id) => structuredClone(book.change(id)),
    openVisits: () => book.openVisits().map(toVisit),
    lineItems(id) {
      const visit = book.get(id);
      return visit && structuredClone(book.itemsOf(visit));
    },
    churn({ intervalMs, open = 1, close = 1, change = 1 }) {
      if (!(intervalMs > 0)) throw new RangeError('intervalMs must be positive');
      const timer = setInterval(() => churnRound(open, close, change), intervalMs);
      // A churn left running must not keep a test process alive on its own.
      timer.unref();
      churns.add(timer);
      return function stopChurn() {
        clearInterval(timer);
        churns.delete(timer);
      };
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        for (const t of churns) clearInterval(t);
        churns.clear();
        for (const t of pending) clearTimeout(t);
        pending.clear();
        server.close(() => resolve());
        // Idle keep-alive connections and requests held by latency would keep close() waiting.
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

function routeOf(method: string, path: string, query: URLSearchParams): Route {
  const isGet = method === 'GET';
  if (path === '/visits') {
    if (!isGet) return { kind: 'other', status: 405 };
    return query.get('status') === 'open' ? { kind: 'open-visits' } : { kind: 'other', status: 400 };
  }
  const m = /^\/visits\/([^/]+)\/line-items$/.exec(path);
  if (!m) return { kind: 'other', status: 404 };
  if (!isGet) return { kind: 'other', status: 405 };
  try {
    return { kind: 'line-items', visitId: decodeURIComponent(m[1]!) };
  } catch {
    return { kind: 'other', status: 404 };
  }
}
