import type { AnyStateMachine } from 'xstate';
import type { z } from 'zod';

/** What registering an actor type provides to the runtime. */
export interface ActorTypeDefinition {
  /** Actor type name, e.g. `visit`; used in routes and storage. */
  name: string;
  /** A plain XState v5 machine; its effects are already provided (`machine.provide`). */
  machine: AnyStateMachine;
  /** Payload schema for each event type that may be sent from outside (without `type`). */
  events: Record<string, z.ZodType<Record<string, unknown>>>;
  /** Keys this type accepts (default: 1-128 of letters, digits and `._:-`). */
  keyPattern?: RegExp;
  /** Evict from memory after this long with nothing in flight (default 60 s). */
  idleTimeoutMs?: number;
  /** Events accepted but not yet processed; beyond this, send answers 503 (default 1000). */
  mailboxSize?: number;
  /** Context fields never shown in snapshots, logs or inspection output. */
  sensitive?: string[];
  /** Persisted snapshot bound in bytes (default 64 KiB): bulk data belongs in tables. */
  maxSnapshotBytes?: number;
  /**
   * Events reach this type only through its domain's API (which checks roles and stores what
   * goes with them, e.g. a consultation's result), never through the generic actor routes.
   */
  domainOnly?: boolean;
  /** The machine's input for a new actor, from its key (e.g. `KK01:P-1` → ids). */
  input?: (key: string) => unknown;
}

export interface ResolvedActorType extends Required<Omit<ActorTypeDefinition, 'sensitive' | 'input' | 'domainOnly'>> {
  domainOnly: boolean;
  sensitive: Set<string>;
  input: ((key: string) => unknown) | undefined;
}

export const DEFAULT_KEY_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

export function resolveActorType(def: ActorTypeDefinition): ResolvedActorType {
  return {
    keyPattern: DEFAULT_KEY_PATTERN,
    idleTimeoutMs: 60_000,
    mailboxSize: 1000,
    maxSnapshotBytes: 64 * 1024,
    ...def,
    input: def.input,
    domainOnly: def.domainOnly ?? false,
    sensitive: new Set(def.sensitive ?? []),
  };
}

export interface ActorEvent {
  type: string;
  [field: string]: unknown;
}

export interface PendingTimer {
  id: string;
  event: ActorEvent;
  dueAt: number;
}

/** What reading an actor returns: never the raw context, always the redacted one. */
export interface ActorView {
  type: string;
  key: string;
  state: string;
  value: unknown;
  status: string;
  context: Record<string, unknown>;
  processedSeq: number;
  lastSeq: number;
  resident: boolean;
  timers: { id: string; event: string; dueAt: string }[];
  updatedAt?: string;
}

export interface SendResult {
  seq: number;
  /** True when an idempotency key matched an earlier send: nothing new was appended. */
  duplicate: boolean;
}

export interface ProcessedResult extends SendResult {
  accepted: boolean;
  state: string;
  snapshot: ActorView;
}

/** Where the runtime logs (pino's shape; silent by default). */
export interface RuntimeLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** Running totals since start, for metrics. */
export interface RuntimeStats {
  appended: number;
  duplicates: number;
  processed: number;
  notAccepted: number;
  mailboxFull: number;
  spontaneous: number;
  activations: number;
  passivations: number;
  saveFailures: number;
  /** States actors moved to by themselves that could not be stored (see Residents). */
  unstorableStates: number;
}
