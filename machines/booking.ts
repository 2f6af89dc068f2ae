import { assign, setup } from 'xstate';

/**
 * One booking of the telemedicine service (key: the booking id). It comes from a referral (the
 * health-record system's webhook) or is made directly by a secretary; `createdAt` starts the
 * contractual clock. A secretary screens it by calling the patient: each attempt is recorded
 * (reached or not); one not reached arms a follow-up timer (the booking shows as due for another
 * call); a booking nobody reached within the expiry period expires. Once reached, the secretary
 * creates a consultation or declines.
 */
export type BookingFlow = 'referral' | 'direct';

export interface CallAttempt {
  at: number;
  reached: boolean;
  by: string;
}

export interface BookingContext {
  bookingId: string;
  flow: BookingFlow | null;
  userId: string | null;
  /** The referring insurer (referrals only). */
  insurer: string | null;
  createdAt: number | null;
  attempts: CallAttempt[];
  consultationId: string | null;
  declineReason: string | null;
  /** A call did not reach the patient and the next one is due now. */
  followUpDue: boolean;
}

export type BookingEvent =
  | { type: 'create'; flow: BookingFlow; userId: string; insurer: string | null; at: number }
  | { type: 'screened'; reached: boolean; at: number; by: string }
  | { type: 'createConsultation'; consultationId: string; at: number }
  | { type: 'decline'; reason: string; at: number };

export interface BookingTiming {
  /** A call that did not reach the patient: the next one is due after this. */
  followUpMs: number;
  /** Not reached within this from creation: expired. */
  expireMs: number;
}

export const DEFAULT_BOOKING_TIMING: BookingTiming = { followUpMs: 4 * 3600_000, expireMs: 7 * 24 * 3600_000 };

/** Attempts kept in the snapshot (more are counted, not listed). */
const MAX_ATTEMPTS = 50;

/**
 * The delays for given timing. Expiry counts from creation: `received` is entered then, and
 * `screening` when the first attempt failed, so its wait is what is left from that moment.
 */
export function bookingTiming(t: BookingTiming) {
  return {
    delays: {
      followUp: () => t.followUpMs,
      expiry: ({ context }: { context: BookingContext }) => {
        const last = context.attempts.at(-1);
        return last && context.createdAt !== null ? Math.max(0, context.createdAt + t.expireMs - last.at) : t.expireMs;
      },
    },
  };
}

export const bookingMachine = setup({
  types: {} as { context: BookingContext; events: BookingEvent; input: { bookingId: string } },
  delays: bookingTiming(DEFAULT_BOOKING_TIMING).delays,
  guards: {
    reached: ({ event }) => event.type === 'screened' && event.reached,
  },
  actions: {
    recordAttempt: assign(({ context, event }) =>
      event.type === 'screened' ? { attempts: [...context.attempts, { at: event.at, reached: event.reached, by: event.by }].slice(-MAX_ATTEMPTS), followUpDue: false } : {},
    ),
  },
}).createMachine({
  id: 'booking',
  context: ({ input }) => ({
    bookingId: input.bookingId,
    flow: null,
    userId: null,
    insurer: null,
    createdAt: null,
    attempts: [],
    consultationId: null,
    declineReason: null,
    followUpDue: false,
  }),
  initial: 'new',
  states: {
    new: {
      on: {
        create: {
          target: 'received',
          actions: assign(({ event }) => ({ flow: event.flow, userId: event.userId, insurer: event.insurer, createdAt: event.at })),
        },
      },
    },
    // Until the patient is reached, the expiry clock runs (from creation: entered at once).
    received: {
      after: { expiry: 'expired' },
      on: {
        screened: [{ guard: 'reached', target: 'screened', actions: 'recordAttempt' }, { target: 'screening', actions: 'recordAttempt' }],
        decline: { target: 'declined', actions: assign(({ event }) => ({ declineReason: event.reason })) },
      },
    },
    /** Called, not reached: a follow-up call falls due after a while. */
    screening: {
      initial: 'waiting',
      after: { expiry: 'expired' },
      states: {
        waiting: { after: { followUp: { target: 'follow_up_due', actions: assign({ followUpDue: true }) } } },
        follow_up_due: {},
      },
      on: {
        screened: [{ guard: 'reached', target: 'screened', actions: 'recordAttempt' }, { target: '.waiting', reenter: true, actions: 'recordAttempt' }],
        decline: { target: 'declined', actions: assign(({ event }) => ({ declineReason: event.reason })) },
      },
    },
    /** Reached: the secretary decides. */
    screened: {
      on: {
        screened: { actions: 'recordAttempt' },
        createConsultation: { target: 'consultation_created', actions: assign(({ event }) => ({ consultationId: event.consultationId })) },
        decline: { target: 'declined', actions: assign(({ event }) => ({ declineReason: event.reason })) },
      },
    },
    consultation_created: { type: 'final' },
    declined: { type: 'final' },
    expired: { type: 'final' },
  },
});
