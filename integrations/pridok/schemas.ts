import { z } from 'zod';
import { checkNationalId } from './pid.ts';

/**
 * The referral webhook body. Field names are the record system's own (PascalCase), so issue
 * paths (`PID`, `Email`, ...) name exactly what the sender must fix.
 *
 * Strict, unlike the practice-system payloads: a referral creates a patient and a consultation,
 * so a key we do not know (a renamed field, a new mandatory one) must stop it rather than be
 * dropped. No message quotes a value: this body is patient data.
 */

/** A record-system GUID. Any 8-4-4-4-12 hex: z.uuid() would insist on RFC 9562 version bits. */
const JournalGuid = z.guid();

/** A fødselsnummer or D-number; the message says what is wrong, never the number. */
const NationalId = z.string().superRefine(function checkPid(value, ctx) {
  const check = checkNationalId(value);
  if (!check.ok) ctx.addIssue({ code: 'custom', message: `not a valid national identity number: ${check.reason}` });
});

/** Names are shown to clinicians and used in messages; surrounding whitespace is noise. */
const PersonName = z.string().trim().min(1).max(100);

/** E.164: a plus, a country code not starting with 0, 7 to 15 digits in all. */
export const E164 = z.string().regex(/^\+[1-9]\d{6,14}$/, 'must be an E.164 phone number, e.g. +4791234567');

export const Referral = z.strictObject({
  JournalGuid,
  PID: NationalId,
  /** The record system's form (message type) id, e.g. `henvisning-v2`. */
  FormatId: z.string().min(1).max(64),
  /** When the record system created the message: ISO 8601 with `Z` or an offset. */
  MessageTimestamp: z.iso.datetime({ offset: true }),
  Firstname: PersonName,
  Lastname: PersonName,
  Email: z.email(),
  PhoneNumber: E164,
});
export type Referral = z.infer<typeof Referral>;
