import type { Entry } from './entry.ts';
import { redact } from './redact.ts';
import type { ActorRow, HistoryRow } from './store.ts';
import type { ActorView, PendingTimer, ResolvedActorType } from './types.ts';

/** What reading an actor shows: its stored or live state, context always redacted. */

const timerViews = (timers: PendingTimer[]) => timers.map((t) => ({ id: t.id, event: t.event.type, dueAt: new Date(t.dueAt).toISOString() }));

/** The committed state of an actor, as stored. */
export function storedView(def: ResolvedActorType, key: string, row: ActorRow, resident: boolean): ActorView {
  const snap = (row.snapshot ?? {}) as { value?: unknown; context?: unknown };
  return {
    type: def.name,
    key,
    state: row.state,
    value: snap.value ?? null,
    status: row.snapshot ? row.status : 'pending',
    context: redact(snap.context, def.sensitive),
    processedSeq: row.processed_seq,
    lastSeq: row.last_seq,
    resident,
    timers: timerViews(row.timers),
    updatedAt: row.updated_at.toISOString(),
  };
}

/** The live state of a resident actor. */
export function liveView(entry: Entry): ActorView {
  const act = entry.activation!;
  const snap = act.snapshot;
  return {
    type: entry.def.name,
    key: entry.key,
    state: act.state,
    value: snap.value,
    status: snap.status,
    context: redact(snap.context, entry.def.sensitive),
    processedSeq: entry.appliedSeq,
    lastSeq: entry.lastSeq,
    resident: true,
    timers: timerViews(act.timers()),
  };
}

/** One transition of an actor's history. */
export function historyItem(r: HistoryRow) {
  return { id: r.id, seq: r.seq, event: r.event_type, from: r.from_state, to: r.to_state, accepted: r.accepted, at: new Date(r.at).toISOString() };
}
