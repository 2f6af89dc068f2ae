import { assign, fromPromise, setup } from 'xstate';

/**
 * One patient's care-record sync with one insurer (key `KK01:P-000042`). Each attempt is an
 * injected effect that takes the insurer line, asks for the records and stores the outcome; the
 * machine decides what comes next. A sync asked for while one is under way joins it.
 */
export type SyncKind = 'interactive' | 'bulk';

export interface AttemptInput {
  insurerId: string;
  patientId: string;
  syncIds: string[];
  kind: SyncKind;
  /** 1 for the first attempt. */
  attempt: number;
}

export type AttemptOutput =
  | { outcome: 'done' }
  | { outcome: 'gone' }
  | { outcome: 'failed'; error: string }
  | { outcome: 'retry'; error: string; delayMs: number };

export interface InsurerPatientContext {
  insurerId: string;
  patientId: string;
  /** Syncs waiting for this patient's records. */
  syncIds: string[];
  /** The syncs the attempt under way was started for (later ones get an attempt of their own). */
  inAttempt: string[];
  kind: SyncKind;
  attempt: number;
  lastError: string | null;
  retryDelayMs: number;
  /** Syncs finished over the actor's life, by outcome (a few numbers, not a list). */
  totals: { done: number; gone: number; failed: number };
}

export type InsurerPatientEvent = { type: 'sync'; syncId: string; kind: SyncKind };

/** Bound on the syncs joined to one attempt; more are recorded but not listed. */
const MAX_JOINED = 32;

export const insurerPatientMachine = setup({
  types: {} as {
    context: InsurerPatientContext;
    events: InsurerPatientEvent;
    input: { insurerId: string; patientId: string };
  },
  actors: {
    attempt: fromPromise<AttemptOutput, AttemptInput>(async () => {
      throw new Error('attempt effect not provided');
    }),
  },
  delays: {
    retryDelay: ({ context }) => context.retryDelayMs,
  },
  guards: {
    moreWaiting: ({ context }) => context.syncIds.length > 0,
    upgrades: ({ context, event }) => event.kind === 'interactive' && context.kind === 'bulk',
    succeeded: (_, output: AttemptOutput) => output.outcome === 'done',
    gone: (_, output: AttemptOutput) => output.outcome === 'gone',
    gaveUp: (_, output: AttemptOutput) => output.outcome === 'failed',
  },
  actions: {
    join: assign(({ context, event }) => ({
      syncIds: context.syncIds.includes(event.syncId) || context.syncIds.length >= MAX_JOINED ? context.syncIds : [...context.syncIds, event.syncId],
      kind: event.kind === 'interactive' ? ('interactive' as const) : context.kind,
    })),
    /** The attempt's syncs are settled; syncs that joined during it stay for the next one. */
    finish: assign(({ context }, outcome: 'done' | 'gone' | 'failed') => ({
      syncIds: context.syncIds.filter((id) => !context.inAttempt.includes(id)),
      kind: context.syncIds.some((id) => !context.inAttempt.includes(id)) ? context.kind : ('bulk' as const),
      inAttempt: [],
      attempt: 0,
      retryDelayMs: 0,
      totals: { ...context.totals, [outcome]: context.totals[outcome] + 1 },
    })),
  },
}).createMachine({
  id: 'insurerPatient',
  context: ({ input }) => ({
    insurerId: input.insurerId,
    patientId: input.patientId,
    syncIds: [],
    inAttempt: [],
    kind: 'bulk',
    attempt: 0,
    lastError: null,
    retryDelayMs: 0,
    totals: { done: 0, gone: 0, failed: 0 },
  }),
  initial: 'idle',
  states: {
    idle: {
      always: { guard: 'moreWaiting', target: 'attempting' },
      on: {
        sync: { target: 'attempting', actions: ['join', assign({ attempt: 0, lastError: null })] },
      },
    },
    attempting: {
      entry: assign({ attempt: ({ context }) => context.attempt + 1, inAttempt: ({ context }) => context.syncIds }),
      invoke: {
        src: 'attempt',
        input: ({ context }) => ({
          insurerId: context.insurerId,
          patientId: context.patientId,
          syncIds: context.syncIds,
          kind: context.kind,
          attempt: context.attempt,
        }),
        onDone: [
          { guard: { type: 'succeeded', params: ({ event }) => event.output }, target: 'idle', actions: { type: 'finish', params: 'done' } },
          { guard: { type: 'gone', params: ({ event }) => event.output }, target: 'idle', actions: { type: 'finish', params: 'gone' } },
          {
            guard: { type: 'gaveUp', params: ({ event }) => event.output },
            target: 'idle',
            actions: [assign({ lastError: ({ event }) => (event.output as { error: string }).error }), { type: 'finish', params: 'failed' }],
          },
          {
            target: 'backoff',
            actions: assign(({ event }) => {
              const out = event.output as Extract<AttemptOutput, { outcome: 'retry' }>;
              return { lastError: out.error, retryDelayMs: out.delayMs };
            }),
          },
        ],
        // Storage trouble inside the effect: try again after a pause.
        onError: { target: 'backoff', actions: assign({ lastError: 'internal error', retryDelayMs: 5_000 }) },
      },
      on: {
        // Someone is waiting now: start over at interactive priority (the bulk attempt is
        // cancelled; the line drops it if it has not been sent).
        sync: [{ guard: 'upgrades', target: 'attempting', reenter: true, actions: 'join' }, { actions: 'join' }],
      },
    },
    backoff: {
      after: { retryDelay: 'attempting' },
      on: {
        // Someone is waiting for this patient now: try again at once rather than sit out the back-off.
        sync: [{ guard: ({ event }) => event.kind === 'interactive', target: 'attempting', actions: 'join' }, { actions: 'join' }],
      },
    },
  },
});
