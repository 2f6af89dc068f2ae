import type { InlineStep, SaveOp, TransitionRecord } from './committer.ts';
import type { Entry, StepResult } from './entry.ts';
import { stateToSave, stepEvent, stepResult, type Stepping } from './stepping.ts';
import type { ActorEvent } from './types.ts';

/** What an inline step needs from the residents that hold its actor. */
export interface InlineHost {
  stepping: Stepping;
  /** Whether the entry is still the one held for its actor (not evicted or replaced). */
  holds(entry: Entry): boolean;
  stopping(): boolean;
  /** Processes the entry's inbox (activating it first with `activate`). */
  drain(entry: Entry, activate?: boolean): void;
  /** Saves the transitions the actor made by itself. */
  saveSpontaneous(entry: Entry): void;
}

/**
 * Processing one event in the batch that appends it ({@link InlineStep}): possible while the
 * actor is resident and has nothing else queued, applied, unsaved or being appended, no effect
 * running, and the step starts none. Until the batch settles the entry counts as draining, so
 * nothing else processes or saves it. `result` is what processing it gave, when the sender waits.
 */
export class InlineStepOf implements InlineStep {
  seq = 0;
  result: StepResult | undefined;

  constructor(
    private readonly host: InlineHost,
    readonly entry: Entry,
    readonly event: ActorEvent,
    readonly wait: boolean,
  ) {}

  apply(): SaveOp | undefined {
    const { entry, host } = this;
    const free =
      entry.activation &&
      !entry.draining &&
      !entry.inbox.length &&
      !entry.pendingSaves &&
      entry.inflightAppends === 1 &&
      entry.appliedSeq === entry.lastSeq &&
      entry.processedSeq === entry.appliedSeq &&
      host.holds(entry) &&
      !host.stopping() &&
      // Undoing a step reloads the actor from storage, and XState starts the effects of a
      // restored snapshot again: an actor with an effect running is never stepped ahead.
      !entry.activation.busy;
    if (!free) return undefined;
    const transitions: TransitionRecord[] = [];
    // An effect must not start before its event is stored: such a step waits for the commit.
    const step = stepEvent(host.stepping, entry, entry.lastSeq + 1, this.event, transitions, true);
    if (!step) return undefined;
    entry.draining = true;
    this.seq = entry.lastSeq = entry.lastSeq + 1;
    if (this.wait) this.result = stepResult(entry, step);
    // Never undefined: the event's seq is past the processed one.
    return stateToSave(host.stepping, entry, transitions, step.json);
  }

  settle(committed: boolean): void {
    const { entry, host } = this;
    entry.draining = false;
    if (committed) {
      entry.committed(this.seq);
      entry.lastActive = host.stepping.clock.now();
      if (entry.inbox.length) host.drain(entry);
      else if (entry.activation?.hasSpontaneous) host.saveSpontaneous(entry);
      return;
    }
    // Memory is ahead of storage: start again from the stored state.
    this.result = undefined;
    entry.activation?.stop();
    entry.activation = undefined;
    entry.preloaded = undefined;
    entry.lastSeq = entry.appliedSeq = entry.processedSeq;
    if (host.holds(entry) && !host.stopping()) host.drain(entry, true);
  }
}
