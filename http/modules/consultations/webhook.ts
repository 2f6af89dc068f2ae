import { randomUUID } from 'node:crypto';
import { Hono } from 'hono';
import type { Clock } from '../../../actors/clock.ts';
import type { ActorSystem } from '../../../actors/system.ts';
import { Referral } from '../../../integrations/pridok/schemas.ts';
import { verifyReferralSignature } from '../../../integrations/pridok/signature.ts';
import type { Db } from '../../../storage/db.ts';
import { findReferral, recordReferral } from '../../../storage/consultations/records.ts';
import type { AuthEnv } from '../../auth.ts';
import { ProblemError } from '../../problem.ts';
import { check } from '../../request.ts';
import type { ConsultationModule } from './module.ts';

export interface WebhookDeps {
  db: Db;
  system: ActorSystem;
  clock: Clock;
  module: ConsultationModule;
}

/**
 * `POST /webhooks/pridok/referrals`: the record system's signed referral. The signature is
 * checked on the raw body before anything is parsed; a bad or stale one is a 401 and nothing is
 * stored. A valid referral makes (or finds) the user and makes a booking: 201. The same
 * JournalGuid again answers 200 with what the first one made.
 */
export function pridokWebhook({ db, system, clock, module }: WebhookDeps) {
  const app = new Hono<AuthEnv>();
  app.post('/webhooks/pridok/referrals', async (c) => {
    const body = await c.req.text();
    const signature = verifyReferralSignature({
      secret: module.settings.webhookSecret,
      body,
      signature: c.req.header('x-signature'),
      timestamp: c.req.header('x-timestamp'),
      nowSec: Math.floor(clock.now() / 1000),
    });
    if (!signature.ok) {
      const field = signature.reason === 'stale' || (signature.reason === 'missing' && !c.req.header('x-timestamp')) ? 'X-Timestamp' : 'X-Signature';
      throw new ProblemError(401, `referral refused: signature ${signature.reason}`, field);
    }
    let json: unknown;
    try {
      json = JSON.parse(body);
    } catch {
      throw new ProblemError(400, 'malformed JSON', 'body');
    }
    const r = check(json, Referral, 422);
    const now = clock.now();
    const ctx = { principal: 'pridok', role: 'integration', reason: `referral ${r.JournalGuid}` };
    let made = await findReferral(db, r.JournalGuid);
    let fresh = false;
    if (!made) {
      made = await db.tx(async (tx) => {
        const user = await module.users.fetchOrCreate(
          { nationalId: r.PID, firstName: r.Firstname, lastName: r.Lastname, email: r.Email, phone: r.PhoneNumber, referredBy: module.settings.referringInsurer },
          ctx,
          now,
          tx,
        );
        const bookingId = `bkg_${randomUUID()}`;
        fresh = await recordReferral(tx, { journalGuid: r.JournalGuid, bookingId, userId: user.id, formatId: r.FormatId, receivedAt: now });
        // Sent twice at once: the other one recorded it first; answer with its booking.
        return fresh ? { bookingId, userId: user.id, receivedAt: now } : undefined;
      });
      made ??= await findReferral(db, r.JournalGuid);
    }
    if (!made) throw new ProblemError(503, 'the referral could not be recorded; send it again', 'JournalGuid');
    // The booking's creation is keyed, and dated by the referral's receipt, so a resent referral
    // (or one whose first answer was lost after the referral was recorded) creates it once,
    // with its contractual clock started when the referral first arrived.
    await system.sendAndWait('booking', made.bookingId, { type: 'create', flow: 'referral', userId: made.userId, insurer: module.settings.referringInsurer, at: made.receivedAt }, { idempotencyKey: 'create' });
    return c.json({ bookingId: made.bookingId, userId: made.userId }, fresh ? 201 : 200);
  });
  return app;
}
