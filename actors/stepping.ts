import { Activation } from './activation.ts';
import type { Clock } from './clock.ts';
import type { SaveOp, TransitionRecord } from './committer.ts';
import type { Entry, StepResult } from './entry.ts';
import { PayloadTooLargeError, UnstorableStateError, ValidationError, type RuntimeError } from './errors.ts';
import { unstorableText } from './validate.ts';
import type { RuntimeStats } from './system.ts';
import type { ActorEvent } from './types.ts';
import { liveView } from './views.ts';

/** What stepping a live actor needs from the runtime around it. */
export interface Stepping {
  clock: Clock;
  stats: RuntimeStats;
  /** Passed to activations made here (a revert): the actor moved by itself. */
  onSpontaneous(entry: Entry): void;
}

/**
 * Feeds one journal event to the entry's live activation and records its transition. `json` is
 * the new snapshot as checked against the bound (undefined when the state did not change).
 * With `withoutEffects`, a step that might start an invoked effect is not taken: undefined.
 */
export function stepEvent(o: Stepping, entry: Entry, seq: number, event: ActorEvent, transitions: TransitionRecord[], withoutEffects = false) {
  const act = entry.activation!;
  const out = act.step(event, { withoutEffects });
  if (!out) return undefined;
  if (act.hasSpontaneous) transitions.push(...act.takeSpontaneous());
  let json: string | undefined;
  let error: Error | undefined;
  let accepted = out.accepted;
  let to = out.to;
  if (accepted) {
    json = act.persistedJson();
    error = snapshotProblem(json, entry, `event '${event.type}' would`, 'it was not applied');
    if (error) {
      revert(o, entry);
      json = undefined;
      accepted = false;
      to = out.from;
    } else {
      entry.lastGoodJson = json;
    }
  }
  entry.appliedSeq = seq;
  o.stats.processed++;
  if (!accepted) o.stats.notAccepted++;
  transitions.push({ seq, eventType: event.type, from: out.from, to, accepted, at: o.clock.now() });
  return { json, accepted, to, error };
}

/** What a step did, as its waiters are answered: made only when someone waits. */
export function stepResult(entry: Entry, step: { accepted: boolean; to: string; error: Error | undefined }): StepResult {
  return { accepted: step.accepted, state: step.to, view: liveView(entry), ...(step.error ? { error: step.error } : {}) };
}

/**
 * Why `json` cannot be stored as the entry's snapshot, as the error to answer with; undefined
 * when it can. It may not pass the bound, nor hold text PostgreSQL's jsonb refuses (a NUL
 * character, half a surrogate pair): one such snapshot would fail the whole group commit it
 * is written in, with the other actors' events and states.
 */
function snapshotProblem(json: string, entry: Entry, what: string, outcome: string): RuntimeError | undefined {
  if (Buffer.byteLength(json) > entry.def.maxSnapshotBytes) {
    return new PayloadTooLargeError(`${what} grow the snapshot of ${entry.id} past ${entry.def.maxSnapshotBytes} bytes; ${outcome}`, { field: 'snapshot' });
  }
  if (unstorableText(json)) {
    return new ValidationError(`${what} put text that cannot be stored (a NUL character or half a surrogate pair) into the snapshot of ${entry.id}; ${outcome}`, { field: 'snapshot' });
  }
  return undefined;
}

/** Puts the activation back to its last good snapshot (a step grew it past the bound). */
function revert(o: Stepping, entry: Entry): void {
  const timers = entry.activation!.timers();
  entry.activation!.stop();
  const persisted = entry.lastGoodJson ? JSON.parse(entry.lastGoodJson) : undefined;
  entry.activation = new Activation(entry.def, entry.key, o.clock, persisted, timers, () => o.onSpontaneous(entry));
  entry.activation.takeSpontaneous();
}

/**
 * The state to write for the live activation: up to `appliedSeq`, with the transitions since the
 * last save. Undefined when there is nothing new to write.
 */
export function stateToSave(o: Stepping, entry: Entry, transitions: TransitionRecord[], snapshotJson?: string): SaveOp | undefined {
  const act = entry.activation!;
  const spontaneous = act.takeSpontaneous();
  transitions.push(...spontaneous);
  const timers = act.timersIfChanged();
  if (!transitions.length && timers === undefined && entry.appliedSeq === entry.processedSeq) return undefined;
  entry.lastActive = o.clock.now();
  let json = snapshotJson;
  if (spontaneous.length || json === undefined) {
    json = act.persistedJson();
    // A step's snapshot was checked when it was taken; one the actor moved to by itself was not.
    const problem = spontaneous.length ? snapshotProblem(json, entry, 'a transition the actor made by itself would', 'its state since the last save is dropped') : undefined;
    if (problem) throw new UnstorableStateError(problem.message, { field: 'snapshot', cause: problem });
  }
  // What is saved is the state to go back to if a later step outgrows the bound.
  entry.lastGoodJson = json;
  return {
    type: entry.def.name,
    key: entry.key,
    epoch: entry.epoch,
    snapshotJson: json,
    state: act.state,
    status: act.snapshot.status,
    processedSeq: entry.appliedSeq,
    effectsInFlight: act.busy,
    transitions,
    timers,
  };
}
