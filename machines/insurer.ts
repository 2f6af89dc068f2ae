import { assign, fromPromise, setup } from 'xstate';

/**
 * The supervisor of one insurer (key `KK01`): runs the full sync, daily and on demand, one at a
 * time. Each phase is an injected effect that resumes from what storage says was done, so a run
 * survives restarts: listing (page by page, marking patients and scheduling new ones'
 * care-record syncs), sweeping (deleting patients the listing no longer has), then waiting for
 * the run's patient syncs to finish. The line to the insurer and its pause live outside.
 */
export type RunTrigger = 'daily' | 'manual';

export interface RunInput {
  insurerId: string;
  runId: string;
}

export interface InsurerContext {
  insurerId: string;
  runId: string | null;
  trigger: RunTrigger | null;
  lastError: string | null;
  /** Next daily run, computed by the `nextDaily` effect (time zones are IO-side). */
  daily: { runId: string; delayMs: number } | null;
  runs: number;
}

/** `wake` brings a new supervisor to life so its daily timer is set; it changes nothing. */
export type InsurerEvent = { type: 'sync'; runId: string; trigger: RunTrigger } | { type: 'wake' };

export const insurerMachine = setup({
  types: {} as { context: InsurerContext; events: InsurerEvent; input: { insurerId: string } },
  actors: {
    nextDaily: fromPromise<{ runId: string; delayMs: number }, { insurerId: string }>(async () => {
      throw new Error('nextDaily effect not provided');
    }),
    startRun: fromPromise<void, RunInput & { trigger: RunTrigger }>(async () => {
      throw new Error('startRun effect not provided');
    }),
    /** Resolves with an error text when the listing gave up (the run fails), else null. */
    listPatients: fromPromise<{ gaveUp: string | null }, RunInput>(async () => {
      throw new Error('listPatients effect not provided');
    }),
    sweep: fromPromise<void, RunInput>(async () => {
      throw new Error('sweep effect not provided');
    }),
    awaitSyncs: fromPromise<void, RunInput>(async () => {
      throw new Error('awaitSyncs effect not provided');
    }),
    finishRun: fromPromise<void, RunInput & { outcome: 'completed' | 'failed'; error: string | null }>(async () => {
      throw new Error('finishRun effect not provided');
    }),
  },
  delays: {
    untilDaily: ({ context }) => context.daily?.delayMs ?? 24 * 3600_000,
  },
}).createMachine({
  id: 'insurer',
  context: ({ input }) => ({ insurerId: input.insurerId, runId: null, trigger: null, lastError: null, daily: null, runs: 0 }),
  initial: 'idle',
  on: { wake: {} },
  states: {
    idle: {
      initial: 'planning',
      on: {
        sync: {
          target: 'running',
          actions: assign(({ event }) => {
            const e = event as Extract<InsurerEvent, { type: 'sync' }>;
            return { runId: e.runId, trigger: e.trigger, lastError: null };
          }),
        },
      },
      states: {
        planning: {
          invoke: {
            src: 'nextDaily',
            input: ({ context }) => ({ insurerId: context.insurerId }),
            onDone: { target: 'waiting', actions: assign({ daily: ({ event }) => event.output }) },
            onError: { target: 'retryPlanning' },
          },
        },
        retryPlanning: { after: { 60_000: 'planning' } },
        waiting: {
          after: {
            untilDaily: {
              target: '#insurer.running',
              actions: assign(({ context }) => ({ runId: context.daily!.runId, trigger: 'daily' as const, lastError: null, daily: null })),
            },
          },
        },
      },
    },
    running: {
      initial: 'starting',
      entry: assign({ runs: ({ context }) => context.runs + 1 }),
      states: {
        starting: {
          invoke: {
            src: 'startRun',
            input: ({ context }) => ({ insurerId: context.insurerId, runId: context.runId!, trigger: context.trigger! }),
            onDone: 'listing',
            onError: { target: 'stalled', actions: assign({ lastError: 'could not record the run' }) },
          },
        },
        listing: {
          invoke: {
            src: 'listPatients',
            input: ({ context }) => ({ insurerId: context.insurerId, runId: context.runId! }),
            onDone: [
              { guard: ({ event }) => event.output.gaveUp !== null, target: 'failing', actions: assign({ lastError: ({ event }) => event.output.gaveUp }) },
              { target: 'sweeping' },
            ],
            onError: { target: 'stalled', actions: assign({ lastError: 'listing interrupted' }) },
          },
        },
        sweeping: {
          invoke: {
            src: 'sweep',
            input: ({ context }) => ({ insurerId: context.insurerId, runId: context.runId! }),
            onDone: 'syncing',
            onError: { target: 'stalled', actions: assign({ lastError: 'sweep interrupted' }) },
          },
        },
        syncing: {
          invoke: {
            src: 'awaitSyncs',
            input: ({ context }) => ({ insurerId: context.insurerId, runId: context.runId! }),
            onDone: 'finishing',
            onError: { target: 'stalled', actions: assign({ lastError: 'waiting for patient syncs interrupted' }) },
          },
        },
        // An effect failed on storage: wait, then pick the run up where storage says it is.
        stalled: { after: { 5_000: 'starting' } },
        finishing: {
          invoke: {
            src: 'finishRun',
            input: ({ context }) => ({ insurerId: context.insurerId, runId: context.runId!, outcome: 'completed' as const, error: null }),
            onDone: '#insurer.idle',
            onError: { target: 'stalled' },
          },
        },
        failing: {
          invoke: {
            src: 'finishRun',
            input: ({ context }) => ({ insurerId: context.insurerId, runId: context.runId!, outcome: 'failed' as const, error: context.lastError }),
            onDone: '#insurer.idle',
            onError: { target: 'stalled' },
          },
        },
      },
    },
  },
});
