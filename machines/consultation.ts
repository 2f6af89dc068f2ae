import { assign, fromPromise, setup } from 'xstate';

/**
 * One consultation (key: the consultation id), in exactly these states: `ready_for_pickup` (in
 * the queue), `pending_sp` (picked up by a doctor or assigned by a secretary), `in_progress`,
 * `completed`, `cancelled`. Starting it sets up a chat and a video room and sends the patient a
 * link: an injected effect that uses idempotency keys, retried with back-off until it gets
 * through, so a lost call is retried and the link is sent exactly once. A consultation not picked
 * up within its SLA raises an alert (durable timer). The result is a medical record and is not
 * here: it is stored encrypted beside the actor; the snapshot knows only its outcome category.
 */
export const OUTCOMES = ['referred_gp', 'helped', 'unable', 'referred_specialist', 'no_show'] as const;
export type Outcome = (typeof OUTCOMES)[number];

export interface Room {
  roomId: string;
  url: string;
}

export interface ProvisionOutput {
  chat: Room;
  video: Room;
  messageId: string;
}

export interface ConsultationContext {
  consultationId: string;
  bookingId: string | null;
  userId: string | null;
  createdAt: number | null;
  /** When it (last) joined the queue: created, or released. */
  queuedAt: number | null;
  /** When the SLA for pick-up ends (from creation). */
  slaDueAt: number | null;
  assignedAt: number | null;
  spId: string | null;
  startsAt: number | null;
  endsAt: number | null;
  outcome: Outcome | null;
  /** Sealed by the API (free text may name the patient's circumstances). */
  cancelReason: string | null;
  slaBreachedAt: number | null;
  chat: Room | null;
  video: Room | null;
  linkMessageId: string | null;
  provisionAttempts: number;
  lastError: string | null;
}

export type ConsultationEvent =
  | { type: 'create'; bookingId: string; userId: string; at: number; slaDueAt: number }
  | { type: 'pickup'; spId: string; at: number }
  | { type: 'assign'; spId: string; at: number }
  | { type: 'release'; at: number }
  /** `spId`: who starts (completes) it; only the doctor it is assigned to may. */
  | { type: 'start'; spId: string; at: number }
  | { type: 'complete'; spId: string; outcome: Outcome; at: number }
  | { type: 'cancel'; reason: string; at: number };

export interface ConsultationTiming {
  /** Not picked up within this from creation: an alert (the API puts the due time in `create`). */
  slaMs: number;
  /** First back-off of the room/link set-up; doubles up to `maxBackoffMs`. */
  backoffMs: number;
  maxBackoffMs: number;
}

export const DEFAULT_CONSULTATION_TIMING: ConsultationTiming = { slaMs: 30 * 60_000, backoffMs: 1_000, maxBackoffMs: 60_000 };

export function consultationTiming(t: ConsultationTiming) {
  return {
    delays: {
      /** What is left of the SLA when it (re)joins the queue; none left: at once. */
      sla: ({ context }: { context: ConsultationContext }) => Math.max(0, (context.slaDueAt ?? (context.createdAt ?? 0) + t.slaMs) - (context.queuedAt ?? context.createdAt ?? 0)),
      provisionRetry: ({ context }: { context: ConsultationContext }) => Math.min(t.maxBackoffMs, t.backoffMs * 2 ** Math.max(0, context.provisionAttempts - 1)),
    },
  };
}

export const consultationMachine = setup({
  types: {} as { context: ConsultationContext; events: ConsultationEvent; input: { consultationId: string } },
  actors: {
    provision: fromPromise<ProvisionOutput, { consultationId: string; userId: string }>(async () => {
      throw new Error('provision effect not provided');
    }),
  },
  guards: {
    /** The event comes from the doctor the consultation is assigned to. */
    assignedTo: ({ context, event }) => 'spId' in event && event.spId === context.spId,
  },
  actions: {
    /** The SLA passed in the queue: tell someone (provided at registration: a log line and a metric). */
    slaAlert: () => {},
  },
  delays: consultationTiming(DEFAULT_CONSULTATION_TIMING).delays,
}).createMachine({
  id: 'consultation',
  context: ({ input }) => ({
    consultationId: input.consultationId,
    bookingId: null,
    userId: null,
    createdAt: null,
    queuedAt: null,
    slaDueAt: null,
    assignedAt: null,
    spId: null,
    startsAt: null,
    endsAt: null,
    outcome: null,
    cancelReason: null,
    slaBreachedAt: null,
    chat: null,
    video: null,
    linkMessageId: null,
    provisionAttempts: 0,
    lastError: null,
  }),
  initial: 'new',
  states: {
    new: {
      on: {
        create: {
          target: 'ready_for_pickup',
          actions: assign(({ event }) => ({ bookingId: event.bookingId, userId: event.userId, createdAt: event.at, queuedAt: event.at, slaDueAt: event.slaDueAt })),
        },
      },
    },
    ready_for_pickup: {
      after: {
        sla: { guard: ({ context }) => context.slaBreachedAt === null, actions: [assign({ slaBreachedAt: ({ context }) => context.slaDueAt }), 'slaAlert'] },
      },
      on: {
        pickup: { target: 'pending_sp', actions: assign(({ event }) => ({ spId: event.spId, assignedAt: event.at })) },
        assign: { target: 'pending_sp', actions: assign(({ event }) => ({ spId: event.spId, assignedAt: event.at })) },
        cancel: { target: 'cancelled', actions: assign(({ event }) => ({ cancelReason: event.reason, endsAt: event.at })) },
      },
    },
    pending_sp: {
      on: {
        release: { target: 'ready_for_pickup', actions: assign(({ event }) => ({ spId: null, assignedAt: null, queuedAt: event.at })) },
        start: { guard: 'assignedTo', target: 'in_progress', actions: assign(({ event }) => ({ startsAt: event.at })) },
        cancel: { target: 'cancelled', actions: assign(({ event }) => ({ cancelReason: event.reason, endsAt: event.at })) },
      },
    },
    in_progress: {
      initial: 'provisioning',
      states: {
        provisioning: {
          entry: assign({ provisionAttempts: ({ context }) => context.provisionAttempts + 1 }),
          invoke: {
            src: 'provision',
            input: ({ context }) => ({ consultationId: context.consultationId, userId: context.userId! }),
            onDone: {
              target: 'live',
              actions: assign(({ event }) => ({ chat: event.output.chat, video: event.output.video, linkMessageId: event.output.messageId, lastError: null })),
            },
            onError: [
              // The provider refused for good (or the patient has no address): shown, not retried.
              {
                guard: ({ event }) => (event.error as { permanent?: boolean } | undefined)?.permanent === true,
                target: 'setup_failed',
                actions: assign({ lastError: ({ event }) => (event.error instanceof Error ? event.error.message : 'set-up refused') }),
              },
              { target: 'retrying', actions: assign({ lastError: ({ event }) => (event.error instanceof Error ? event.error.message : 'set-up failed') }) },
            ],
          },
        },
        retrying: { after: { provisionRetry: 'provisioning' } },
        live: {},
        /** The rooms or the link could not be made and retrying would not help: staff must act (cancel, or complete by phone). */
        setup_failed: {},
      },
      on: {
        complete: { guard: 'assignedTo', target: 'completed', actions: assign(({ event }) => ({ outcome: event.outcome, endsAt: event.at })) },
        cancel: { target: 'cancelled', actions: assign(({ event }) => ({ cancelReason: event.reason, endsAt: event.at })) },
      },
    },
    completed: { type: 'final' },
    cancelled: { type: 'final' },
  },
});
