import type { Db } from '../storage/db.ts';
import { Activation } from './activation.ts';
import type { Clock } from './clock.ts';
import type { Committer, SaveOp, TransitionRecord } from './committer.ts';
import { Entry } from './entry.ts';
import { InlineStepOf, type InlineHost } from './inline-step.ts';
import type { HeldOff } from './held-off.ts';
import { errInfo, RuntimeError, UnavailableError, UnstorableStateError } from './errors.ts';
import { stateToSave, stepEvent, stepResult, type Stepping } from './stepping.ts';
import * as store from './store.ts';
import type { ActorEvent, ResolvedActorType, RuntimeLogger, RuntimeStats } from './types.ts';

const RETRY_MS = 1000;

export interface ResidentsOptions {
  db: Db;
  clock: Clock;
  log: RuntimeLogger;
  committer: Committer;
  types: ReadonlyMap<string, ResolvedActorType>;
  stats: RuntimeStats;
  stopping(): boolean;
  /** This node: it processes only the actors it owns, claiming those whose owner is gone. */
  node: string;
  /** Actors whose timers are woken late after their states could not be stored. */
  heldOff: HeldOff;
}

/**
 * The actors this process holds: loading and activating them, processing each one's inbox one
 * event at a time, saving what each step did, and letting them go when idle or broken.
 */
export class Residents {
  readonly entries = new Map<string, Entry>();
  readonly loading = new Map<string, Promise<Entry>>();
  /** Batched loads of actors being woken by the timer wheel. */
  waking = 0;

  /** What stepping an actor needs from here (see stepping.ts). */
  private readonly stepping: Stepping;

  /** What an inline step needs from here (see inline-step.ts). */
  private readonly inline: InlineHost;

  constructor(private readonly o: ResidentsOptions) {
    this.stepping = { clock: o.clock, stats: o.stats, onSpontaneous: (entry) => this.onSpontaneous(entry) };
    this.inline = {
      stepping: this.stepping,
      holds: (entry) => this.entries.get(entry.id) === entry,
      stopping: o.stopping,
      drain: (entry, activate) => this.drain(entry, activate),
      saveSpontaneous: (entry) => this.save(entry, []),
    };
  }

  /** True while an actor is being loaded, woken, processed or saved. */
  get busy(): boolean {
    return (
      this.loading.size > 0 ||
      this.waking > 0 ||
      [...this.entries.values()].some((e) => e.draining || e.inbox.length || e.pendingSaves || e.inflightAppends)
    );
  }

  isResident(type: string, key: string): boolean {
    return !!this.held(type, key)?.activation;
  }

  /** The actor's entry when this process already holds it: at hand, without a load or an await. */
  held(type: string, key: string): Entry | undefined {
    return this.entries.get(`${type}/${key}`);
  }

  /** Drops an entry that holds nothing (made for a send to an actor another node owns). */
  forgetIfUnused(entry: Entry): void {
    if (!entry.activation && !entry.draining && entry.idle && this.entries.get(entry.id) === entry) this.entries.delete(entry.id);
  }

  /** Another node appended to this actor: read what it appended and process it. */
  async pull(type: string, key: string): Promise<void> {
    const entry = this.entries.get(`${type}/${key}`);
    if (!entry?.activation) return this.wake(type, key);
    const tail = await store.loadTail(this.o.db, type, key, entry.appliedSeq);
    for (const e of tail) entry.enqueue(e.seq, e.event);
    this.drain(entry);
  }

  stopAll(): void {
    for (const entry of this.entries.values()) entry.activation?.stop();
    this.entries.clear();
  }

  /** Number of actors held in memory (resident) and of those with a live XState actor. */
  get count(): { entries: number; activations: number } {
    let activations = 0;
    for (const e of this.entries.values()) if (e.activation) activations++;
    return { entries: this.entries.size, activations };
  }

  /** Waits until nothing is being processed or saved (tests, shutdown). */
  async idleDrains(): Promise<void> {
    // Bounded in time, not in turns: a save waits on a round trip that a loaded machine makes
    // slow. (With storage down, processing retries every second; stopping does not wait long.)
    const deadline = performance.now() + 5_000;
    while (performance.now() < deadline) {
      const busy = [...this.entries.values()].some((e) => e.draining || e.inbox.length || e.pendingSaves);
      if (!busy) return;
      if (this.o.committer.busy) await this.o.committer.drain();
      else await new Promise((r) => setTimeout(r, 1));
    }
  }

