import { Activation } from './activation.ts';
import type { Clock } from './clock.ts';
import type { SaveOp, TransitionRecord } from './committer.ts';
import type { Entry, StepResult } from './entry.ts';
import { PayloadTooLargeError, UnstorableStateError, ValidationError } from './errors.ts';
import { unstorableText } from './validate.ts';
import type { ActorEvent, RuntimeStats } from './types.ts';
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
 * the new snapshot as checked to be storable (undefined when the state did not change).
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
    const problem = snapshotProblem(json, entry);
    if (problem) {
      const message = `event '${event.type}' would ${problem.what}; it was not applied`;
      error = problem.tooLarge ? new PayloadTooLargeError(message, { field: 'snapshot' }) : new ValidationError(message, { field: 'snapshot' });
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
 * Why `json` cannot be stored as the entry's snapshot (what storing it would do), undefined when
 * it can. It may not pass the bound, nor hold text PostgreSQL's jsonb refuses (a NUL character,
 * half a surrogate pair): one such snapshot would fail the whole group commit it is written in,
 * with the other actors' events and states.
 */
function snapshotProblem(json: string, entry: Entry): { tooLarge: boolean; what: string } | undefined {
  const max = entry.def.maxSnapshotBytes;
  if (Buffer.byteLength(json) > max) return { tooLarge: true, what: `grow the snapshot of ${entry.id} past ${max} bytes` };
  if (unstorableText(json)) return { tooLarge: false, what: `put text that cannot be stored (a NUL character or half a surrogate pair) into the snapshot of ${entry.id}` };
  return undefined;
}

/** Puts the activation back to its last good snapshot (a step's could not be stored). */
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
  const json = spontaneous.length || snapshotJson === undefined ? act.persistedJson() : snapshotJson;
  // A step's snapshot was checked when it was taken; one the actor moved to by itself was not.
  const problem = spontaneous.length ? snapshotProblem(json, entry) : undefined;
  if (problem) throw new UnstorableStateError(`a transition the actor made by itself would ${problem.what}; its state since the last save is dropped`, { field: 'snapshot' });
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
