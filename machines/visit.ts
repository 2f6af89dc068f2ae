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
  /** Why the visit closed: checked out, or unknown to the practice system. */
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
      /** This failure makes `errorAfter` in a row (the count is raised by the same transition). */
      tooMany: ({ context }: Args) => context.failures + 1 >= t.errorAfter,
    },
  };
}

const defaults = visitTiming(DEFAULT_VISIT_TIMING);

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
    fetched: assign(({ context }, out: FetchOutput) =>
      out.outcome === 'ok' ? { fetchedAt: out.fetchedAt, itemCount: out.itemCount, failures: 0, lastError: null, retryAfterMs: 0, fetches: context.fetches + 1 } : {},
    ),
    failed: assign(({ context }, out: FetchOutput) => ({
      failures: context.failures + 1,
      lastError: out.outcome === 'failed' ? out.error : 'fetch failed',
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
      on: {
        checkin: {
          target: 'open',
          actions: assign(({ event }) => ({ patientId: event.patientId, checkedInAt: event.checkedInAt })),
        },
      },
    },
    open: {
      initial: 'fetching',
      on: {
        // A check-in hook for a visit already open (or the census finding it): nothing to do.
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
              { guard: { type: 'unknown', params: ({ event }) => event.output }, target: '#visit.closed', actions: assign({ closedBy: 'unknown' }) },
              { guard: 'tooMany', target: 'error', actions: { type: 'failed', params: ({ event }) => event.output } },
              { target: 'retrying', actions: { type: 'failed', params: ({ event }) => event.output } },
            ],
            // Storage trouble inside the effect: counted like a failed fetch.
            onError: [
              { guard: 'tooMany', target: 'error', actions: { type: 'failed', params: { outcome: 'failed', error: 'internal error' } } },
              { target: 'retrying', actions: { type: 'failed', params: { outcome: 'failed', error: 'internal error' } } },
            ],
          },
          // Already fetching: a reader asking for fresh items waits for this fetch.
          on: { refresh: {} },
        },
        fresh: {
          after: { refreshDelay: 'fetching' },
          on: { refresh: 'fetching' },
        },
        retrying: {
          after: { retryDelay: 'fetching' },
          on: { refresh: 'fetching' },
        },
        error: {
          after: { errorRetryDelay: 'fetching' },
          on: { refresh: 'fetching' },
        },
      },
    },
    closing: {
      invoke: {
        src: 'fetchItems',
        input: ({ context }) => ({ visitId: context.visitId, final: true }),
        onDone: [
          { guard: { type: 'ok', params: ({ event }) => event.output }, target: 'closed', actions: [{ type: 'fetched', params: ({ event }) => event.output }, assign({ closedBy: 'checkout' })] },
          { guard: { type: 'unknown', params: ({ event }) => event.output }, target: 'closed', actions: assign({ closedBy: 'checkout' }) },
          { target: 'closingRetry', actions: { type: 'failed', params: ({ event }) => event.output } },
        ],
        onError: { target: 'closingRetry', actions: { type: 'failed', params: { outcome: 'failed', error: 'internal error' } } },
      },
      on: { checkin: {}, checkout: {}, refresh: {} },
    },
    /** The final fetch failed: it is tried again (backing off) until it succeeds; the last good items stay readable. */
    closingRetry: {
      after: { retryDelay: 'closing' },
      on: { checkin: {}, checkout: {}, refresh: 'closing' },
    },
    closed: {
      after: { retention: 'removing' },
      on: { checkin: {}, checkout: {}, refresh: {} },
    },
    removing: {
      invoke: { src: 'removeItems', input: ({ context }) => ({ visitId: context.visitId }), onDone: 'removed', onError: 'closed' },
      on: { checkin: {}, checkout: {}, refresh: {} },
    },
    removed: { type: 'final' },
  },
});
