import { z } from 'zod';

/**
 * The provider's payloads, shared by the client (answers) and the simulator (requests).
 * Requests are strict: the provider rejects what it does not understand. Answers are plain
 * objects: fields the provider adds later are accepted and dropped.
 */

export const RoomKind = z.enum(['chat', 'video']);
export type RoomKind = z.infer<typeof RoomKind>;

/** Our consultation id, echoed in the provider's records so support can find a room or mail. */
export const ConsultationId = z.string().min(1).max(128);

/** `POST /rooms` body. */
export const CreateRoomRequest = z.strictObject({
  kind: RoomKind,
  consultationId: ConsultationId,
});
export type CreateRoomRequest = z.infer<typeof CreateRoomRequest>;

/** `POST /rooms` answer (201). */
export const RoomCreated = z.object({
  roomId: z.string().min(1).max(128),
  /** Where the patient and the clinician join. */
  url: z.url({ protocol: /^https?$/ }),
});
export type RoomCreated = z.infer<typeof RoomCreated>;

/** The only template we send: a mail with the link to a consultation. */
export const CONSULTATION_LINK_TEMPLATE = 'consultation-link';

/** `POST /messages` body. */
export const SendMessageRequest = z.strictObject({
  to: z.email(),
  template: z.literal(CONSULTATION_LINK_TEMPLATE),
  link: z.url({ protocol: /^https?$/ }),
  consultationId: ConsultationId,
});
export type SendMessageRequest = z.infer<typeof SendMessageRequest>;

/** `POST /messages` answer (202: queued for delivery, not yet delivered). */
export const MessageAccepted = z.object({
  messageId: z.string().min(1).max(128),
});
export type MessageAccepted = z.infer<typeof MessageAccepted>;
