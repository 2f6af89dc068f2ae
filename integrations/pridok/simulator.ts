import { randomInt } from 'node:crypto';
import { generateNationalId } from './pid.ts';
import type { Referral } from './schemas.ts';
import { signReferral } from './signature.ts';

/**
 * The record system's side of the referral webhook: builds realistic referrals, signs them the
 * way the real system does and POSTs them to our endpoint. Bad variants (a wrong signature, an
 * old timestamp, an invalid field) are built with `makeReferral` and `signedRequest` and sent
 * by the test itself.
 */

export interface ReferralSenderOptions {
  /** The full webhook URL, e.g. `http://127.0.0.1:3000/webhooks/pridok/referrals`. */
  url: string;
  secret: string;
  /** Pace of `trickle()` when it is given no interval (default 60 a minute). */
  ratePerMin?: number;
  /**
   * Same seed, same referrals (names, numbers, GUIDs). Default: a fresh random seed, so runs
   * against one database never send the same JournalGuid twice.
   */
  seed?: number;
  /** Stamps `MessageTimestamp` and `X-Timestamp` (ms since the epoch); default `Date.now`. */
  now?: () => number;
}

export interface SendResult {
  status: number;
  /** The answer parsed as JSON, or its text when it is not JSON. */
  body: unknown;
  referral: Referral;
}

export interface ReferralSender {
  /** Sends one referral (fields from `overrides` replace the generated ones, valid or not). */
  sendOne(overrides?: Partial<Referral>): Promise<SendResult>;
  /**
   * Sends a referral, waits for the answer, waits `intervalMs` (default from `ratePerMin`),
   * and again, until the returned function or `stop()` is called. Failed sends land in `errors`.
   */
  trickle(intervalMs?: number): () => void;
  /** Requests answered, whatever the status. */
  readonly sent: number;
  /** Failures of sends made by `trickle()` (network errors), in order; the latest 100. */
  readonly errors: readonly unknown[];
  /** Stops every trickle and aborts requests in flight. Later `sendOne` calls reject. Idempotent. */
  stop(): void;
}

/**
 * @example
 * const sender = startReferralSender({ url: `${app.url}/webhooks/pridok/referrals`, secret });
 * const { status, referral } = await sender.sendOne();
 * const stopTrickle = sender.trickle(200);
 */
export function startReferralSender({ url, secret, ratePerMin = 60, seed = randomInt(2 ** 31), now = Date.now }: ReferralSenderOptions): ReferralSender {
  const target = new URL(url).href;
  if (!(ratePerMin > 0)) throw new RangeError('ratePerMin must be positive');
  if (secret === '') throw new RangeError('secret must not be empty');
  const random = mulberry32(seed);
  const stopping = new AbortController();
  const trickles = new Set<() => void>();
  const errors: unknown[] = [];
  let sent = 0;

  async function sendOne(overrides: Partial<Referral> = {}): Promise<SendResult> {
    if (stopping.signal.aborted) throw new Error('referral sender stopped');
    const at = now();
    const referral = makeReferral(random, overrides, at);
    const { body, headers } = signedRequest(secret, referral, Math.floor(at / 1000));
    const res = await fetch(target, { method: 'POST', headers, body, signal: stopping.signal });
    const text = await res.text();
    sent++;
    return { status: res.status, body: parseMaybeJson(text), referral };
  }

  function trickle(intervalMs: number = 60_000 / ratePerMin): () => void {
    if (!(intervalMs >= 0)) throw new RangeError('intervalMs must be >= 0');
    let timer: NodeJS.Timeout | undefined;
    let stopped = false;
    function next(): void {
      if (stopped) return;
      sendOne()
        .catch((err: unknown) => {
          // Aborted by stop(): not a failure of the system under test.
          if (stopping.signal.aborted) return;
          errors.push(err);
          // A long-running demo against a stopped endpoint must not grow without bound.
          if (errors.length > MAX_ERRORS) errors.shift();
        })
        .finally(() => {
          if (stopped) return;
          timer = setTimeout(next, intervalMs);
          // A trickle left running must not keep a test process alive on its own.
          timer.unref();
        });
    }
    function stopTrickle(): void {
      stopped = true;
      clearTimeout(timer);
      trickles.delete(stopTrickle);
    }
    trickles.add(stopTrickle);
    next();
    return stopTrickle;
  }

  return {
    sendOne,
    trickle,
    get sent() {
      return sent;
    },
    errors,
    stop() {
      for (const stopTrickle of [...trickles]) stopTrickle();
      stopping.abort(new Error('referral sender stopped'));
    },
  };
}

