import { createActor, type AnyActor, type AnyMachineSnapshot, type AnyStateMachine, type AnyStateNode, type InspectionEvent, type Subscription } from 'xstate';
import type { Clock } from './clock.ts';
import type { TransitionRecord } from './committer.ts';
import { stateName } from './redact.ts';
import type { ActorEvent, PendingTimer, ResolvedActorType } from './types.ts';
import { hasKeys, persistedJson } from './xstate-persist.ts';
import { hasScheduled, readScheduled, restoreScheduled } from './xstate-timers.ts';

export interface StepOutcome {
  accepted: boolean;
  from: string;
  to: string;
}

/**
 * One live XState actor for one (type, key): restores it, feeds it journal events one at a time,
 * and reports what it does by itself (timers firing, invoked effects settling).
 */
export class Activation {
  readonly actor: AnyActor;
  /**
   * Watches the actor for transitions it makes by itself, while it is not being fed an event
   * here: XState passes inspection events on (copied, to each watcher) only while someone
   * watches, and that cost about a quarter of a step. Only an actor with a delayed event
   * scheduled or a child actor can move by itself; one with neither is not watched at all.
   */
  private watching: Subscription | undefined;
  private lastState: string;
  private spontaneous: TransitionRecord[] = [];
  /** Due time of each scheduled entry XState holds, keyed by the entry object itself. */
  private dueTimes = new WeakMap<object, number>();
  private lastTimerSig = '';

  /** What made the machine fail, when its status is 'error'. */
  failure: Error | undefined;

  constructor(
    readonly def: ResolvedActorType,
    key: string,
    private readonly clock: Clock,
    persisted: unknown,
    timers: PendingTimer[],
    private readonly onSpontaneous: () => void,
  ) {
    this.actor = createActor(def.machine, {
      clock,
      ...(persisted ? { snapshot: persisted as any } : def.input ? { input: def.input(key) } : {}),
    });
    this.lastState = persisted ? stateName((persisted as { value?: unknown }).value) : '';
    // Without an error observer XState rethrows a machine's error from a timer, which would
    // take the whole process down; the actor's status says 'error' instead.
    this.actor.subscribe({ error: (err) => (this.failure = err instanceof Error ? err : new Error(String(err))) });
    this.actor.start();
    for (const t of timers) restoreScheduled(this.actor, t.id, t.event, t.dueAt - clock.now());
    for (const raw of readScheduled(this.actor)) {
      const stored = timers.find((t) => t.id === raw.id);
      if (stored) this.dueTimes.set(raw, stored.dueAt);
    }
    this.lastTimerSig = signature(timers);
    if (!persisted) {
      this.spontaneous.push({ seq: null, eventType: 'xstate.init', from: '', to: this.state, accepted: true, at: clock.now() });
    }
    this.watchIfMovable();
  }

  get snapshot(): AnyMachineSnapshot {
    return this.actor.getSnapshot();
  }

  get state(): string {
    return stateName(this.snapshot.value);
  }

  /**
   * Feeds one event; synchronous, so one event is handled at a time. With `withoutEffects`, an
   * event whose step might start an invoked effect is not fed, and undefined is returned.
   */
  step(event: ActorEvent, { withoutEffects = false } = {}): StepOutcome | undefined {
    const from = this.state;
    const snap = this.snapshot;
    if (snap.status !== 'active') return { accepted: false, from, to: from };
    // What `snapshot.can(event)` asks, kept to look at the transitions themselves.
    const transitions = snap.machine.getTransitionData(snap as any, event as any);
    if (!transitions.some((t) => t.target !== undefined || t.actions.length)) return { accepted: false, from, to: from };
    if (withoutEffects && mayStartEffects(snap.machine, transitions)) return undefined;
    this.unwatch();
    try {
      this.actor.send(event as any);
    } finally {
      this.watchIfMovable();
    }
    this.lastState = this.state;
    return { accepted: true, from, to: this.lastState };
  }

