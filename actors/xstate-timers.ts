import type { AnyActorRef } from 'xstate';
import type { ActorEvent } from './types.ts';

/**
 * The one place that reads XState's private scheduler state.
 *
 * XState v5 (pinned to 5.33.3) keeps delayed events in `system._snapshot._scheduledEvents`,
 * leaves them out of `getPersistedSnapshot()`, and stamps them with `Date.now()`. The runtime
 * mirrors them to the timers table with due times from its own clock and hands them back with
 * `system.scheduler.schedule` on restore, so they stay under XState's cancel-on-exit.
 * `test/unit/xstate-private.test.ts` fails if an upgrade moves any of this.
 */
export interface ScheduledEntry {
  /** XState's id, e.g. `xstate.after.5000.reminder.armed` or a `sendTo` id. */
  id: string;
  event: ActorEvent;
  delay: number;
  startedAt: number;
}

interface RawScheduled {
  source: AnyActorRef;
  target: AnyActorRef;
  event: ActorEvent;
  delay: number;
  id: string;
  startedAt: number;
}

interface PrivateSystem {
  _snapshot?: { _scheduledEvents?: Record<string, RawScheduled> };
  scheduler?: {
    schedule(source: AnyActorRef, target: AnyActorRef, event: ActorEvent, delay: number, id: string): void;
    cancel(source: AnyActorRef, id: string): void;
  };
}

function privateSystem(actor: AnyActorRef): Required<PrivateSystem> {
  const system = actor.system as unknown as PrivateSystem;
  if (!system?._snapshot?._scheduledEvents || typeof system.scheduler?.schedule !== 'function') {
    throw new Error('xstate internals moved: system._snapshot._scheduledEvents / system.scheduler not found');
  }
  return system as Required<PrivateSystem>;
}

/**
 * Delayed events the root actor scheduled for itself (`after`, delayed `raise`, delayed
 * `sendTo(self)`). Events aimed at other actors are not durable and are left out.
 */
export function readScheduled(actor: AnyActorRef): ScheduledEntry[] {
  const events = privateSystem(actor)._snapshot._scheduledEvents!;
  const out: ScheduledEntry[] = [];
  for (const raw of Object.values(events)) {
    if (!isOwn(raw, actor)) continue;
    // The entry object itself: a re-scheduled timer is a new object, which is how callers tell.
    out.push(raw);
  }
  return out;
}

/** Whether the actor has a delayed event of its own pending. */
export function hasScheduled(actor: AnyActorRef): boolean {
  const events = privateSystem(actor)._snapshot._scheduledEvents!;
  for (const id in events) if (isOwn(events[id]!, actor)) return true;
  return false;
}

/** A delayed event the actor sent itself (not one to or from a child). */
const isOwn = (raw: RawScheduled, actor: AnyActorRef) => raw.source === actor && raw.target === actor;

/** Puts a stored timer back under XState's scheduler, replacing any with the same id. */
export function restoreScheduled(actor: AnyActorRef, id: string, event: ActorEvent, remainingMs: number): void {
  const { scheduler } = privateSystem(actor);
  scheduler!.cancel(actor, id);
  scheduler!.schedule(actor, actor, event, Math.max(0, remainingMs), id);
}
