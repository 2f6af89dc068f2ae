import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { checkNationalId, generateNationalId } from '../../integrations/pridok/pid.ts';
import { Referral } from '../../integrations/pridok/schemas.ts';
import { signReferral, verifyReferralSignature } from '../../integrations/pridok/signature.ts';
import { makeReferral, mulberry32, signedRequest, startReferralSender } from '../../integrations/pridok/simulator.ts';

const SECRET = 'whsec_test';
const NOW = 1_700_000_000;

describe('referral signature', () => {
  const body = '{"a":1}';
  const verify = (overrides: Partial<Parameters<typeof verifyReferralSignature>[0]> = {}) =>
    verifyReferralSignature({ secret: SECRET, body, signature: signReferral(SECRET, body, NOW), timestamp: String(NOW), nowSec: NOW, ...overrides });

  it('signs HMAC-SHA256 of "<timestamp>.<body>" as sha256=<lowercase hex>', () => {
    // Computed independently (Python's hmac module).
    expect(signReferral(SECRET, body, NOW)).toBe('sha256=38877139021993b830af32feea6e18a8da83eb2f6e49ee50bd9e4cf4ca4d3789');
    expect(signReferral(SECRET, Buffer.from(body), NOW)).toBe(signReferral(SECRET, body, NOW));
  });

  it('accepts a valid signature, within the tolerance either way, and uppercase hex', () => {
    expect(verify()).toEqual({ ok: true });
    expect(verify({ body: Buffer.from(body) })).toEqual({ ok: true });
    expect(verify({ nowSec: NOW + 300 })).toEqual({ ok: true });
    expect(verify({ nowSec: NOW - 300 })).toEqual({ ok: true });
    expect(verify({ signature: `sha256=${signReferral(SECRET, body, NOW).slice('sha256='.length).toUpperCase()}` })).toEqual({ ok: true });
  });

  it('reports a mismatch for another secret, another body or another timestamp', () => {
    expect(verify({ secret: 'other' })).toEqual({ ok: false, reason: 'mismatch' });
    expect(verify({ body: '{"a":2}' })).toEqual({ ok: false, reason: 'mismatch' });
    expect(verify({ body: '{"a": 1}' })).toEqual({ ok: false, reason: 'mismatch' });
    // A timestamp moved forward (to get past the window) breaks the signature.
    expect(verify({ timestamp: String(NOW + 1), nowSec: NOW + 1 })).toEqual({ ok: false, reason: 'mismatch' });
  });

  it('reports a genuine but old or future request as stale', () => {
    expect(verify({ nowSec: NOW + 301 })).toEqual({ ok: false, reason: 'stale' });
    expect(verify({ nowSec: NOW - 301 })).toEqual({ ok: false, reason: 'stale' });
    expect(verify({ nowSec: NOW + 61, toleranceSec: 60 })).toEqual({ ok: false, reason: 'stale' });
  });

  it('reports missing headers', () => {
    for (const signature of [undefined, null, '']) expect(verify({ signature })).toEqual({ ok: false, reason: 'missing' });
    for (const timestamp of [undefined, null, '']) expect(verify({ timestamp })).toEqual({ ok: false, reason: 'missing' });
  });

  it('reports malformed headers', () => {
    const hex = signReferral(SECRET, body, NOW).slice('sha256='.length);
    for (const signature of [hex, `sha1=${hex}`, `sha256=${hex.slice(2)}`, `sha256=${hex}00`, `sha256=${hex.slice(1)}g`, 'sha256=']) {
      expect(verify({ signature })).toEqual({ ok: false, reason: 'malformed' });
    }
    for (const timestamp of ['1.7e9', `${NOW}.0`, '-1', 'yesterday', '0x10', String(NOW * 1000 * 1000)]) {
      expect(verify({ timestamp })).toEqual({ ok: false, reason: 'malformed' });
    }
  });

  it('refuses an empty secret', () => {
    expect(() => signReferral('', body, NOW)).toThrow(RangeError);
    expect(() => verify({ secret: '' })).toThrow(RangeError);
  });
});

