import { assign, setup } from 'xstate';

/**
 * A ledger of applied entries: each `add` records its id, so applying an event twice shows.
 * Used to prove the runtime's exactly-once state and as a small demo actor.
 */
export interface TallyContext {
  total: number;
  count: number;
  /** Ids of the entries applied, in order (bounded by `limit`). */
  applied: string[];
  limit: number;
  note: string;
}

export type TallyEvent = { type: 'add'; id: string; amount: number } | { type: 'close' } | { type: 'reopen' } | { type: 'annotate'; note: string };

export const tallyMachine = setup({
  types: {} as { context: TallyContext; events: TallyEvent; input: { limit?: number } | undefined },
  guards: {
    hasRoom: ({ context }) => context.applied.length < context.limit,
  },
}).createMachine({
  id: 'tally',
  context: ({ input }) => ({ total: 0, count: 0, applied: [], limit: input?.limit ?? 500, note: '' }),
  initial: 'open',
  states: {
    open: {
      on: {
        add: {
          guard: 'hasRoom',
          actions: assign(({ context, event }) => ({
            total: context.total + event.amount,
            count: context.count + 1,
            applied: [...context.applied, event.id],
          })),
        },
        annotate: { actions: assign({ note: ({ event }) => event.note }) },
        close: 'closed',
      },
    },
    closed: {
      on: { reopen: 'open' },
    },
  },
});
