import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * The record system signs each referral webhook with a shared secret:
 *
 *   X-Timestamp: <unix seconds>
 *   X-Signature: sha256=<lowercase hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>
 *
 * The timestamp is inside the signed text, so a captured request cannot be replayed later with
 * a fresh timestamp; the tolerance window bounds how long a captured request stays usable.
 */

/** How far (either way) a timestamp may be from our clock, in seconds. */
export const DEFAULT_TOLERANCE_SEC = 300;

const SIGNATURE = /^sha256=([0-9a-fA-F]{64})$/;
// Digits only: `Number()` would also take '1e9', ' 17', '0x10' and '-5'.
const TIMESTAMP = /^\d{1,12}$/;

export type SignatureCheck = { ok: true } | { ok: false; reason: 'missing' | 'malformed' | 'mismatch' | 'stale' };

export interface VerifyReferralSignatureInput {
  secret: string;
  /** The raw request body, exactly as received: re-serialised JSON would not match. */
  body: string | Uint8Array;
  /** The `X-Signature` header. */
  signature: string | null | undefined;
  /** The `X-Timestamp` header. */
  timestamp: string | null | undefined;
  /** Our clock, in unix seconds. */
  nowSec: number;
  toleranceSec?: number;
}

/**
 * The `X-Signature` value for `body` sent at `timestampSec`.
 *
 * @example
 * const ts = Math.floor(Date.now() / 1000);
 * headers['X-Signature'] = signReferral(secret, body, ts);
 * headers['X-Timestamp'] = String(ts);
 */
export function signReferral(secret: string, body: string | Uint8Array, timestampSec: number): string {
  requireSecret(secret);
  if (!Number.isSafeInteger(timestampSec) || timestampSec < 0) throw new RangeError('timestampSec must be whole unix seconds');
  return `sha256=${hmac(secret, String(timestampSec), body).toString('hex')}`;
}

/**
 * Checks a webhook's signature headers. A forged or altered request gives `mismatch`; a genuine
 * one outside the tolerance window gives `stale` (the signature is checked first, so `stale`
 * only ever describes a request the system really sent: a delayed delivery or a replay).
 */
export function verifyReferralSignature({
  secret,
  body,
  signature,
  timestamp,
  nowSec,
  toleranceSec = DEFAULT_TOLERANCE_SEC,
}: VerifyReferralSignatureInput): SignatureCheck {
  requireSecret(secret);
  if (!signature || !timestamp) return { ok: false, reason: 'missing' };
  const match = SIGNATURE.exec(signature.trim());
  const ts = timestamp.trim();
  if (!match || !TIMESTAMP.test(ts)) return { ok: false, reason: 'malformed' };

  const expected = hmac(secret, ts, body);
  const given = Buffer.from(match[1]!, 'hex');
  // timingSafeEqual throws on different lengths; the pattern fixes 32 bytes, this keeps it so.
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, reason: 'mismatch' };
  if (Math.abs(nowSec - Number(ts)) > toleranceSec) return { ok: false, reason: 'stale' };
  return { ok: true };
}

function hmac(secret: string, timestamp: string, body: string | Uint8Array): Buffer {
  return createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest();
}

/** An empty secret signs and verifies anything anyone can compute: a configuration error. */
function requireSecret(secret: string): void {
  if (typeof secret !== 'string' || secret === '') throw new RangeError('the webhook secret must not be empty');
}
