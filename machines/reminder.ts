import { assign, setup } from 'xstate';

/**
 * Arms a reminder that fires after a delay: the smallest machine that needs durable timers.
 * `snooze` re-arms from now; `cancel` drops the pending timer (XState cancels it on exit).
 */
export interface ReminderContext {
  delayMs: number;
  armedCount: number;
  firedCount: number;
}

export type ReminderEvent = { type: 'arm'; delayMs: number } | { type: 'snooze' } | { type: 'cancel' } | { type: 'ack' };

export const reminderMachine = setup({
  types: {} as { context: ReminderContext; events: ReminderEvent },
  delays: {
    reminderDelay: ({ context }) => context.delayMs,
  },
}).createMachine({
  id: 'reminder',
  context: { delayMs: 0, armedCount: 0, firedCount: 0 },
  initial: 'idle',
  states: {
    idle: {
      on: {
        arm: {
          target: 'armed',
          actions: assign({ delayMs: ({ event }) => event.delayMs }),
        },
      },
    },
    armed: {
      entry: assign({ armedCount: ({ context }) => context.armedCount + 1 }),
      after: {
        reminderDelay: { target: 'fired', actions: assign({ firedCount: ({ context }) => context.firedCount + 1 }) },
      },
      on: {
        snooze: { target: 'armed', reenter: true },
        cancel: 'idle',
      },
    },
    fired: {
      on: {
        ack: 'idle',
        arm: { target: 'armed', actions: assign({ delayMs: ({ event }) => event.delayMs }) },
      },
    },
  },
});
