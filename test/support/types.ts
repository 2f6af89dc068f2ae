import { z } from 'zod';
import type { ActorTypeDefinition } from '../../actors/types.ts';
import { reminderMachine } from '../../machines/reminder.ts';
import { tallyMachine } from '../../machines/tally.ts';

export const tallyType = (over: Partial<ActorTypeDefinition> = {}): ActorTypeDefinition => ({
  name: 'tally',
  machine: tallyMachine,
  events: {
    add: z.strictObject({ id: z.string().min(1).max(64), amount: z.number().int() }),
    close: z.strictObject({}),
    reopen: z.strictObject({}),
    annotate: z.strictObject({ note: z.string().max(100_000) }),
  },
  sensitive: ['note'],
  ...over,
});

export const reminderType = (over: Partial<ActorTypeDefinition> = {}): ActorTypeDefinition => ({
  name: 'reminder',
  machine: reminderMachine,
  events: {
    arm: z.strictObject({ delayMs: z.number().int().min(0).max(7 * 24 * 3600_000) }),
    snooze: z.strictObject({}),
    cancel: z.strictObject({}),
    ack: z.strictObject({}),
  },
  ...over,
});