  async entry(def: ResolvedActorType, key: string): Promise<Entry> {
    const id = `${def.name}/${key}`;
    const existing = this.entries.get(id);
    if (existing) return existing;
    let loading = this.loading.get(id);
    if (!loading) {
      loading = (async () => {
        const row = await store.loadActor(this.o.db, def.name, key);
        const entry = new Entry(def, key, this.o.clock.now());
        entry.preload(row ?? null);
        this.entries.set(id, entry);
        return entry;
      })().finally(() => this.loading.delete(id));
      this.loading.set(id, loading);
    }
    return loading;
  }

  /**
   * Activates evicted actors whose timers fall due (or that a gone node left), loading and
   * claiming them in one round trip.
   */
  async wakeMany(type: string, keys: string[]): Promise<void> {
    const def = this.o.types.get(type);
    if (!def || this.o.stopping()) return;
    const missing = keys.filter((k) => !this.entries.has(`${type}/${k}`) && !this.loading.has(`${type}/${k}`));
    if (missing.length) {
      this.waking++;
      const rows = await store.loadAndClaimActors(this.o.db, type, missing, this.o.node).finally(() => this.waking--);
      for (const [key, row] of rows) {
        const id = `${type}/${key}`;
        if (this.entries.has(id) || this.loading.has(id)) continue;
        const entry = new Entry(def, key, this.o.clock.now());
        entry.preload(row);
        this.entries.set(id, entry);
      }
    }
    await Promise.all(keys.map((k) => this.wake(type, k)));
  }

  /** Activates an actor (a timer of an evicted actor fell due, or recovery after a crash). */
  async wake(type: string, key: string): Promise<void> {
    const def = this.o.types.get(type);
    if (!def || this.o.stopping()) return;
    const entry = await this.entry(def, key);
    entry.lastActive = this.o.clock.now();
    if (!entry.activation) this.drain(entry, true);
  }

  /** Processes the entry's inbox, one event at a time, activating it first if needed. */
  drain(entry: Entry, activate = false): void {
    if (entry.draining || (!entry.inbox.length && !activate)) return;
    entry.draining = true;
    let failed = false;
    void this.drainLoop(entry)
      .catch((err) => {
        failed = true;
        this.o.log.error({ actor: entry.id, err: errInfo(err) }, 'actor processing failed; retrying');
      })
      .finally(() => {
        entry.draining = false;
        if (this.entries.get(entry.id) !== entry || this.o.stopping()) return;
        // Storage trouble: try again in a second rather than spin.
        if (failed) this.o.clock.setTimeout(() => this.drain(entry, !entry.activation), RETRY_MS);
        else if (entry.inbox.length) this.drain(entry);
        // A transition the actor made by itself while this drain ran (an effect that settled at
        // once) found the entry draining and was left for this drain, whose save may have come first.
        else if (entry.activation?.hasSpontaneous) this.save(entry, []);
      });
  }

  private async drainLoop(entry: Entry): Promise<void> {
    if (!entry.activation && !(await this.activate(entry))) return;
    const transitions: TransitionRecord[] = [];
    // The snapshot JSON just checked against the bound, while it is still the current state.
    let current: string | undefined;
    while (entry.inbox.length) {
      // Seqs are dense: a gap is an event another node appended; read it before going on.
      if (entry.inbox[0]!.seq > entry.appliedSeq + 1) {
        for (const e of await store.loadTail(this.o.db, entry.def.name, entry.key, entry.appliedSeq)) entry.enqueue(e.seq, e.event);
      }
      const { seq, event } = entry.inbox.shift()!;
      if (seq <= entry.appliedSeq) continue;
      const step = stepEvent(this.stepping, entry, seq, event, transitions)!;
      current = step.json;
      if (entry.wants(seq)) entry.processed(seq, stepResult(entry, step));
    }
    this.save(entry, transitions, current);
  }

  /** Processing `event` in the batch that appends it, when the actor is free for that (see inline-step.ts). */
  inlineStep(entry: Entry, event: ActorEvent, wait: boolean): InlineStepOf {
    return new InlineStepOf(this.inline, entry, event, wait);
  }

