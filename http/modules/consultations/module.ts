import { z } from 'zod';
import { fromPromise } from 'xstate';
import type { Clock } from '../../../actors/clock.ts';
import type { ActorSystem, RuntimeLogger } from '../../../actors/system.ts';
import { createCommsClient, type CommsClient } from '../../../integrations/comms/client.ts';
import { CommsProtocolError, CommsRejectedError } from '../../../integrations/comms/errors.ts';
import { bookingMachine, bookingTiming, DEFAULT_BOOKING_TIMING, type BookingTiming } from '../../../machines/booking.ts';
import {
  consultationMachine,
  consultationTiming,
  DEFAULT_CONSULTATION_TIMING,
  OUTCOMES,
  type ConsultationTiming,
  type ProvisionOutput,
} from '../../../machines/consultation.ts';
import type { FieldCipher } from '../../../storage/crypto.ts';
import type { Db } from '../../../storage/db.ts';
import { ResultStore } from '../../../storage/consultations/records.ts';
import { UserStore } from '../../../storage/consultations/users.ts';
import { consultationMetrics } from './report.ts';

export interface ConsultationSettings {
  /** PRIDOK_WEBHOOK_SECRET: the referral webhook's HMAC key. */
  webhookSecret: string;
  /** The insurer whose customers the record system refers (users created from referrals are tagged with it). */
  referringInsurer: string;
  commsUrl: string;
  booking?: Partial<BookingTiming>;
  consultation?: Partial<ConsultationTiming>;
}

export interface ConsultationModuleOptions {
  db: Db;
  system: ActorSystem;
  clock: Clock;
  logger: RuntimeLogger;
  cipher: FieldCipher;
  settings: ConsultationSettings;
  comms?: CommsClient;
}

export const BOOKING_ID = /^bkg_[0-9a-f-]{36}$/;
export const CONSULTATION_ID = /^con_[0-9a-f-]{36}$/;
export const SP_ID = /^[A-Za-z0-9._:@-]{1,100}$/;

/**
 * Referral → booking → consultation: registers the `booking` and `consultation` actor types
 * with their effects, and holds the stores of users and results.
 */
export function createConsultationModule(o: ConsultationModuleOptions) {
  const users = new UserStore(o.db, o.cipher);
  const results = new ResultStore(o.db, o.cipher);
  const comms = o.comms ?? createCommsClient({ baseUrl: o.settings.commsUrl, timeoutMs: 5_000 });
  const stats = { slaAlerts: 0 };
  const metrics = consultationMetrics();
  const timing = { ...DEFAULT_CONSULTATION_TIMING, ...o.settings.consultation };

  /**
   * Starting a consultation: a chat room, a video room, and the link mailed to the patient.
   * Each call has a key derived from the consultation, so a retry after a lost answer gets the
   * provider's first answer back: the rooms are made, and the link mailed, exactly once.
   */
  const provision = fromPromise<ProvisionOutput, { consultationId: string; userId: string }>(async ({ input, signal }) => {
    const id = input.consultationId;
    try {
      const chat = await comms.createRoom('chat', id, `consultation:${id}:chat`, signal);
      const video = await comms.createRoom('video', id, `consultation:${id}:video`, signal);
      const contact = await users.contact(input.userId, { principal: `consultation:${id}`, role: 'system', reason: 'consultation start: link to the patient' }, o.clock.now());
      if (!contact?.email) throw Object.assign(new Error('the patient has no e-mail address to send the link to'), { permanent: true });
      const sent = await comms.sendLink({ to: contact.email, link: video.url, consultationId: id }, `consultation:${id}:link`, signal);
      return { chat: { roomId: chat.roomId, url: chat.url }, video: { roomId: video.roomId, url: video.url }, messageId: sent.messageId };
    } catch (err) {
      // Refused for good by the provider: retrying with the same request would not help.
      if (err instanceof CommsRejectedError || err instanceof CommsProtocolError) (err as Error & { permanent?: boolean }).permanent = true;
      // The message names the provider's status, never the address.
      o.logger.warn({ consultation: id, err: (err as Error).message }, 'consultation set-up failed; retrying');
      throw err;
    }
  });

  o.system.register({
    name: 'booking',
    machine: bookingMachine.provide(bookingTiming({ ...DEFAULT_BOOKING_TIMING, ...o.settings.booking })),
    input: (key) => ({ bookingId: key }),
    keyPattern: BOOKING_ID,
    domainOnly: true,
    sensitive: ['declineReason'],
    events: {
      create: z.strictObject({ flow: z.enum(['referral', 'direct']), userId: z.string().min(1).max(100), insurer: z.string().max(100).nullable(), at: z.number().int() }),
      screened: z.strictObject({ reached: z.boolean(), at: z.number().int(), by: z.string().min(1).max(200) }),
      createConsultation: z.strictObject({ consultationId: z.string().regex(CONSULTATION_ID), at: z.number().int() }),
      decline: z.strictObject({ reason: z.string().min(1).max(2_000), at: z.number().int() }),
    },
    idleTimeoutMs: 60_000,
  });
  o.system.register({
    name: 'consultation',
    machine: consultationMachine.provide({
      actors: { provision },
      actions: {
        slaAlert: ({ context }) => {
          stats.slaAlerts++;
          metrics.slaAlerts.inc();
          o.logger.warn({ consultation: context.consultationId, waitingMs: o.clock.now() - (context.createdAt ?? o.clock.now()) }, 'consultation not picked up within its SLA');
        },
      },
      ...consultationTiming(timing),
    }),
    input: (key) => ({ consultationId: key }),
    keyPattern: CONSULTATION_ID,
    domainOnly: true,
    sensitive: ['cancelReason'],
    events: {
      create: z.strictObject({ bookingId: z.string().regex(BOOKING_ID), userId: z.string().min(1).max(100), at: z.number().int(), slaDueAt: z.number().int() }),
      pickup: z.strictObject({ spId: z.string().regex(SP_ID), at: z.number().int() }),
      assign: z.strictObject({ spId: z.string().regex(SP_ID), at: z.number().int() }),
      release: z.strictObject({ at: z.number().int() }),
      start: z.strictObject({ spId: z.string().regex(SP_ID), at: z.number().int() }),
      complete: z.strictObject({ spId: z.string().regex(SP_ID), outcome: z.enum(OUTCOMES), at: z.number().int() }),
      // Sealed by the API: free text stays out of the journal and the snapshot.
      cancel: z.strictObject({ reason: z.string().min(1).max(2_000), at: z.number().int() }),
    },
    idleTimeoutMs: 60_000,
  });

  return { users, results, comms, stats, settings: o.settings, metrics, timing };
}

export type ConsultationModule = ReturnType<typeof createConsultationModule>;
