import type { Db } from '../storage/db.ts';
import { Activation } from './activation.ts';
import { systemClock, type Clock } from './clock.ts';
import { Committer, type TransitionRecord } from './committer.ts';
import { Entry, type StepResult } from './entry.ts';
import { NotAcceptedError, NotFoundError, PayloadTooLargeError, RuntimeError, TimeoutError, UnavailableError, ValidationError } from './errors.ts';
import { validateEvent, validateIdempotencyKey, validateKey } from './validate.ts';
import { redact } from './redact.ts';
import * as store from './store.ts';
import { Housekeeper } from './housekeeper.ts';
import { resolveActorType, type ActorEvent, type ActorTypeDefinition, type ActorView, type ProcessedResult, type ResolvedActorType, type SendResult } from './types.ts';
import { machineDefinition } from './definition.ts';

export interface RuntimeLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface ActorSystemOptions {
  db: Db;
  clock?: Clock;
  logger?: RuntimeLogger;
  /** Largest event accepted, in bytes of JSON. */
  maxEventBytes?: number;
  /** How long send-and-wait waits for processing. */
  waitTimeoutMs?: number;
  /** How often idle actors are looked for, and timers of evicted actors polled. */
  housekeepingIntervalMs?: number;
}

const RETRY_MS = 1000;

const silent: RuntimeLogger = { info() {}, warn() {}, error() {} };

/**
 * The actor system: durable mailboxes, exactly-once state, durable timers and passivation for
 * every registered actor type. See DESIGN §3 for the contract.
 *
 * @example
 *   const system = new ActorSystem({ db });
 *   system.register({ name: 'reminder', machine, events: { arm: z.object({ ms: z.number() }) } });
 *   await system.start();
 *   const { seq } = await system.send('reminder', 'r-1', { type: 'arm', ms: 5000 });
 */
export class ActorSystem {
  readonly clock: Clock;
  readonly committer: Committer;
  private readonly db: Db;
  private readonly log: RuntimeLogger;
  private readonly types = new Map<string, ResolvedActorType>();
  private readonly entries = new Map<string, Entry>();
  private readonly loading = new Map<string, Promise<Entry>>();
  private readonly maxEventBytes: number;
  private readonly waitTimeoutMs: number;
  private readonly housekeeper: Housekeeper;
  private started: Promise<void> | undefined;
  private stopping = false;
  /** Batched loads of actors being woken by the timer wheel. */
  private waking = 0;
  /** Running totals since start, for metrics. */
  readonly stats = {
    appended: 0,
    duplicates: 0,
    processed: 0,
    notAccepted: 0,
    mailboxFull: 0,
    spontaneous: 0,
    activations: 0,
    passivations: 0,
    saveFailures: 0,
  };

  constructor({ db, clock = systemClock, logger = silent, maxEventBytes = 64 * 1024, waitTimeoutMs = 10_000, housekeepingIntervalMs = 1000 }: ActorSystemOptions) {
    this.db = db;
    this.clock = clock;
    this.log = logger;
    this.maxEventBytes = maxEventBytes;
    this.waitTimeoutMs = waitTimeoutMs;
    this.committer = new Committer(db);
    this.housekeeper = new Housekeeper({
      db,
      clock,
      intervalMs: housekeepingIntervalMs,
      entries: this.entries,
      wake: (type, keys) => this.wakeMany(type, keys),
      evict: (entry) => this.evict(entry),
    });
  }

  register(def: ActorTypeDefinition): void {
    if (this.types.has(def.name)) throw new Error(`actor type '${def.name}' is already registered`);
    this.types.set(def.name, resolveActorType(def));
  }

  get actorTypes(): ResolvedActorType[] {
    return [...this.types.values()];
  }