  /** Brings the actor into memory; false when another live node owns it (the entry is dropped). */
  private async activate(entry: Entry): Promise<boolean> {
    const { name } = entry.def;
    // Only this entry's activation writes the row, so the row read when the entry was made is
    // still current; events appended since are in the inbox. A new actor this node created has
    // nothing stored but what it appended, which is in the inbox.
    let row = entry.preloaded === undefined ? await store.loadActor(this.o.db, name, entry.key) : (entry.preloaded ?? undefined);
    entry.preloaded = undefined;
    if (row && row.owner_node !== this.o.node) {
      // Claimed (if its owner is gone) and read again in one statement, as the timer wheel does.
      const claimed = (await store.loadAndClaimActors(this.o.db, name, [entry.key], this.o.node)).get(entry.key);
      if (!claimed) {
        // Its owner lives: hand over what this node had queued for it, and let it go.
        if (entry.inbox.length) await store.notifyOwner(this.o.db, name, entry.key);
        entry.inbox = [];
        if (this.entries.get(entry.id) === entry) this.entries.delete(entry.id);
        return false;
      }
      row = claimed;
    }
    const timers = row?.timers ?? [];
    if (row) {
      entry.processedSeq = entry.appliedSeq = row.processed_seq;
      entry.lastSeq = Math.max(entry.lastSeq, row.last_seq);
      entry.epoch = row.owner_epoch;
      // Journal events a previous process stored but never processed.
      if (row.last_seq > row.processed_seq) {
        for (const e of await store.loadTail(this.o.db, name, entry.key, row.processed_seq)) entry.enqueue(e.seq, e.event);
      }
    }
    const persisted = row?.snapshot ?? undefined;
    entry.activation = new Activation(entry.def, entry.key, this.o.clock, persisted, timers, () => this.onSpontaneous(entry));
    entry.lastGoodJson = persisted ? JSON.stringify(persisted) : undefined;
    this.o.stats.activations++;
    return true;
  }

  private onSpontaneous(entry: Entry): void {
    this.o.stats.spontaneous++;
    if (entry.activation && !entry.draining && this.entries.get(entry.id) === entry) this.save(entry, []);
  }

  private save(entry: Entry, transitions: TransitionRecord[], snapshotJson?: string): void {
    if (!entry.activation) return;
    let op: SaveOp | undefined;
    try {
      op = stateToSave(this.stepping, entry, transitions, snapshotJson);
    } catch (err) {
      if (!(err instanceof UnstorableStateError)) throw err;
      this.letGoUnstorable(entry, err);
      return;
    }
    if (!op) return;
    entry.pendingSaves++;
    const seq = op.processedSeq;
    const failures = this.o.heldOff.failures(entry.id);
    this.o.committer
      .save(op)
      .then(
        () => {
          entry.committed(seq);
          this.o.heldOff.clear(entry.id, failures);
        },
        (err) => {
          // Memory is ahead of storage now: drop the activation; the journal tail replays.
          this.o.stats.saveFailures++;
          this.o.log.error({ actor: entry.id, err: errInfo(err) }, 'state save failed; actor will reload');
          entry.failAll(err instanceof RuntimeError ? err : new UnavailableError('state could not be saved; retry', 1000));
          this.evict(entry);
          // The journal still holds what was processed: reload and replay it shortly.
          if (!this.o.stopping()) this.o.clock.setTimeout(() => void this.wake(entry.def.name, entry.key), RETRY_MS);
        },
      )
      .finally(() => entry.pendingSaves--);
  }

  /**
   * The actor moved by itself to a state that cannot be stored (an effect's output, say): it is
   * never written, so it cannot fail the batch of other actors' writes it would join. What the
   * actor did since its last save is dropped with it; its journal still holds the events, and its
   * next event, timer or start takes it up from the stored state, running the effect again.
   * Unlike a failed write it is not retried at once: that would run the effect in a loop. A
   * timer still due wakes it after a delay that grows with each failure in a row (held-off.ts).
   */
  private letGoUnstorable(entry: Entry, err: UnstorableStateError): void {
    this.o.stats.unstorableStates++;
    const { failures, until } = this.o.heldOff.hold(entry.id);
    const wakeAt = new Date(until).toISOString();
    this.o.log.error({ actor: entry.id, err: errInfo(err), failures, wakeAt }, 'actor state cannot be stored; actor let go until its next event, or its timer at wakeAt');
    entry.failAll(err);
    this.evict(entry);
  }

  evict(entry: Entry): void {
    if (entry.activation) this.o.stats.passivations++;
    entry.activation?.stop();
    entry.activation = undefined;
    if (this.entries.get(entry.id) === entry) this.entries.delete(entry.id);
  }
}