describe('checkNationalId', () => {
  // Check digits computed independently (a separate Python implementation).
  it('accepts a valid fødselsnummer', () => {
    expect(checkNationalId('15038512363')).toEqual({ ok: true, kind: 'fnr' });
    expect(checkNationalId('01019012480')).toEqual({ ok: true, kind: 'fnr' });
  });

  it('accepts a valid D-number (day + 40)', () => {
    expect(checkNationalId('55038512357')).toEqual({ ok: true, kind: 'dnr' });
    expect(checkNationalId('69028410190')).toEqual({ ok: true, kind: 'dnr' }); // 29 Feb 1984
  });

  it('rejects a wrong first check digit', () => {
    expect(checkNationalId('15038512353')).toEqual({ ok: false, reason: 'first check digit does not match' });
  });

  it('rejects a wrong second check digit', () => {
    expect(checkNationalId('15038512364')).toEqual({ ok: false, reason: 'second check digit does not match' });
  });

  it('rejects a wrong length', () => {
    for (const pid of ['', '1503851236', '150385123630', ' 15038512363']) {
      expect(checkNationalId(pid)).toEqual({ ok: false, reason: 'must be exactly 11 digits' });
    }
  });

  it('rejects non-digits', () => {
    for (const pid of ['1503851236a', '150385-2363', '１５０３８５１２３６３', '15038512.63']) {
      expect(checkNationalId(pid)).toEqual({ ok: false, reason: 'must be exactly 11 digits' });
    }
  });

  it('rejects dates that do not exist, and synthetic test numbers', () => {
    const bad = (pid: string) => {
      const check = checkNationalId(pid);
      expect(check.ok).toBe(false);
      return check.ok ? '' : check.reason;
    };
    // All of these have correct check digits.
    expect(bad('15138512301')).toBe('month is not 01-12'); // month 13
    expect(bad('15008512393')).toBe('month is not 01-12'); // month 00
    expect(bad('15438512346')).toBe('month is not 01-12'); // month + 40: synthetic
    expect(bad('15838512329')).toBe('month is not 01-12'); // month + 80: synthetic
    expect(bad('32018512318')).toBe('day is not a date in that month');
    expect(bad('72018512301')).toBe('day is not a date in that month'); // D-number day 32
    expect(bad('31048512359')).toBe('day is not a date in that month'); // 31 April
    expect(bad('29020110048')).toBe('day is not a date in that month'); // 29 Feb 2001/1901
    expect(bad('29020010027')).toBe('day is not a date in that month'); // 29 Feb 1900 (individual < 500)
    expect(checkNationalId('29020050088')).toEqual({ ok: true, kind: 'fnr' }); // 29 Feb 2000
  });

  it('never puts the number in a reason', () => {
    for (const pid of ['15038512353', '15038512364', '15138512301', '32018512318', '1503851236a']) {
      const check = checkNationalId(pid);
      expect(check.ok).toBe(false);
      if (!check.ok) expect(check.reason).not.toMatch(/\d{4}/);
    }
  });
});

describe('generateNationalId', () => {
  it('yields 1000 valid fødselsnummer and 1000 valid D-numbers, reproducibly', () => {
    const random = mulberry32(42);
    const fnrs = Array.from({ length: 1000 }, () => generateNationalId(random));
    const dnrs = Array.from({ length: 1000 }, () => generateNationalId(random, { dnr: true }));
    for (const pid of fnrs) expect(checkNationalId(pid)).toEqual({ ok: true, kind: 'fnr' });
    for (const pid of dnrs) expect(checkNationalId(pid)).toEqual({ ok: true, kind: 'dnr' });
    expect(new Set(fnrs).size).toBeGreaterThan(990);
    expect(generateNationalId(mulberry32(7))).toBe(generateNationalId(mulberry32(7)));
  });
});

describe('Referral schema', () => {
  const valid = makeReferral(mulberry32(1), {}, Date.parse('2025-03-01T09:00:00Z'));

  const pathsOf = (input: unknown) => {
    const result = Referral.safeParse(input);
    expect(result.success).toBe(false);
    return result.success ? [] : result.error.issues.map((i) => i.path.join('.'));
  };

  it('accepts a generated referral and trims names', () => {
    expect(Referral.parse(valid)).toEqual(valid);
    expect(Referral.parse({ ...valid, Firstname: '  Kari ', MessageTimestamp: '2025-03-01T10:00:00.123+01:00' })).toMatchObject({ Firstname: 'Kari' });
  });

  it.each([
    ['JournalGuid', 'not-a-guid'],
    ['JournalGuid', 42],
    ['PID', '15038512364'],
    ['PID', '1503851236'],
    ['FormatId', ''],
    ['FormatId', 'x'.repeat(65)],
    ['MessageTimestamp', '2025-03-01T09:00:00'],
    ['MessageTimestamp', '01.03.2025'],
    ['Firstname', '   '],
    ['Firstname', 'x'.repeat(101)],
    ['Lastname', ''],
    ['Email', 'kari.hansen'],
    ['PhoneNumber', '91234567'],
    ['PhoneNumber', '+0471234567'],
    ['PhoneNumber', '+47 912 34 567'],
  ])('puts a bad %s at path %s', (field, value) => {
    expect(pathsOf({ ...valid, [field]: value })).toEqual([field]);
  });

  it('reports a missing field at its path', () => {
    const { Email: _, ...withoutEmail } = valid;
    expect(pathsOf(withoutEmail)).toEqual(['Email']);
  });

  it('rejects unknown keys', () => {
    const result = Referral.safeParse({ ...valid, Ssn: '123' });
    expect(result.success).toBe(false);
    expect(result.error?.issues).toMatchObject([{ code: 'unrecognized_keys', keys: ['Ssn'] }]);
  });

  it('names the PID problem without quoting the number', () => {
    const result = Referral.safeParse({ ...valid, PID: '15038512364' });
    expect(result.error?.issues).toMatchObject([{ path: ['PID'], message: 'not a valid national identity number: second check digit does not match' }]);
    expect(JSON.stringify(result.error?.issues)).not.toContain('15038512364');
  });
});

