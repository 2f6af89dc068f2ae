import { assign, fromPromise, setup } from 'xstate';

/**
 * One open visit in the practice system (key: the visit id). It owns the cache of the visit's
 * invoice line items (kept in a table by the fetch effect; the snapshot holds only when and how
 * it went) and refreshes it with its own durable timer when it reaches its max age. A failed
 * fetch backs off and the last good items keep being served; after `errorAfter` failures in a
 * row the actor shows `open.error` and keeps trying at a slower pace. Checkout makes one final
 * fetch (the invoice is made from it), then the items stay readable for the retention period.
 */

export interface FetchInput {
  visitId: string;
  /** The fetch the invoice is made from (at checkout). */
  final: boolean;
}

export type FetchOutput =
  | { outcome: 'ok'; fetchedAt: number; itemCount: number }
  /** The practice system does not know the visit (404). */
  | { outcome: 'unknown' }
  | { outcome: 'failed'; error: string; retryAfterMs?: number };

export interface VisitTiming {
  maxAgeMs: number;
  /** Failures in a row before the actor shows `error`. */
  errorAfter: number;
  /** First back-off; doubles per failure up to `maxBackoffMs`. */
  backoffMs: number;
  maxBackoffMs: number;
  /** Pace of retries once in `error`. */
  errorRetryMs: number;
  /** How long the last line items stay readable after checkout. */
  retentionMs: number;
  /** Share of the max age by which refreshes are spread (0.2: due between 80% and 100% of it). */
  jitter: number;
}

export const DEFAULT_VISIT_TIMING: VisitTiming = {
  maxAgeMs: 300_000,
  errorAfter: 5,
  backoffMs: 2_000,
  maxBackoffMs: 60_000,
  errorRetryMs: 120_000,
  retentionMs: 24 * 3600_000,
  jitter: 0.2,
};

export interface VisitContext {
  visitId: string;
  patientId: string | null;
  checkedInAt: string | null;
  /** Epoch ms of the last good fetch (null before the first). */
  fetchedAt: number | null;
  itemCount: number;
  /** Fetches that failed in a row. */
  failures: number;
  lastError: string | null;
  /** The wait the practice system named in its last 429 (0 if none). */
  retryAfterMs: number;
  fetches: number;
  checkedOutAt: number | null;
  /** Why the visit closed: checked out (the final fetch found it unknown: `unknown`). */
  closedBy: 'checkout' | 'unknown' | null;
}

export type VisitEvent =
  | { type: 'checkin'; patientId: string; checkedInAt: string }
  | { type: 'checkout'; at: number }
  | { type: 'refresh' };

/** A stable number in [0, 1) from a string: the same visit gets the same spread on every replay. */
export function spread(text: string): number {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 16777619);
  }
  return (h >>> 0) / 2 ** 32;
}

/**
 * The delays and the error threshold of a visit for given timing (pure: they read only the
 * context), for `visitMachine.provide(visitTiming(t))`. Jitter comes from the visit id and the
 * fetch count, not from a random source, so a replay computes the same due times, and thousands
 * of visits fetched together fall due spread over `jitter` of the max age.
 */
export function visitTiming(t: VisitTiming) {
  type Args = { context: VisitContext };
  return {
    delays: {
      refreshDelay: ({ context }: Args) => Math.round(t.maxAgeMs * (1 - t.jitter * spread(`${context.visitId}#${context.fetches}`))),
      retryDelay: ({ context }: Args) => {
        const exp = Math.min(t.maxBackoffMs, t.backoffMs * 2 ** Math.max(0, context.failures - 1));
        // Half fixed, half spread: capped exponential with jitter, never under a named Retry-After.
        return Math.max(Math.round(exp / 2 + (exp / 2) * spread(`${context.visitId}!${context.failures}`)), context.retryAfterMs);
      },
      errorRetryDelay: ({ context }: Args) =>
        Math.max(context.retryAfterMs, Math.round(t.errorRetryMs * (1 - 0.25 * spread(`${context.visitId}~${context.failures}`)))),
      retention: () => t.retentionMs,
    },
    guards: {
      /**
       * This failure makes `errorAfter` in a row (the count is raised by the same transition).
       * A 429 is the practice system pacing us, not failing: it never makes a visit show `error`.
       */
      tooMany: ({ context }: Args, out: FetchOutput) => context.failures + 1 >= t.errorAfter && !(out.outcome === 'failed' && out.retryAfterMs),
    },
  };
}

const defaults = visitTiming(DEFAULT_VISIT_TIMING);
const INTERNAL: FetchOutput = { outcome: 'failed', error: 'internal error' };