const MAX_ERRORS = 100;
const FIRST_NAMES = ['Nora', 'Emma', 'Ingrid', 'Sofie', 'Kari', 'Astrid', 'Jakob', 'Emil', 'Lars', 'Ola', 'Håkon', 'Sindre', 'Aksel', 'Maja', 'Tiril'];
const LAST_NAMES = ['Hansen', 'Johansen', 'Olsen', 'Larsen', 'Andersen', 'Pedersen', 'Nilsen', 'Kristiansen', 'Jensen', 'Berg', 'Haugen', 'Hagen', 'Bakken', 'Solberg', 'Strøm', 'Sæther'];
const FORMAT_IDS = ['henvisning-v1', 'henvisning-v2'];

/**
 * A valid referral from `random` (floats in [0, 1)), created at `at` (ms since the epoch).
 * `overrides` replace generated fields as given, so a test can build an invalid one.
 */
export function makeReferral(random: () => number, overrides: Partial<Referral> = {}, at: number = Date.now()): Referral {
  const pick = <T>(list: readonly T[]): T => list[Math.min(list.length - 1, Math.floor(random() * list.length))]!;
  const Firstname = pick(FIRST_NAMES);
  const Lastname = pick(LAST_NAMES);
  const digits = (n: number) => Array.from({ length: n }, () => Math.floor(random() * 10)).join('');
  return {
    JournalGuid: uuidV4(random),
    PID: generateNationalId(random, { dnr: random() < 0.1 }),
    FormatId: pick(FORMAT_IDS),
    MessageTimestamp: new Date(at).toISOString(),
    Firstname,
    Lastname,
    // example.com is reserved (RFC 2606): a simulator's mail can never reach a real person.
    Email: `${ascii(Firstname)}.${ascii(Lastname)}${digits(3)}@example.com`,
    // Norwegian mobile numbers: 8 digits starting with 4 or 9.
    PhoneNumber: `+47${pick(['4', '9'])}${digits(7)}`,
    ...overrides,
  };
}

/**
 * The body and headers the record system sends for `referral` at `timestampSec`. Sign with the
 * wrong secret or an old timestamp to build the requests our endpoint must refuse.
 */
export function signedRequest(secret: string, referral: Referral, timestampSec: number): { body: string; headers: Record<string, string> } {
  const body = JSON.stringify(referral);
  return {
    body,
    headers: {
      'Content-Type': 'application/json',
      'X-Signature': signReferral(secret, body, timestampSec),
      'X-Timestamp': String(timestampSec),
    },
  };
}

/** mulberry32: a tiny, seedable PRNG giving floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return function next() {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** An RFC 9562 version 4 UUID from `random`, so a seed reproduces the GUIDs too. */
function uuidV4(random: () => number): string {
  const bytes = Array.from({ length: 16 }, () => Math.floor(random() * 256));
  bytes[6] = (bytes[6]! & 0x0f) | 0x40;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = bytes.map((b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Lowercase ASCII for an email's local part: `Strøm` → `strom`, `Sæther` → `saether`. */
function ascii(name: string): string {
  return name
    .toLowerCase()
    .replace(/æ/g, 'ae')
    .replace(/ø/g, 'o')
    .replace(/å/g, 'a')
    .replace(/[^a-z]/g, '');
}

function parseMaybeJson(text: string): unknown {
  if (text === '') return undefined;
  try {
    return JSON.parse(text);
  } catch {
    // Not JSON (an HTML error page, plain text): the caller still gets what was said.
    return text;
  }
}
