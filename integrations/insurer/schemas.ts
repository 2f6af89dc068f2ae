import { z } from 'zod';

/** A patient id as the insurer issues it; also safe to use in an actor key and a URL path. */
export const PatientId = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9._:-]+$/);

/** A calendar date, `YYYY-MM-DD`, checked to be a real day. */
export const IsoDate = z.iso.date();

/** One patient of a list page. Unknown fields (such as large filler) are dropped on parse. */
export const Patient = z.object({
  id: PatientId,
  firstName: z.string(),
  lastName: z.string(),
  birthDate: IsoDate,
});
export type Patient = z.infer<typeof Patient>;

/** `GET /patients` answer. `nextCursor` is null on the last page. */
export const PatientPage = z.object({
  patients: z.array(Patient),
  nextCursor: z.string().min(1).nullable(),
});
export type PatientPage = z.infer<typeof PatientPage>;

/**
 * One care record. The insurer adds fields over time; they are kept, not rejected.
 * Dates are `YYYY-MM-DD`; an open-ended record has `endsOn: null`.
 */
export const CareRecord = z.looseObject({
  id: z.string().min(1),
  type: z.string().min(1),
  startsOn: IsoDate,
  endsOn: IsoDate.nullable(),
});
export type CareRecord = z.infer<typeof CareRecord>;

/** `GET /patients/{id}/care-records` answer. */
export const CareRecordsBody = z.object({
  careRecords: z.array(CareRecord),
});
export type CareRecordsBody = z.infer<typeof CareRecordsBody>;
