import { assign, fromPromise, setup } from 'xstate';

/**
 * The census of open visits (one actor per practice system, key `main`): every period, on its
 * own durable timer, it compares the practice system's open visits with the visit actors and
 * heals what a lost hook left behind (open visits without an actor are checked in, actors whose
 * visit is no longer open are checked out). The comparison is an injected effect.
 */
export interface CensusResult {
  /** When the practice system was asked (runtime clock, epoch ms). */
  at: number;
  /** Visits the practice system lists as open. */
  open: number;
  checkedIn: number;
  checkedOut: number;
  /** Listed visits whose ids this system cannot take. */
  skipped: number;
  /** Hook events that could not be sent (the run then counts as failed). */
  failed: number;
}

export interface CensusContext {
  runs: number;
  lastRunAt: number | null;
  last: CensusResult | null;
  lastError: string | null;
  failures: number;
}

export type CensusEvent = { type: 'wake' } | { type: 'run' };

export const DEFAULT_CENSUS_INTERVAL_MS = 120_000;

/** The period for `pimsCensusMachine.provide(censusTiming(ms))`; after a failure, a quarter of it. */
export function censusTiming(intervalMs: number) {
  return {
    delays: {
      period: ({ context }: { context: CensusContext }) => (context.failures ? Math.max(1_000, Math.round(intervalMs / 4)) : intervalMs),
    },
  };
}

export const pimsCensusMachine = setup({
  types: {} as { context: CensusContext; events: CensusEvent },
  actors: {
    census: fromPromise<CensusResult, void>(async () => {
      throw new Error('census effect not provided');
    }),
  },
  delays: censusTiming(DEFAULT_CENSUS_INTERVAL_MS).delays,
}).createMachine({
  id: 'pimsCensus',
  context: { runs: 0, lastRunAt: null, last: null, lastError: null, failures: 0 },
  // A new census runs at once: a fresh deployment picks up the visits already open.
  initial: 'running',
  states: {
    waiting: {
      after: { period: 'running' },
      on: { wake: {}, run: 'running' },
    },
    running: {
      invoke: {
        src: 'census',
        onDone: {
          target: 'waiting',
          actions: assign(({ context, event }) => ({ runs: context.runs + 1, lastRunAt: event.output.at, last: event.output, lastError: null, failures: 0 })),
        },
        onError: {
          target: 'waiting',
          actions: assign(({ context, event }) => ({
            runs: context.runs + 1,
            lastError: event.error instanceof Error ? event.error.message : 'census failed',
            failures: context.failures + 1,
          })),
        },
      },
      on: { wake: {}, run: {} },
    },
  },
});
