import type { Db } from '../storage/db.ts';
import type { Clock } from './clock.ts';
import type { Entry } from './entry.ts';
import type { HeldOff } from './held-off.ts';
import { adoptFrom, dueTimers, liveNodes, ownBacklog } from './store.ts';

const BUCKET_MS = 10;
const WAKE_LEAD_MS = 150;
/** Every how many passes this node's own actors are checked for events nobody told it about. */
const SWEEP_EVERY = 10;

export interface HousekeeperOptions {
  db: Db;
  clock: Clock;
  intervalMs: number;
  entries: Map<string, Entry>;
  /** This node: only timers of actors it owns or may claim are its to fire. */
  node: string;
  wake(type: string, keys: string[]): Promise<void>;
  /** Reads an owned actor's journal tail and processes it. */
  pull(type: string, key: string): Promise<void>;
  evict(entry: Entry): void;
  /** Actors whose states could not be stored: their timers wake them no earlier than this says. */
  heldOff: HeldOff;
}

/**
 * The runtime's two background duties, both on the runtime clock:
 * - passivation: evict actors idle past their type's timeout (their timers stay in storage);
 * - the timer wheel: wake evicted actors whose timers fall due, at the due time;
 * - adoption: take over actors left with unprocessed events by a node that is gone.
 */
export class Housekeeper {
  private handle: unknown;
  private running = false;
  /** Actors with a wake-up already set, and when. */
  private scheduled = new Map<string, number>();
  /** Wake-ups grouped in 10 ms buckets, so actors falling due together load in one query. */
  private buckets = new Map<number, { handle: unknown; actors: Map<string, { type: string; key: string }> }>();

  constructor(private readonly o: HousekeeperOptions) {}

  /** Nodes seen alive at the last pass, and nodes seen to go whose actors are not all taken over. */
  private live = new Set<string>();
  private passes = 0;
  private departed = new Set<string>();

  /** `live`: the nodes alive before recovery looked for what gone nodes left. */
  start(live: string[]): void {
    if (this.running) return;
    this.running = true;
    this.live = new Set(live);
    this.tick();
  }

  stop(): void {
    this.running = false;
    this.o.clock.clearTimeout(this.handle);
    for (const b of this.buckets.values()) this.o.clock.clearTimeout(b.handle);
    this.buckets.clear();
    this.scheduled.clear();
  }

  /** True while a pass is waiting on storage. */
  get busy(): boolean {
    return this.inflight !== undefined;
  }

  private inflight: Promise<void> | undefined;

  /** One pass: evict the idle, then look ahead for timers of evicted actors. */
  tick(): void {
    // Fixed rate: the next pass is set before this one waits on storage.
    if (this.running) this.handle = this.o.clock.setTimeout(() => this.tick(), this.o.intervalMs);
    this.passivate();
    if (this.inflight) return;
    const sweep = ++this.passes % SWEEP_EVERY === 0;
    this.inflight = Promise.all([this.scheduleWakes(), this.adoptOrphans(), sweep ? this.sweepBacklog() : undefined])
      .then(() => {})
      .catch(() => {
        // Storage briefly unreachable: the next pass tries again.
      })
      .finally(() => (this.inflight = undefined));
  }

  private passivate(): void {
    const now = this.o.clock.now();
    for (const entry of this.o.entries.values()) {
      if (now - entry.lastActive >= entry.def.idleTimeoutMs && entry.idle) this.o.evict(entry);
    }
  }

  private async scheduleWakes(): Promise<void> {
    const { clock } = this.o;
    // Looking two intervals ahead means a timer is never found after its due time.
    const horizon = clock.now() + 2 * this.o.intervalMs;
    const due = await dueTimers(this.o.db, this.o.node, horizon, 10_000);
    for (const { type, key, due_at } of due) {
      const id = `${type}/${key}`;
      if (this.o.entries.get(id)?.activation) continue;
      // Woken a little early: the restored timer then fires at its due time, not a load later.
      const at = Math.max(clock.now(), Math.floor((due_at - WAKE_LEAD_MS) / BUCKET_MS) * BUCKET_MS, Math.ceil(this.o.heldOff.until(id) / BUCKET_MS) * BUCKET_MS);
      const prior = this.scheduled.get(id);
      if (prior !== undefined && prior <= at) continue;
      if (prior !== undefined) this.buckets.get(prior)?.actors.delete(id);
      this.scheduled.set(id, at);
      let bucket = this.buckets.get(at);
      if (!bucket) {
        const actors = new Map<string, { type: string; key: string }>();
        const handle = clock.setTimeout(() => this.fire(at), Math.max(0, at - clock.now()));
        bucket = { handle, actors };
        this.buckets.set(at, bucket);
      }
      bucket.actors.set(id, { type, key });
    }
  }

  /** A node that went since the last pass: take over its actors, waking those with work left. */
  private async adoptOrphans(): Promise<void> {
    const live = new Set(await liveNodes(this.o.db));
    for (const node of this.live) if (!live.has(node)) this.departed.add(node);
    this.live = live;
    for (const node of this.departed) {
      // A bounded share per pass, so the timers of this node are not held up.
      if (!(await this.adopt(node, 5))) this.departed.delete(node);
    }
  }

  /**
   * Events appended by other nodes reach the owner by NOTIFY, which is lost while the owner's
   * listening connection is down: its actors with unprocessed events, not being processed now,
   * are pulled here.
   */
  private async sweepBacklog(): Promise<void> {
    const stuck = await ownBacklog(this.o.db, this.o.node, 500);
    await Promise.all(
      stuck
        .filter(({ type, key }) => {
          const entry = this.o.entries.get(`${type}/${key}`);
          return !entry || (!entry.draining && !entry.inbox.length && !entry.inflightAppends && !entry.pendingSaves);
        })
        .map(({ type, key }) => this.o.pull(type, key).catch(() => {})),
    );
  }

  /**
   * Takes over the actors of a node that is gone, 5,000 per statement, up to `rounds`
   * statements; wakes those with unprocessed events or a running effect. True if more are left.
   */
  async adopt(gone: string, rounds = Infinity): Promise<boolean> {
    for (let i = 0; i < rounds; i++) {
      const { adopted, pending } = await adoptFrom(this.o.db, gone, this.o.node, 5000);
      if (!adopted) return false;
      await Promise.all([...byType(pending)].map(([type, keys]) => this.o.wake(type, keys)));
    }
    return true;
  }

  private fire(at: number): void {
    const bucket = this.buckets.get(at);
    this.buckets.delete(at);
    if (!bucket) return;
    for (const id of bucket.actors.keys()) if (this.scheduled.get(id) === at) this.scheduled.delete(id);
    for (const [type, keys] of byType(bucket.actors.values())) void this.o.wake(type, keys).catch(() => {});
  }
}

/** Keys grouped by actor type (actors are loaded a type at a time). */
function byType(actors: Iterable<{ type: string; key: string }>): Map<string, string[]> {
  const groups = new Map<string, string[]>();
  for (const { type, key } of actors) {
    const keys = groups.get(type);
    if (keys) keys.push(key);
    else groups.set(type, [key]);
  }
  return groups;
}
