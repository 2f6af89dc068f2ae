import { z } from 'zod';

/**
 * The practice system's payloads. Objects are plain `z.object`s: fields the system adds later
 * are accepted and dropped on parse, so what we store and compare is only what we understand.
 * The listed fields themselves are strict: a wrong type or a missing field is a contract break.
 */

/** An instant as ISO 8601 with a zone (`Z` or `+01:00`); a zone-less time would be ambiguous. */
export const IsoDateTime = z.iso.datetime({ offset: true });

/** A visit or patient id, e.g. `V-000042`. Sent back in URL paths, so it must not be empty. */
export const PimsId = z.string().min(1).max(128);

/** One open visit (a patient checked in and not yet discharged). */
export const Visit = z.object({
  id: PimsId,
  patientId: PimsId,
  checkedInAt: IsoDateTime,
});
export type Visit = z.infer<typeof Visit>;

/**
 * One billable line of a visit. Amounts are numbers in the practice's currency; `total` is the
 * system's own figure (quantity × unitPrice rounded to cents), kept as sent rather than recomputed.
 */
export const LineItem = z.object({
  id: PimsId,
  productName: z.string(),
  quantity: z.number(),
  unitPrice: z.number(),
  total: z.number(),
  updatedAt: IsoDateTime,
});
export type LineItem = z.infer<typeof LineItem>;

/** `GET /visits?status=open` answer. */
export const VisitsResponse = z.object({
  visits: z.array(Visit),
});
export type VisitsResponse = z.infer<typeof VisitsResponse>;

/** `GET /visits/{id}/line-items` answer. */
export const LineItemsResponse = z.object({
  items: z.array(LineItem),
});
export type LineItemsResponse = z.infer<typeof LineItemsResponse>;
