import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CreateRoomRequest, SendMessageRequest, type RoomKind } from './schemas.ts';

export interface CommsSimulatorSettings {
  /** Share of requests answered 503 without doing the work, 0..1. */
  failureRate: number;
  /** An outage: every request is answered 503. */
  down: boolean;
  /** Delay before every answer. The work is done (or not) at arrival, before the delay. */
  latencyMs: number;
  /** Share of requests answered 429 with Retry-After, 0..1. */
  throttleRate: number;
  /** The Retry-After sent with a 429, in whole seconds. */
  retryAfterSec: number;
}

export type CommsSimulatorOptions = Partial<CommsSimulatorSettings> & {
  /** 0 (default) picks a free port. */
  port?: number;
  /** Same seed: same ids, same failure decisions. */
  seed?: number;
  /** Stamps each call's `at`; default `Date.now`. */
  now?: () => number;
};

export interface CommsCall {
  at: number;
  path: string;
  /** The Idempotency-Key header; undefined when missing or empty. */
  key: string | undefined;
  status: number;
  /** Answered from the stored response of an earlier request with the same key. */
  replayed: boolean;
}

export interface CommsRoom {
  roomId: string;
  url: string;
  kind: RoomKind;
  consultationId: string;
  key: string;
}

export interface CommsMessage {
  messageId: string;
  to: string;
  link: string;
  consultationId: string;
  key: string;
}

export interface CommsSimulatorStats {
  /** Every request, in order of arrival. */
  calls: CommsCall[];
  /** Each room created, by the key that created it. */
  rooms: Map<string, CommsRoom>;
  /** Each mail actually sent: a replayed key adds nothing. */
  messages: CommsMessage[];
}

export interface CommsSimulator {
  /** `http://127.0.0.1:<port>`, the client's `baseUrl`. */
  readonly url: string;
  /** Live settings: the next request sees a change. */
  readonly settings: CommsSimulatorSettings;
  /** Checks, then applies, some settings. */
  configure(partial: Partial<CommsSimulatorSettings>): void;
  readonly stats: CommsSimulatorStats;
  /** Stops listening and drops every connection, idle and busy. Idempotent. */
  close(): Promise<void>;
}

interface Answer {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
  /** Set on a stored answer given again for a repeated key. */
  replayed?: boolean;
}

/** What a key's first successful request asked and was answered, replayed for later requests. */
interface Stored {
  fingerprint: string;
  answer: Answer;
}

const MAX_BODY_BYTES = 64 * 1024;

export const defaultCommsSimulatorSettings: Readonly<CommsSimulatorSettings> = Object.freeze({
  failureRate: 0,
  down: false,
  latencyMs: 0,
  throttleRate: 0,
  retryAfterSec: 1,
});

/**
 * A real HTTP server on 127.0.0.1 speaking the provider's contract, idempotency included:
 *
 * - A request without an Idempotency-Key is refused (400).
 * - A key's first successful request does the work and stores the answer; a repeat with the
 *   same key and body gets the stored answer (and `Idempotent-Replayed: true`) and does
 *   nothing; the same key with another body or path is refused (422).
 * - A request answered 503 or 429, or refused as invalid, does no work and stores nothing,
 *   so a retry with the same key does the work exactly once.
 *
 * @example
 * const sim = await startCommsSimulator({ failureRate: 0.3, seed: 4 });
 * // ... run the consultation flow against sim.url ...
 * expect(sim.stats.messages).toHaveLength(1);
 * await sim.close();
 */