describe('referral sender', () => {
  const servers: Server[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
  });

  /** A webhook endpoint that checks signatures and bodies as ours must, recording what it accepted. */
  async function endpoint(nowSec: () => number) {
    const accepted: Referral[] = [];
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const check = verifyReferralSignature({
          secret: SECRET,
          body,
          signature: req.headers['x-signature'] as string | undefined,
          timestamp: req.headers['x-timestamp'] as string | undefined,
          nowSec: nowSec(),
        });
        if (!check.ok) return res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ error: check.reason }));
        const parsed = Referral.safeParse(JSON.parse(body));
        if (!parsed.success) return res.writeHead(422, { 'content-type': 'application/json' }).end(JSON.stringify({ fields: parsed.error.issues.map((i) => i.path.join('.')) }));
        accepted.push(parsed.data);
        res.writeHead(202, { 'content-type': 'application/json' }).end(JSON.stringify({ received: parsed.data.JournalGuid }));
      });
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhooks/pridok/referrals`, accepted };
  }

  it('sends signed, valid referrals that a checking endpoint accepts', async () => {
    const { url, accepted } = await endpoint(() => Math.floor(Date.now() / 1000));
    const sender = startReferralSender({ url, secret: SECRET, seed: 3 });
    const first = await sender.sendOne();
    expect(first).toEqual({ status: 202, body: { received: first.referral.JournalGuid }, referral: first.referral });
    const second = await sender.sendOne({ Firstname: 'Kari' });
    expect(second.referral.Firstname).toBe('Kari');
    expect(second.referral.JournalGuid).not.toBe(first.referral.JournalGuid);
    expect(accepted).toEqual([first.referral, second.referral]);
    expect(sender.sent).toBe(2);
    sender.stop();
    await expect(sender.sendOne()).rejects.toThrow('stopped');
  });

  it('reproduces referrals from a seed and a clock', () => {
    const at = Date.parse('2025-03-01T09:00:00Z');
    expect(makeReferral(mulberry32(9), {}, at)).toEqual(makeReferral(mulberry32(9), {}, at));
    expect(makeReferral(mulberry32(9), {}, at)).not.toEqual(makeReferral(mulberry32(10), {}, at));
  });

  it('lets a test send a bad signature, an old timestamp or an invalid field', async () => {
    const { url, accepted } = await endpoint(() => NOW);
    const referral = makeReferral(mulberry32(5), {}, NOW * 1000);
    const post = async ({ body, headers }: { body: string; headers: Record<string, string> }) => {
      const res = await fetch(url, { method: 'POST', body, headers });
      return { status: res.status, body: await res.json() };
    };
    expect(await post(signedRequest('wrong secret', referral, NOW))).toEqual({ status: 401, body: { error: 'mismatch' } });
    expect(await post(signedRequest(SECRET, referral, NOW - 3600))).toEqual({ status: 401, body: { error: 'stale' } });
    expect(await post(signedRequest(SECRET, { ...referral, PID: '15038512364' }, NOW))).toEqual({ status: 422, body: { fields: ['PID'] } });
    expect(await post(signedRequest(SECRET, referral, NOW))).toMatchObject({ status: 202 });
    expect(accepted).toEqual([referral]);
  });

  it('trickles referrals until stopped', async () => {
    const { url, accepted } = await endpoint(() => Math.floor(Date.now() / 1000));
    const sender = startReferralSender({ url, secret: SECRET });
    const stop = sender.trickle(5);
    await vi.waitFor(() => expect(accepted.length).toBeGreaterThanOrEqual(3), { timeout: 5_000, interval: 10 });
    stop();
    const count = sender.sent;
    await new Promise((resolve) => setTimeout(resolve, 50));
    // At most the request in flight when stop() was called.
    expect(sender.sent - count).toBeLessThanOrEqual(1);
    expect(sender.errors).toEqual([]);
    sender.stop();
  });
});
