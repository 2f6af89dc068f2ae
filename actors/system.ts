import type { Db } from '../storage/db.ts';
import { systemClock, type Clock } from './clock.ts';
import { Committer } from './committer.ts';
import type { Entry, StepResult } from './entry.ts';
import { errInfo, NotAcceptedError, NotFoundError, PayloadTooLargeError, RuntimeError, StaleEpochError, TimeoutError, UnavailableError, ValidationError } from './errors.ts';
import { unstorableText, validateEvent, validateIdempotencyKey, validateKey } from './validate.ts';
import { historyItem, storedView } from './views.ts';
import * as store from './store.ts';
import { HeldOff } from './held-off.ts';
import { Housekeeper } from './housekeeper.ts';
import { Residents } from './residents.ts';
import { Membership, defaultNode } from './membership.ts';
import { resolveActorType, type ActorEvent, type ActorTypeDefinition, type ActorView, type ProcessedResult, type ResolvedActorType, type RuntimeLogger, type RuntimeStats, type SendResult } from './types.ts';
import { machineDefinition } from './definition.ts';

export type { RuntimeLogger, RuntimeStats } from './types.ts';

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
  /** This process's id in the cluster (unique per process; default host:pid:random). */
  node?: string;
}

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
  private readonly residents: Residents;
  private readonly membership: Membership;
  /** This process's id in the cluster. */
  readonly node: string;
  private readonly maxEventBytes: number;
  private readonly waitTimeoutMs: number;
  private readonly housekeeper: Housekeeper;
  private readonly heldOff: HeldOff;
  private started: Promise<void> | undefined;
  private stopping = false;
  /** Running totals since start, for metrics. */
  readonly stats: RuntimeStats = {
    appended: 0,
    duplicates: 0,
    processed: 0,
    notAccepted: 0,
    mailboxFull: 0,
    spontaneous: 0,
    activations: 0,
    passivations: 0,
    saveFailures: 0,
    unstorableStates: 0,
  };

  constructor({ db, clock = systemClock, logger = silent, maxEventBytes = 64 * 1024, waitTimeoutMs = 10_000, housekeepingIntervalMs = 1000, node = defaultNode() }: ActorSystemOptions) {
    this.db = db;
    this.clock = clock;
    this.log = logger;
    this.maxEventBytes = maxEventBytes;
    this.waitTimeoutMs = waitTimeoutMs;
    this.node = node;
    this.committer = new Committer(db, node);
    const heldOff = (this.heldOff = new HeldOff(clock));
    const residents = new Residents({
      db,
      clock,
      log: logger,
      committer: this.committer,
      types: this.types,
      stats: this.stats,
      stopping: () => this.stopping,
      node,
      heldOff,
    });
    this.residents = residents;
    this.membership = new Membership({
      db,
      node,
      log: logger,
      onEvents: (type, key) => {
        // A pull that fails is made up for by housekeeping's sweep of this node's backlog.
        if (this.types.has(type) && !this.stopping) residents.pull(type, key).catch(() => {});
      },
    });
    this.housekeeper = new Housekeeper({
      db,
      clock,
      intervalMs: housekeepingIntervalMs,
      entries: residents.entries,
      node,
      wake: (type, keys) => residents.wakeMany(type, keys),
      pull: (type, key) => residents.pull(type, key),
      evict: (entry) => residents.evict(entry),
      heldOff,
    });
  }

  register(def: ActorTypeDefinition): void {
    if (this.types.has(def.name)) throw new Error(`actor type '${def.name}' is already registered`);
    this.types.set(def.name, resolveActorType(def));
  }

  get actorTypes(): ResolvedActorType[] {
    return [...this.types.values()];
  }

  /**
   * Joins the cluster as a node, recovers actors left with unprocessed journal events or running
   * effects by nodes that are gone, and starts timers and passivation.
   */
  start(): Promise<void> {
    this.started ??= (async () => {
      await this.membership.start();
      // Nodes that go from now on are noticed by housekeeping; what earlier ones left is taken
      // over here, all of it (a restarted process takes back what it had before it died).
      const live = await store.liveNodes(this.db);
      for (const gone of await store.goneOwners(this.db)) await this.housekeeper.adopt(gone);
      // Actors nobody owns yet.
      const tried = new Set<string>();
      for (;;) {
        const backlog = await store.orphansWithBacklog(this.db, this.node, 1000);
        const fresh = backlog.filter((a) => this.types.has(a.type) && !tried.has(`${a.type}/${a.key}`));
        if (!fresh.length) break;
        for (const a of fresh) tried.add(`${a.type}/${a.key}`);
        await Promise.all(fresh.map((a) => this.residents.wake(a.type, a.key)));
        await this.residents.idleDrains();
      }
      // Effects that were running when the last process stopped run again (at-least-once).
      let after = { type: '', key: '' };
      for (;;) {
        const batch = await store.orphansWithEffects(this.db, this.node, after, 1000);
        if (!batch.length) break;
        await Promise.all(batch.filter((a) => this.types.has(a.type)).map((a) => this.residents.wake(a.type, a.key)));
        after = batch[batch.length - 1]!;
      }
      this.housekeeper.start(live);
    })();
    return this.started;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.housekeeper.stop();
    await this.residents.idleDrains();
    await this.committer.drain();
    this.residents.stopAll();
    // Last: from here on other nodes may claim this node's actors.
    await this.membership.stop();
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
    const unstorable = unstorableText(eventJson, event);
    if (unstorable) throw new ValidationError(`${unstorable}: text with a NUL character or half a surrogate pair cannot be stored`, { field: unstorable });
    // An entry already held costs no await, so a send to it takes one turn less.
    const entry = this.residents.held(type, key) ?? (await this.residents.entry(def, key));
    if (entry.inflightAppends + entry.inbox.length >= def.mailboxSize) {
      this.stats.mailboxFull++;
      throw new UnavailableError(`mailbox of ${entry.id} is full (${def.mailboxSize} events waiting)`, 1000);
    }
    entry.inflightAppends++;
    entry.lastActive = this.clock.now();
    try {
      // A resident actor with nothing else queued processes the event in the batch that stores it.
      const inline = entry.activation ? this.residents.inlineStep(entry, event, wait) : undefined;
      const op = { type, key, event, eventJson, idempotencyKey: opts.idempotencyKey, receivedAt: this.clock.now(), inline };
      let outcome;
      for (let attempt = 1; ; attempt++) {
        try {
          outcome = await this.committer.append(op);
          break;
        } catch (err) {
          // A keyed send whose batch lost a race with another writer (processes started together
          // sending the same `wake`): nothing was written, and sent again it is stored once, or
          // answered as the duplicate it is. An unkeyed one is the caller's to resend.
          if (!(err instanceof StaleEpochError) || opts.idempotencyKey === undefined || attempt >= 5) throw err;
        }
      }
      const result: SendResult = { seq: outcome.seq, duplicate: outcome.duplicate };
      if (result.duplicate) {
        this.stats.duplicates++;
        return { result, entry, done: undefined };
      }
      this.stats.appended++;
      if (outcome.processed) return { result, entry, done: inline?.result ? Promise.resolve(inline.result) : undefined };
      entry.lastSeq = Math.max(entry.lastSeq, result.seq);
      if (outcome.owner !== this.node && outcome.ownerAlive) {
        // Another live node owns the actor and was notified; it processes the event.
        return { result, entry, done: undefined };
      }
      // Not created by this node after all (another node's, now gone): load and claim it first.
      if (outcome.owner !== this.node && entry.preloaded === null) entry.preloaded = undefined;
      // Registered in the same turn as the enqueue, so processing can never outrun the waiter.
      const done = wait ? entry.wait(result.seq) : undefined;
      entry.enqueue(result.seq, event);
      this.residents.drain(entry);
      return { result, entry, done };
    } catch (err) {
      if (err instanceof RuntimeError) throw err;
      this.log.error({ actor: entry.id, err: errInfo(err) }, 'append failed');
      throw new UnavailableError('the event could not be stored; send it again with the same Idempotency-Key', 1000);
    } finally {
      entry.inflightAppends--;
      this.residents.forgetIfUnused(entry);
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
    return storedView(def, key, row, this.residents.isResident(type, key));
  }

  async history(type: string, key: string, { after = 0, limit = 100 } = {}) {
    const def = this.type(type);
    validateKey(def, key);
    const rows = await store.history(this.db, type, key, after, limit);
    if (!rows.length && !(await store.loadActor(this.db, type, key))) throw new NotFoundError(`no actor ${type}/${key}`, { field: 'key' });
    return rows.map(historyItem);
  }

  async list(type: string, { state, after = '', limit = 50 }: { state?: string; after?: string; limit?: number } = {}) {
    this.type(type);
    return store.listActors(this.db, type, state, after, limit);
  }

  /** Stored actors by type and state (metrics: how many visits show an error, say). */
  countByState(): Promise<{ type: string; state: string; n: number }[]> {
    return store.countByState(this.db);
  }

  definition(type: string): unknown {
    return machineDefinition(this.type(type));
  }

  /**
   * Actors let go because a state they moved to by themselves could not be stored, not well
   * since: their timers wake them after a growing delay.
   */
  get heldOffCount(): number {
    return this.heldOff.size;
  }

  /** Number of actors held in memory (resident) and of those with a live XState actor. */
  get residentCount(): { entries: number; activations: number } {
    return this.residents.count;
  }

  /** Waits until nothing is being processed or saved (tests, shutdown). */
  idleDrains(): Promise<void> {
    return this.residents.idleDrains();
  }

  /**
   * Resolves once no work is under way anywhere in the system: no load, drain, save or
   * housekeeping pass. A {@link ManualClock} uses it to let IO finish between firings.
   */
  async settled(): Promise<void> {
    let quiet = 0;
    for (let i = 0; i < 20_000 && quiet < 3; i++) {
      await new Promise((r) => setImmediate(r));
      const busy = this.housekeeper.busy || this.committer.busy || this.residents.busy;
      if (busy) {
        quiet = 0;
        await new Promise((r) => setTimeout(r, 1));
      } else quiet++;
    }
  }
}