export async function startCommsSimulator(options: CommsSimulatorOptions = {}): Promise<CommsSimulator> {
  const { port = 0, seed = 1, now = Date.now, ...overrides } = options;
  checkSettings(overrides);
  const settings: CommsSimulatorSettings = { ...defaultCommsSimulatorSettings, ...overrides };
  const random = mulberry32(seed);
  const stats: CommsSimulatorStats = { calls: [], rooms: new Map(), messages: [] };
  const stored = new Map<string, Stored>();
  const pending = new Set<NodeJS.Timeout>();
  let url = '';

  const id = (prefix: string) => `${prefix}_${Array.from({ length: 16 }, () => Math.floor(random() * 16).toString(16)).join('')}`;
  const error = (status: number, message: string, headers?: Record<string, string>): Answer => ({ status, body: { error: message }, ...(headers ? { headers } : {}) });

  /** Decides the answer and does the work, in one synchronous step: no two requests interleave. */
  function decide(method: string, path: string, key: string | undefined, raw: string): Answer {
    if (path !== '/rooms' && path !== '/messages') return error(404, 'not found');
    if (method !== 'POST') return error(405, 'method not allowed', { allow: 'POST' });
    if (settings.down || (settings.failureRate > 0 && random() < settings.failureRate)) return error(503, 'service unavailable');
    if (settings.throttleRate > 0 && random() < settings.throttleRate) {
      return error(429, 'too many requests', { 'retry-after': String(settings.retryAfterSec) });
    }
    if (key === undefined) return error(400, 'Idempotency-Key header is required');

    const fingerprint = `${path}\n${raw}`;
    const previous = stored.get(key);
    if (previous) {
      if (previous.fingerprint !== fingerprint) return error(422, 'Idempotency-Key was used for a different request');
      return { ...previous.answer, replayed: true };
    }

    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch {
      return error(400, 'body is not JSON');
    }
    const answer = path === '/rooms' ? createRoom(json, key) : sendMessage(json, key);
    if (answer.status < 300) stored.set(key, { fingerprint, answer });
    return answer;
  }

  function createRoom(json: unknown, key: string): Answer {
    const parsed = CreateRoomRequest.safeParse(json);
    if (!parsed.success) return invalid(parsed.error.issues);
    const roomId = id('room');
    const room: CommsRoom = { roomId, url: `${url}/join/${roomId}`, ...parsed.data, key };
    stats.rooms.set(key, room);
    return { status: 201, body: { roomId, url: room.url } };
  }

  function sendMessage(json: unknown, key: string): Answer {
    const parsed = SendMessageRequest.safeParse(json);
    if (!parsed.success) return invalid(parsed.error.issues);
    const { to, link, consultationId } = parsed.data;
    const messageId = id('msg');
    stats.messages.push({ messageId, to, link, consultationId, key });
    return { status: 202, body: { messageId } };
  }

  function handle(req: IncomingMessage, res: ServerResponse): void {
    const at = now();
    const path = (req.url ?? '/').split('?')[0]!;
    const header = req.headers['idempotency-key'];
    const key = typeof header === 'string' && header !== '' ? header : undefined;
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) chunks.push(chunk);
    });
    req.on('end', function answer() {
      const decided = size > MAX_BODY_BYTES ? error(413, 'body too large') : decide(req.method ?? 'GET', path, key, Buffer.concat(chunks).toString('utf8'));
      stats.calls.push({ at, path, key, status: decided.status, replayed: decided.replayed === true });
      const headers: Record<string, string> = { ...decided.headers };
      if (decided.replayed) headers['idempotent-replayed'] = 'true';
      respond(res, decided.status, decided.body, headers);
    });
  }

  function respond(res: ServerResponse, status: number, body: unknown, headers: Record<string, string>): void {
    function send(): void {
      if (res.destroyed) return;
      const payload = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), ...headers });
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

  const server = createServer(handle);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  let closing: Promise<void> | undefined;

  return {
    url,
    settings,
    configure(partial) {
      checkSettings(partial);
      Object.assign(settings, partial);
    },
    stats,
    close() {
      closing ??= new Promise<void>((resolve) => {
        for (const t of pending) clearTimeout(t);
        pending.clear();
        server.close(() => resolve());
        // Idle keep-alive connections and answers held by latency would keep close() waiting.
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

/** Field paths and codes only: zod's messages can quote the email address. */
function invalid(issues: ReadonlyArray<{ path: PropertyKey[]; code: string }>): Answer {
  return { status: 400, body: { error: 'invalid request', issues: issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.code}`) } };
}

/** Throws a RangeError naming every invalid field, so a bad test setting fails loudly. */
function checkSettings(settings: Partial<CommsSimulatorSettings>): void {
  const problems: string[] = [];
  const share = (key: 'failureRate' | 'throttleRate') => {
    const v = settings[key];
    if (v !== undefined && !(v >= 0 && v <= 1)) problems.push(`${key} must be within 0..1`);
  };
  share('failureRate');
  share('throttleRate');
  const { latencyMs, down, retryAfterSec } = settings;
  if (latencyMs !== undefined && !(latencyMs >= 0 && Number.isFinite(latencyMs))) problems.push('latencyMs must be >= 0');
  if (down !== undefined && typeof down !== 'boolean') problems.push('down must be a boolean');
  if (retryAfterSec !== undefined && !(Number.isSafeInteger(retryAfterSec) && retryAfterSec >= 0)) problems.push('retryAfterSec must be a whole number >= 0');
  if (problems.length > 0) throw new RangeError(`invalid simulator settings: ${problems.join('; ')}`);
}

/** mulberry32: a tiny, seedable PRNG giving floats in [0, 1). */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return function next() {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