  /** Transitions the actor made by itself since the last call. */
  takeSpontaneous(): TransitionRecord[] {
    const out = this.spontaneous;
    this.spontaneous = [];
    return out;
  }

  /** Whether it made transitions by itself since the last {@link takeSpontaneous}. */
  get hasSpontaneous(): boolean {
    return this.spontaneous.length > 0;
  }

  /** The persisted snapshot as JSON. */
  persistedJson(): string {
    return persistedJson(this.actor);
  }

  /** The pending delayed events with absolute due times. */
  timers(): PendingTimer[] {
    const now = this.clock.now();
    return readScheduled(this.actor).map((raw) => {
      let dueAt = this.dueTimes.get(raw);
      if (dueAt === undefined) {
        dueAt = now + raw.delay;
        this.dueTimes.set(raw, dueAt);
      }
      return { id: raw.id, event: raw.event, dueAt };
    });
  }

  /** The timers if they changed since the last call, else undefined. */
  timersIfChanged(): PendingTimer[] | undefined {
    const timers = this.timers();
    const sig = signature(timers);
    if (sig === this.lastTimerSig) return undefined;
    this.lastTimerSig = sig;
    return timers;
  }

  /** True while an invoked effect is running: evicting now would cancel it. */
  get busy(): boolean {
    const children = this.snapshot.children as Record<string, { getSnapshot(): { status: string } } | undefined>;
    for (const id in children) if (children[id]?.getSnapshot().status === 'active') return true;
    return false;
  }

  stop(): void {
    this.unwatch();
    this.actor.stop();
  }

  /**
   * Watches while the actor can move by itself: a delayed event of its own is scheduled, or it
   * has a child (an invoked or spawned actor) that can settle. Both come only from a step or
   * from the start, after which this is asked again; a watched actor stays watched until its
   * next step finds neither.
   */
  private watchIfMovable(): void {
    if (hasScheduled(this.actor) || hasKeys(this.snapshot.children)) this.watching ??= this.actor.system.inspect((ev: InspectionEvent) => this.inspect(ev));
  }

  private unwatch(): void {
    this.watching?.unsubscribe();
    this.watching = undefined;
  }

  private inspect(ev: InspectionEvent): void {
    if (ev.type !== '@xstate.snapshot' || ev.actorRef !== this.actor) return;
    const to = stateName((ev.snapshot as AnyMachineSnapshot).value);
    this.spontaneous.push({ seq: null, eventType: ev.event.type, from: this.lastState, to, accepted: true, at: this.clock.now() });
    this.lastState = to;
    // Let XState finish the step (deferred actions schedule timers) before saving.
    queueMicrotask(this.onSpontaneous);
  }
}

function signature(timers: PendingTimer[]): string {
  return timers
    .map((t) => `${t.id}@${t.dueAt}`)
    .sort()
    .join('|');
}

/** Where a machine's definition lets effects start, read once per machine. */
interface Shape {
  /** Entering a state may start one: some state invokes, or has entry or exit actions that spawn. */
  entering: boolean;
  eventless: boolean;
  /** Some action somewhere may spawn: an event raised in a step may lead to it. */
  spawnsSomewhere: boolean;
  /** The machine's named action implementations. */
  named: Record<string, unknown>;
}

const shapes = new WeakMap<AnyStateMachine, Shape>();
const spawnKinds = new Set(['xstate.spawnChild', 'xstate.enqueueActions']);
/** Actions that send the actor an event of its own within the step. */
const raiseKinds = new Set(['xstate.raise', 'xstate.sendTo']);

/** The action object a state node's action stands for: itself, or the implementation it names. */
function implementation(shape: Shape, action: unknown): unknown {
  if (typeof action === 'function') return action;
  const name = typeof action === 'string' ? action : (action as { type?: unknown } | null)?.type;
  return typeof name === 'string' && Object.hasOwn(shape.named, name) ? shape.named[name] : undefined;
}

