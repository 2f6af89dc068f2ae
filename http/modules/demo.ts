import { z } from 'zod';
import type { ActorTypeDefinition } from '../../actors/types.ts';
import { reminderMachine } from '../../machines/reminder.ts';
import { tallyMachine } from '../../machines/tally.ts';

/**
 * Two small actor types that exercise the runtime end to end: `tally` (a ledger of applied
 * entries, so a double application shows) and `reminder` (a durable `after` timer).
 */
export function tallyType(over: Partial<ActorTypeDefinition> = {}): ActorTypeDefinition {
  return {
    name: 'tally',
    machine: tallyMachine,
    events: {
      add: z.strictObject({ id: z.string().min(1).max(64), amount: z.number().int().min(-1_000_000).max(1_000_000) }),
      close: z.strictObject({}),
      reopen: z.strictObject({}),
      annotate: z.strictObject({ note: z.string().max(100_000) }),
    },
    sensitive: ['note'],
    ...over,
  };
}

export function reminderType(over: Partial<ActorTypeDefinition> = {}): ActorTypeDefinition {
  return {
    name: 'reminder',
    machine: reminderMachine,
    events: {
      arm: z.strictObject({ delayMs: z.number().int().min(0).max(30 * 24 * 3600_000) }),
      snooze: z.strictObject({}),
      cancel: z.strictObject({}),
      ack: z.strictObject({}),
    },
    ...over,
  };
}

export function demoActorTypes(defaults: Partial<ActorTypeDefinition> = {}): ActorTypeDefinition[] {
  return [tallyType(defaults), reminderType(defaults)];
}