  /** Recovers actors with unprocessed journal events and starts timers and passivation. */
  start(): Promise<void> {
    this.started ??= (async () => {
      const tried = new Set<string>();
      for (;;) {
        const backlog = await store.actorsWithBacklog(this.db, 1000);
        const fresh = backlog.filter((a) => this.types.has(a.type) && !tried.has(`${a.type}/${a.key}`));
        if (!fresh.length) break;
        for (const a of fresh) tried.add(`${a.type}/${a.key}`);
        await Promise.all(fresh.map((a) => this.wake(a.type, a.key)));
        await this.idleDrains();
      }
      // Effects that were running when the last process stopped run again (at-least-once).
      let after = { type: '', key: '' };
      for (;;) {
        const batch = await store.actorsWithEffects(this.db, after, 1000);
        if (!batch.length) break;
        await Promise.all(batch.filter((a) => this.types.has(a.type)).map((a) => this.wake(a.type, a.key)));
        after = batch[batch.length - 1]!;
      }
      this.housekeeper.start();
    })();
    return this.started;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.housekeeper.stop();
    await this.idleDrains();
    await this.committer.drain();
    for (const entry of this.entries.values()) entry.activation?.stop();
    this.entries.clear();
  }

  type(name: string): ResolvedActorType {
    const def = this.types.get(name);
    if (!def) throw new NotFoundError(`unknown actor type '${name}'`, { field: 'type' });
    return def;
  }

  /** Appends an event to the actor's journal; resolves once it is committed. */
  async send(type: string, key: string, input: unknown, opts: { idempotencyKey?: string } = {}): Promise<SendResult> {
    return (await this.append(type, key, input, opts, false)).result;
  }

  /** Sends, then waits until the event is processed and its resulting state committed. */
  async sendAndWait(type: string, key: string, input: unknown, opts: { idempotencyKey?: string; timeoutMs?: number } = {}): Promise<ProcessedResult> {
    const { result, done, entry } = await this.append(type, key, input, opts, true);
    const outcome = done ? await this.withTimeout(done, opts.timeoutMs) : await this.earlierOutcome(entry, result.seq, opts.timeoutMs);
    if (outcome.error) throw outcome.error;
    if (!outcome.accepted) throw new NotAcceptedError(outcome.state, (input as ActorEvent).type, result.seq);
    return { ...result, accepted: true, state: outcome.state, snapshot: outcome.view };
  }

  private async append(type: string, key: string, input: unknown, opts: { idempotencyKey?: string }, wait: boolean) {
    if (this.stopping) throw new UnavailableError('the system is shutting down', 1000);
    const def = this.type(type);
    validateKey(def, key);
    if (opts.idempotencyKey !== undefined) validateIdempotencyKey(opts.idempotencyKey);
    const event = validateEvent(def, input);
    const eventJson = JSON.stringify(event);
    if (Buffer.byteLength(eventJson) > this.maxEventBytes) {
      throw new PayloadTooLargeError(`event is larger than ${this.maxEventBytes} bytes`, { field: 'body' });
    }
    const entry = await this.entry(def, key);
    if (entry.inflightAppends + entry.inbox.length >= def.mailboxSize) {
      this.stats.mailboxFull++;
      throw new UnavailableError(`mailbox of ${entry.id} is full (${def.mailboxSize} events waiting)`, 1000);
    }
    entry.inflightAppends++;
    entry.lastActive = this.clock.now();
    try {
      const result = await this.committer.append({
        type,
        key,
        event,
        eventJson,
        idempotencyKey: opts.idempotencyKey,
        receivedAt: this.clock.now(),
        create: !entry.exists,
        allocate: () => ++entry.lastSeq,
        release: () => void entry.lastSeq--,
      });
      entry.exists = true;
      if (result.duplicate) {
        this.stats.duplicates++;
        return { result, entry, done: undefined };
      }
      this.stats.appended++;
      // Registered in the same turn as the enqueue, so processing can never outrun the waiter.
      const done = wait ? entry.wait(result.seq) : undefined;
      entry.enqueue(result.seq, event);
      this.drain(entry);
      return { result, entry, done };
    } catch (err) {
      if (err instanceof RuntimeError) throw err;
      this.log.error({ actor: entry.id, err: errInfo(err) }, 'append failed');
      throw new UnavailableError('the event could not be stored; send it again with the same Idempotency-Key', 1000);
    } finally {
      entry.inflightAppends--;
    }
  }