/** Whether an action spawns, or may: `spawnChild`, `enqueueActions`, or an `assign` whose assigner may call `spawn`. */
function actionSpawns(shape: Shape, action: unknown): boolean {
  const impl = implementation(shape, action) as { type?: unknown } | undefined;
  if (impl?.type === 'xstate.assign') return assignMaySpawn(impl);
  return spawnKinds.has(impl?.type as string);
}

function actionRaises(shape: Shape, action: unknown): boolean {
  return raiseKinds.has((implementation(shape, action) as { type?: unknown } | undefined)?.type as string);
}

function shapeOf(machine: AnyStateMachine): Shape {
  let shape = shapes.get(machine);
  if (!shape) {
    const found: Shape = { entering: false, eventless: false, spawnsSomewhere: false, named: (machine.implementations?.actions ?? {}) as Record<string, unknown> };
    const visit = (node: AnyStateNode) => {
      if (node.invoke.length) found.entering = true;
      if (node.always?.length) found.eventless = true;
      if ([...node.entry, ...node.exit].some((a) => actionSpawns(found, a))) found.entering = found.spawnsSomewhere = true;
      for (const transitions of [...node.transitions.values(), node.always ?? []]) {
        for (const t of transitions) if (t.actions.some((a) => actionSpawns(found, a))) found.spawnsSomewhere = true;
      }
      for (const child of Object.values(node.states ?? {})) visit(child);
    };
    visit(machine.root);
    shapes.set(machine, (shape = found));
  }
  return shape;
}

const assigners = new WeakMap<object, boolean>();

function assignMaySpawn(action: object): boolean {
  let may = assigners.get(action);
  if (may === undefined) {
    const assignment = (action as { assignment?: unknown }).assignment;
    const parts = typeof assignment === 'function' ? [assignment] : Object.values((assignment ?? {}) as Record<string, unknown>);
    may = parts.some((part) => typeof part === 'function' && assignerMaySpawn(part));
    assigners.set(action, may);
  }
  return may;
}

/**
 * Whether an assigner may call the `spawn` it is given, read from its source, erring on the
 * side of yes: one that names `spawn` or `arguments`, takes its arguments whole
 * (`(args) => …`, `({ context, ...rest }) => …`) and so may hand `spawn` on, or whose source
 * cannot be read (a bound function). One that takes nothing, or only named fields other than
 * `spawn` (`({ context, event }) => …`), cannot reach it.
 */
export function assignerMaySpawn(fn: Function): boolean {
  const src = Function.prototype.toString.call(fn);
  // A bound or native function shows no source to read.
  if (/\bspawn\b|\barguments\b/.test(src) || src.endsWith('{ [native code] }')) return true;
  const paren = src.indexOf('(');
  const arrow = src.indexOf('=>');
  if (paren === -1 || (arrow !== -1 && arrow < paren)) return true; // `args => …`
  const params = src.slice(paren + 1).trimStart();
  if (params.startsWith(')')) return false;
  if (!params.startsWith('{')) return true;
  let depth = 0;
  for (let i = 0; i < params.length; i++) {
    if (params[i] === '{') depth++;
    // A rest element, a computed key or a string in the pattern: what it takes cannot be read off.
    else if (params[i] === '}' && --depth === 0) return /\.\.\.|\[|['"`]/.test(params.slice(0, i));
  }
  return true;
}

/**
 * Whether taking these transitions might start an invoked effect, erring on the side of yes:
 * one whose actions spawn (an `assign` whose assigner may call `spawn` counts), one that enters
 * or re-enters states of a machine where entering a state may start one, one that raises an
 * event in such a machine or one that spawns somewhere, or any step of such machines with eventless
 * transitions (a changed context may take one into such a state).
 */
function mayStartEffects(machine: AnyStateMachine, transitions: readonly { target?: unknown; actions: readonly unknown[] }[]): boolean {
  const shape = shapeOf(machine);
  if (shape.eventless && (shape.entering || shape.spawnsSomewhere)) return true;
  return transitions.some(
    (t) => (shape.entering && t.target !== undefined) || t.actions.some((a) => actionSpawns(shape, a) || ((shape.entering || shape.spawnsSomewhere) && actionRaises(shape, a))),
  );
}