export const visitMachine = setup({
  types: {} as { context: VisitContext; events: VisitEvent; input: { visitId: string } },
  actors: {
    fetchItems: fromPromise<FetchOutput, FetchInput>(async () => {
      throw new Error('fetchItems effect not provided');
    }),
    removeItems: fromPromise<void, { visitId: string }>(async () => {
      throw new Error('removeItems effect not provided');
    }),
  },
  delays: defaults.delays,
  guards: {
    ok: (_, out: FetchOutput): boolean => out.outcome === 'ok',
    unknown: (_, out: FetchOutput): boolean => out.outcome === 'unknown',
    ...defaults.guards,
  },
  actions: {
    checkedIn: assign(({ event }) =>
      event.type === 'checkin'
        ? { patientId: event.patientId, checkedInAt: event.checkedInAt, failures: 0, lastError: null, retryAfterMs: 0, checkedOutAt: null, closedBy: null }
        : {},
    ),
    fetched: assign(({ context }, out: FetchOutput) =>
      out.outcome === 'ok' ? { fetchedAt: out.fetchedAt, itemCount: out.itemCount, failures: 0, lastError: null, retryAfterMs: 0, fetches: context.fetches + 1 } : {},
    ),
    failed: assign(({ context }, out: FetchOutput) => ({
      failures: context.failures + 1,
      lastError: out.outcome === 'failed' ? out.error : out.outcome === 'unknown' ? 'the practice system does not know this visit (404)' : 'fetch failed',
      retryAfterMs: out.outcome === 'failed' ? (out.retryAfterMs ?? 0) : 0,
    })),
  },
}).createMachine({
  id: 'visit',
  context: ({ input }) => ({
    visitId: input.visitId,
    patientId: null,
    checkedInAt: null,
    fetchedAt: null,
    itemCount: 0,
    failures: 0,
    lastError: null,
    retryAfterMs: 0,
    fetches: 0,
    checkedOutAt: null,
    closedBy: null,
  }),
  initial: 'new',
  states: {
    new: {
      on: { checkin: { target: 'open', actions: 'checkedIn' } },
    },
    open: {
      initial: 'fetching',
      on: {
        // The same visit checked in again (the census, a resent hook): nothing to do.
        checkin: {},
        checkout: { target: 'closing', actions: assign(({ event }) => ({ checkedOutAt: event.at })) },
      },
      states: {
        fetching: {
          invoke: {
            src: 'fetchItems',
            input: ({ context }) => ({ visitId: context.visitId, final: false }),
            onDone: [
              { guard: { type: 'ok', params: ({ event }) => event.output }, target: 'fresh', actions: { type: 'fetched', params: ({ event }) => event.output } },
              // Unknown (404) while open is a failure like another: a visit the practice system
              // does not know yet is tried again; one it closed is checked out by the census.
              { guard: { type: 'tooMany', params: ({ event }) => event.output }, target: 'error', actions: { type: 'failed', params: ({ event }) => event.output } },
              { target: 'retrying', actions: { type: 'failed', params: ({ event }) => event.output } },
            ],
            // Storage trouble inside the effect: counted like a failed fetch.
            onError: [
              { guard: { type: 'tooMany', params: INTERNAL }, target: 'error', actions: { type: 'failed', params: INTERNAL } },
              { target: 'retrying', actions: { type: 'failed', params: INTERNAL } },
            ],
          },
          // Already fetching: a reader asking for fresh items waits for this fetch.
          on: { refresh: {} },
        },
        fresh: {
          after: { refreshDelay: 'fetching' },
          on: { refresh: 'fetching' },
        },
        // Backing off: a reader's refresh does not cut the back-off (or a Retry-After) short.
        retrying: {
          after: { retryDelay: 'fetching' },
          on: { refresh: {} },
        },
        error: {
          after: { errorRetryDelay: 'fetching' },
          on: { refresh: {} },
        },
      },
    },
    closing: {
      invoke: {
        src: 'fetchItems',
        input: ({ context }) => ({ visitId: context.visitId, final: true }),
        onDone: [
          { guard: { type: 'ok', params: ({ event }) => event.output }, target: 'closed', actions: [{ type: 'fetched', params: ({ event }) => event.output }, assign({ closedBy: 'checkout' })] },
          { guard: { type: 'unknown', params: ({ event }) => event.output }, target: 'closed', actions: assign({ closedBy: 'unknown' }) },
          { guard: { type: 'tooMany', params: ({ event }) => event.output }, target: 'closingError', actions: { type: 'failed', params: ({ event }) => event.output } },
          { target: 'closingRetry', actions: { type: 'failed', params: ({ event }) => event.output } },
        ],
        onError: [
          { guard: { type: 'tooMany', params: INTERNAL }, target: 'closingError', actions: { type: 'failed', params: INTERNAL } },
          { target: 'closingRetry', actions: { type: 'failed', params: INTERNAL } },
        ],
      },
      on: { checkin: {}, checkout: {}, refresh: {} },
    },
    /** The final fetch failed: tried again, backing off; the last good items stay readable. */
    closingRetry: {
      after: { retryDelay: 'closing' },
      on: { checkin: {}, checkout: {}, refresh: {} },
    },
    /** The final fetch failed `errorAfter` times in a row: shown, and tried at the slower pace. */
    closingError: {
      after: { errorRetryDelay: 'closing' },
      on: { checkin: {}, checkout: {}, refresh: {} },
    },
    closed: {
      after: { retention: 'removing' },
      // A new check-in of the same visit id (another `checkedInAt`) opens it again.
      on: { checkin: { target: 'open', actions: 'checkedIn' }, checkout: {}, refresh: {} },
    },
    removing: {
      invoke: { src: 'removeItems', input: ({ context }) => ({ visitId: context.visitId }), onDone: 'removed', onError: 'removalRetry' },
      on: { checkin: {}, checkout: {}, refresh: {} },
    },
    removalRetry: {
      after: { retryDelay: 'removing' },
      on: { checkin: {}, checkout: {}, refresh: {} },
    },
    /** Items deleted, and who the visit was for forgotten. */
    removed: {
      entry: assign({ patientId: null, checkedInAt: null, itemCount: 0, fetchedAt: null }),
      on: { checkin: { target: 'open', actions: 'checkedIn' }, checkout: {}, refresh: {} },
    },
  },
});