  /** A resend of an already-appended event: wait for it, then answer as the first send would. */
  private async earlierOutcome(entry: Entry, seq: number, timeoutMs?: number): Promise<StepResult> {
    // A request deadline is wall-clock time, not runtime time.
    const deadline = performance.now() + (timeoutMs ?? this.waitTimeoutMs);
    for (;;) {
      const { rows } = await this.db.query<{ accepted: boolean; to_state: string }>(
        'SELECT accepted, to_state FROM transitions WHERE type = $1 AND key = $2 AND seq = $3 LIMIT 1',
        [entry.def.name, entry.key, seq],
      );
      if (rows[0]) return { accepted: rows[0].accepted, state: rows[0].to_state, view: await this.get(entry.def.name, entry.key) };
      if (performance.now() >= deadline) throw new TimeoutError(`event ${seq} of ${entry.id} is not processed yet`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  private withTimeout<T>(p: Promise<T>, timeoutMs?: number): Promise<T> {
    const ms = timeoutMs ?? this.waitTimeoutMs;
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new TimeoutError(`not processed within ${ms} ms; the event is stored and will be processed`)), ms);
      p.then(resolve, reject).finally(() => clearTimeout(t));
    });
  }

  /** The committed state of an actor, context redacted. */
  async get(type: string, key: string): Promise<ActorView> {
    const def = this.type(type);
    validateKey(def, key);
    const row = await store.loadActor(this.db, type, key);
    if (!row) throw new NotFoundError(`no actor ${type}/${key}`, { field: 'key' });
    const timers = row.timers;
    const snap = (row.snapshot ?? {}) as { value?: unknown; context?: unknown };
    return {
      type,
      key,
      state: row.state,
      value: snap.value ?? null,
      status: row.snapshot ? row.status : 'pending',
      context: redact(snap.context, def.sensitive),
      processedSeq: row.processed_seq,
      lastSeq: row.last_seq,
      resident: !!this.entries.get(`${type}/${key}`)?.activation,
      timers: timers.map((t) => ({ id: t.id, event: t.event.type, dueAt: new Date(t.dueAt).toISOString() })),
      updatedAt: row.updated_at.toISOString(),
    };
  }

  async history(type: string, key: string, { after = 0, limit = 100 } = {}) {
    const def = this.type(type);
    validateKey(def, key);
    const rows = await store.history(this.db, type, key, after, limit);
    if (!rows.length && !(await store.loadActor(this.db, type, key))) throw new NotFoundError(`no actor ${type}/${key}`, { field: 'key' });
    return rows.map((r) => ({
      id: r.id,
      seq: r.seq,
      event: r.event_type,
      from: r.from_state,
      to: r.to_state,
      accepted: r.accepted,
      at: new Date(r.at).toISOString(),
    }));
  }

  async list(type: string, { state, after = '', limit = 50 }: { state?: string; after?: string; limit?: number } = {}) {
    this.type(type);
    return store.listActors(this.db, type, state, after, limit);
  }

  definition(type: string): unknown {
    return machineDefinition(this.type(type));
  }

  /** Number of actors held in memory (resident) and of those with a live XState actor. */
  get residentCount(): { entries: number; activations: number } {
    let activations = 0;
    for (const e of this.entries.values()) if (e.activation) activations++;
    return { entries: this.entries.size, activations };
  }

  /** Waits until nothing is being processed or saved (tests, shutdown). */
  async idleDrains(): Promise<void> {
    for (let i = 0; i < 10_000; i++) {
      const busy = [...this.entries.values()].some((e) => e.draining || e.inbox.length || e.pendingSaves);
      if (!busy) return;
      await new Promise((r) => setImmediate(r));
    }
  }

  /**
   * Resolves once no work is under way anywhere in the system: no load, drain, save or
   * housekeeping pass. A {@link ManualClock} uses it to let IO finish between firings.
   */
  async settled(): Promise<void> {
    let quiet = 0;
    for (let i = 0; i < 20_000 && quiet < 3; i++) {
      await new Promise((r) => setImmediate(r));
      const busy =
        this.loading.size > 0 ||
        this.waking > 0 ||
        this.housekeeper.busy ||
        this.committer.busy ||
        [...this.entries.values()].some((e) => e.draining || e.inbox.length || e.pendingSaves || e.inflightAppends);
      if (busy) {
        quiet = 0;
        await new Promise((r) => setTimeout(r, 1));
      } else quiet++;
    }
  }

  private async entry(def: ResolvedActorType, key: string): Promise<Entry> {
    const id = `${def.name}/${key}`;
    const existing = this.entries.get(id);
    if (existing) return existing;
    let loading = this.loading.get(id);
    if (!loading) {
      loading = (async () => {
        const row = await store.loadActor(this.db, def.name, key);
        const entry = new Entry(def, key, this.clock.now());
        entry.preloaded = null;
        if (row) {
          entry.exists = true;
          entry.lastSeq = row.last_seq;
          entry.processedSeq = entry.appliedSeq = row.processed_seq;
          entry.epoch = row.owner_epoch;
          entry.preloaded = row;
        }
        this.entries.set(id, entry);
        return entry;
      })().finally(() => this.loading.delete(id));
      this.loading.set(id, loading);
    }
    return loading;
  }

  /** Activates evicted actors whose timers fall due, loading them in one round trip. */
  private async wakeMany(type: string, keys: string[]): Promise<void> {
    const def = this.types.get(type);
    if (!def || this.stopping) return;
    const missing = keys.filter((k) => !this.entries.has(`${type}/${k}`) && !this.loading.has(`${type}/${k}`));
    if (missing.length) {
      this.waking++;
      const rows = await store.loadActors(this.db, type, missing).finally(() => this.waking--);
      for (const [key, row] of rows) {
        const id = `${type}/${key}`;
        if (this.entries.has(id) || this.loading.has(id)) continue;
        const entry = new Entry(def, key, this.clock.now());
        entry.exists = true;
        entry.lastSeq = row.last_seq;
        entry.processedSeq = entry.appliedSeq = row.processed_seq;
        entry.epoch = row.owner_epoch;
        entry.preloaded = row;
        this.entries.set(id, entry);
      }
    }
    await Promise.all(keys.map((k) => this.wake(type, k)));
  }

  /** Activates an actor (a timer of an evicted actor fell due, or recovery after a crash). */
  private async wake(type: string, key: string): Promise<void> {
    const def = this.types.get(type);
    if (!def || this.stopping) return;
    const entry = await this.entry(def, key);
    entry.lastActive = this.clock.now();
    if (!entry.activation) this.drain(entry, true);
  }

  /** Processes the entry's inbox, one event at a time, activating it first if needed. */
  private drain(entry: Entry, activate = false): void {
    if (entry.draining || (!entry.inbox.length && !activate)) return;
    entry.draining = true;
    let failed = false;
    void this.drainLoop(entry)
      .catch((err) => {
        failed = true;
        this.log.error({ actor: entry.id, err: errInfo(err) }, 'actor processing failed; retrying');
      })
      .finally(() => {
        entry.draining = false;
        if (this.entries.get(entry.id) !== entry || this.stopping) return;
        // Storage trouble: try again in a second rather than spin.
        if (failed) this.clock.setTimeout(() => this.drain(entry, !entry.activation), RETRY_MS);
        else if (entry.inbox.length) this.drain(entry);
      });
  }

  private async drainLoop(entry: Entry): Promise<void> {
    if (!entry.activation) await this.activate(entry);
    const act = entry.activation!;
    const transitions: TransitionRecord[] = [];
    // The snapshot JSON just checked against the bound, while it is still the current state.
    let current: string | undefined;
    while (entry.inbox.length) {
      const { seq, event } = entry.inbox.shift()!;
      if (seq <= entry.appliedSeq) continue;
      transitions.push(...act.takeSpontaneous());
      const out = act.step(event);
      current = undefined;
      let error: Error | undefined;
      let accepted = out.accepted;
      let to = out.to;
      if (accepted) {
        const json = JSON.stringify(act.persisted());
        if (Buffer.byteLength(json) > entry.def.maxSnapshotBytes) {
          error = new PayloadTooLargeError(`event '${event.type}' would grow the snapshot of ${entry.id} past ${entry.def.maxSnapshotBytes} bytes; it was not applied`, { field: 'snapshot' });
          this.revert(entry);
          accepted = false;
          to = out.from;
        } else {
          entry.lastGoodJson = current = json;
        }
      }
      entry.appliedSeq = seq;
      this.stats.processed++;
      if (!accepted) this.stats.notAccepted++;
      transitions.push({ seq, eventType: event.type, from: out.from, to, accepted, at: this.clock.now() });
      if (entry.wants(seq)) {
        const result: StepResult = { accepted, state: to, view: this.liveView(entry) };
        if (error) result.error = error;
        entry.processed(seq, result);
      }
    }
    this.save(entry, transitions, current);
  }

  private async activate(entry: Entry): Promise<void> {
    const { name } = entry.def;
    // Only this entry's activation writes the row, so the row read when the entry was made is
    // still current; events appended since are in the inbox.
    // A new actor has nothing stored but what this process appended, which is in the inbox.
    const row = entry.preloaded === undefined ? await store.loadActor(this.db, name, entry.key) : (entry.preloaded ?? undefined);
    entry.preloaded = undefined;
    const timers = row?.timers ?? [];
    if (row) {
      entry.exists = true;
      entry.processedSeq = entry.appliedSeq = row.processed_seq;
      entry.lastSeq = Math.max(entry.lastSeq, row.last_seq);
      entry.epoch = row.owner_epoch;
      // Journal events a previous process stored but never processed.
      if (row.last_seq > row.processed_seq) {
        for (const e of await store.loadTail(this.db, name, entry.key, row.processed_seq)) entry.enqueue(e.seq, e.event);
      }
    }
    const persisted = row?.snapshot ?? undefined;
    entry.activation = new Activation(entry.def, entry.key, this.clock, persisted, timers, () => this.onSpontaneous(entry));
    entry.lastGoodJson = persisted ? JSON.stringify(persisted) : undefined;
    this.stats.activations++;
  }

  /** Puts the activation back to its last good snapshot (a step grew it past the bound). */
  private revert(entry: Entry): void {
    const timers = entry.activation!.timers();
    entry.activation!.stop();
    const persisted = entry.lastGoodJson ? JSON.parse(entry.lastGoodJson) : undefined;
    entry.activation = new Activation(entry.def, entry.key, this.clock, persisted, timers, () => this.onSpontaneous(entry));
    entry.activation.takeSpontaneous();
  }

  private onSpontaneous(entry: Entry): void {
    this.stats.spontaneous++;
    if (entry.activation && !entry.draining && this.entries.get(entry.id) === entry) this.save(entry, []);
  }

  private save(entry: Entry, transitions: TransitionRecord[], snapshotJson?: string): void {
    const act = entry.activation;
    if (!act) return;
    const spontaneous = act.takeSpontaneous();
    transitions.push(...spontaneous);
    const seq = entry.appliedSeq;
    const timers = act.timersIfChanged();
    if (!transitions.length && timers === undefined && seq === entry.processedSeq) return;
    entry.pendingSaves++;
    entry.lastActive = this.clock.now();
    const json = spontaneous.length || snapshotJson === undefined ? JSON.stringify(act.persisted()) : snapshotJson;
    // What is saved is the state to go back to if a later step outgrows the bound.
    entry.lastGoodJson = json;
    this.committer
      .save({
        type: entry.def.name,
        key: entry.key,
        epoch: entry.epoch,
        snapshotJson: json,
        state: act.state,
        status: act.snapshot.status,
        processedSeq: seq,
        effectsInFlight: act.busy,
        transitions,
        timers,
      })
      .then(
        () => entry.committed(seq),
        (err) => {
          // Memory is ahead of storage now: drop the activation; the journal tail replays.
          this.stats.saveFailures++;
          this.log.error({ actor: entry.id, err: errInfo(err) }, 'state save failed; actor will reload');
          entry.failAll(err instanceof RuntimeError ? err : new UnavailableError('state could not be saved; retry', 1000));
          this.evict(entry);
          // The journal still holds what was processed: reload and replay it shortly.
          if (!this.stopping) this.clock.setTimeout(() => void this.wake(entry.def.name, entry.key), RETRY_MS);
        },
      )
      .finally(() => entry.pendingSaves--);
  }

  private liveView(entry: Entry): ActorView {
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
      timers: act.timers().map((t) => ({ id: t.id, event: t.event.type, dueAt: new Date(t.dueAt).toISOString() })),
    };
  }

  private evict(entry: Entry): void {
    if (entry.activation) this.stats.passivations++;
    entry.activation?.stop();
    entry.activation = undefined;
    if (this.entries.get(entry.id) === entry) this.entries.delete(entry.id);
  }
}

function errInfo(err: unknown): { name: string; message: string } {
  return err instanceof Error ? { name: err.name, message: err.message } : { name: 'Error', message: String(err) };
}
