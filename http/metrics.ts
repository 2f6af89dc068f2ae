import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Committer } from '../actors/committer.ts';
import type { ActorSystem } from '../actors/system.ts';

/**
 * Prometheus metrics: HTTP request durations, and the runtime's own counters read at scrape
 * time (the runtime keeps plain numbers; only this file knows Prometheus).
 */
export function createMetrics(system: ActorSystem) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  const requests = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request duration by route pattern and status',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
    registers: [registry],
  });

  /** A counter that reads a plain number the runtime keeps. */
  const counter = (name: string, help: string, read: () => number) =>
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  const counters: [keyof ActorSystem['stats'], string, string][] = [
    ['appended', 'actor_events_appended_total', 'Events committed to actor journals'],
    ['duplicates', 'actor_events_duplicate_total', 'Sends answered from an earlier idempotency key'],
    ['processed', 'actor_events_processed_total', 'Journal events processed'],
    ['notAccepted', 'actor_events_not_accepted_total', 'Events the machine did not accept in its state'],
    ['mailboxFull', 'actor_mailbox_full_total', 'Sends refused because a mailbox was full'],
    ['spontaneous', 'actor_spontaneous_transitions_total', 'Transitions from timers and effects'],
    ['activations', 'actor_activations_total', 'Actors brought into memory'],
    ['passivations', 'actor_passivations_total', 'Idle actors evicted from memory'],
    ['saveFailures', 'actor_save_failures_total', 'State saves that failed (actor reloaded)'],
    ['unstorableStates', 'actor_unstorable_states_total', 'States actors moved to by themselves (effect outputs, timers) that could not be stored: over the snapshot bound or with a NUL character (actor let go)'],
  ];
  for (const [stat, name, help] of counters) counter(name, help, () => system.stats[stat]);
  const commitCounters: [keyof Committer['stats'], string, string][] = [
    ['flushes', 'actor_group_commits_total', 'Batches (one transaction each) written by the group committer'],
    ['keyRetries', 'actor_group_commit_key_retries_total', 'Batches refused on an idempotency key seen before, and written again after reading the keys (resends)'],
  ];
  for (const [stat, name, help] of commitCounters) counter(name, help, () => system.committer.stats[stat]);
  new Gauge({
    name: 'actors_resident',
    help: 'Actors with a live activation in this process',
    registers: [registry],
    collect() {
      this.set(system.residentCount.activations);
    },
  });

  new Gauge({
    name: 'actors_held_off',
    help: 'Actors let go because a state they moved to by themselves could not be stored, whose timers now wake them after a delay that doubles with each failure (up to 5 min) until a state of theirs is stored',
    registers: [registry],
    collect() {
      this.set(system.heldOffCount);
    },
  });

  new Gauge({
    name: 'actors_by_state',
    help: 'Stored actors by type and state (e.g. visits in open.error), read at scrape time',
    labelNames: ['type', 'state'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      for (const r of await system.countByState()) this.set({ type: r.type, state: r.state }, r.n);
    },
  });

  // One labelled child per method, route and status, looked up by a plain string rather than
  // prom-client hashing the label object on every request.
  const children = new Map<string, { observe(seconds: number): void }>();
  /** Records one request's duration. */
  const observe = (method: string, route: string, status: number, seconds: number) => {
    const id = `${method} ${status} ${route}`;
    let child = children.get(id);
    if (!child) children.set(id, (child = requests.labels(method, route, String(status))));
    child.observe(seconds);
  };

  return { registry, observe };
}
