import { z } from 'zod';
import type { Clock } from '../../../actors/clock.ts';
import type { ActorSystem, RuntimeLogger } from '../../../actors/system.ts';
import { insurerPatientMachine } from '../../../machines/insurer-patient.ts';
import { insurerMachine } from '../../../machines/insurer.ts';
import type { FieldCipher } from '../../../storage/crypto.ts';
import type { Db } from '../../../storage/db.ts';
import { PatientStore } from '../../../storage/insurer/patients.ts';
import { publishQueue } from '../../../storage/insurer/queues.ts';
import { scheduledInteractive } from '../../../storage/insurer/syncs.ts';
import { createInsurerEffects, type EffectDeps, type InsurerSettings } from './effects.ts';
import type { InsurerLine } from './insurer-line.ts';
import { startLineThread, type LinePriority, type LineSpec } from './line-thread.ts';
import { createSyncMoves } from './sync-moves.ts';

export interface InsurerModuleOptions {
  db: Db;
  system: ActorSystem;
  clock: Clock;
  logger: RuntimeLogger;
  cipher: FieldCipher;
  /**
   * Where the line's store is (the database, and Redis when set): the line thread opens its own
   * connections there. The clock must be the system clock: the thread runs on it.
   */
  lineSpec: LineSpec;
  /** The line thread's scheduling priority (see LineThreadOptions.nice); unset: the process's. */
  lineNice?: number;
  /** This process, as named in line holders. */
  node: string;
  insurers: InsurerSettings[];
  /** The line thread died: insurer requests stop until the process restarts (main.ts exits). */
  onLineThreadFailed?(err: Error): void;
  tuning?: Pick<EffectDeps, 'pageLimit' | 'maxAttempts' | 'backoff'>;
}

export interface InsurerHandle {
  settings: InsurerSettings;
  line: InsurerLine;
  /** This process as a runtime node (the key of its recorded queue, see storage/insurer/queues.ts). */
  node: string;
}

export const INSURER_ID = /^[A-Za-z0-9_-]{1,32}$/;
export const PATIENT_ID = /^[A-Za-z0-9._:-]{1,64}$/;
const PATIENT_KEY = /^[A-Za-z0-9_-]{1,32}:[A-Za-z0-9._:-]{1,64}$/;

/**
 * Insurer patient sync: registers the `insurer` supervisor and `insurer-patient` actor types
 * with their effects, and owns one line scheduler per configured insurer.
 */
export function createInsurerModule(o: InsurerModuleOptions) {
  const handles = new Map<string, InsurerHandle>();
  let stopping = false;
  // Each process records what it has queued for each insurer's line, a moment after it changes
  // (at most once a second), so that progress read on any process counts the whole cluster's queue.
  const publishing = new Map<string, unknown>();
  function queueChanged(insurerId: string): void {
    if (stopping || publishing.has(insurerId)) return;
    const timer = o.clock.setTimeout(() => {
      publishing.delete(insurerId);
      const h = handles.get(insurerId);
      if (!h || stopping) return;
      publishQueue(o.db, insurerId, h.node, h.line.waiting).catch((err: unknown) =>
        o.logger.warn({ insurer: insurerId, err: (err as Error).message }, 'could not record the line queue; recorded with its next change'),
      );
    }, 1_000);
    publishing.set(insurerId, timer);
  }
  const thread = startLineThread({
    spec: o.lineSpec,
    nice: o.lineNice,
    node: o.node,
    insurers: o.insurers.map(({ id, baseUrl, timeoutMs }) => ({ id, baseUrl, timeoutMs })),
    onWarn: (insurer, message) => o.logger.warn({ insurer, err: message }, 'insurer line unavailable; waiting'),
    onQueueChange: queueChanged,
    onFailed: (err) => {
      o.logger.error({ err: err.message }, 'insurer line thread stopped: no request reaches an insurer until the process restarts');
      o.onLineThreadFailed?.(err);
    },
  });
  for (const settings of o.insurers) handles.set(settings.id, { settings, node: o.system.node, line: thread.lines.get(settings.id)! });
  const patients = new PatientStore(o.db, o.cipher);
  const moves = createSyncMoves({ db: o.db, clock: o.clock, logger: o.logger });
  const effects = createInsurerEffects({
    ...o.tuning,
    moves,
    db: o.db,
    system: o.system,
    clock: o.clock,
    patients,
    logger: o.logger,
    insurer(id) {
      const h = handles.get(id);
      if (!h) throw new Error(`insurer ${id} is not configured`);
      return h;
    },
  });

  o.system.register({
    name: 'insurer',
    machine: insurerMachine.provide({ actors: effects.actors }),
    input: (key) => ({ insurerId: key }),
    keyPattern: INSURER_ID,
    events: {
      sync: z.strictObject({ runId: z.string().regex(/^[\w:.-]{1,100}$/), trigger: z.enum(['daily', 'manual']) }),
      wake: z.strictObject({}),
    },
    // Supervisors are few and always busy with something: keep them resident.
    idleTimeoutMs: 24 * 3600_000,
  });
  o.system.register({
    name: 'insurer-patient',
    machine: insurerPatientMachine.provide({ actors: effects.actors }),
    input: (key) => {
      const i = key.indexOf(':');
      return { insurerId: key.slice(0, i), patientId: key.slice(i + 1) };
    },
    keyPattern: PATIENT_KEY,
    events: { sync: z.strictObject({ syncId: z.string().min(1).max(200), kind: z.enum(['interactive', 'bulk']) }) },
    idleTimeoutMs: 30_000,
  });

  /**
   * Hands a recorded interactive sync to its patient's actor, in the background: the route has
   * answered once the sync is stored. Retried while the runtime can't take the event; a sync
   * still `scheduled` at start-up is handed over again (same idempotency key, so never twice).
   */
  function dispatch(insurerId: string, patientId: string, syncId: string, attempt = 1): void {
    effects.sendSync(insurerId, patientId, syncId, 'interactive').catch((err: unknown) => {
      if (stopping) return;
      if (attempt >= 60) {
        o.logger.error({ insurer: insurerId, sync: syncId, err: (err as Error).message }, 'could not hand a single-patient sync to its actor; it is sent again at the next start');
        return;
      }
      o.clock.setTimeout(() => dispatch(insurerId, patientId, syncId, attempt + 1), 1_000);
    });
  }

  let linePriority: LinePriority | undefined;
  return {
    handles,
    /** The line thread's priority as it runs (once started). */
    get linePriority() {
      return linePriority;
    },
    patients,
    sendSync: effects.sendSync,
    dispatch,
    /** Brings each configured insurer's supervisor to life (its daily timer needs it), and hands over interactive syncs left scheduled. */
    async start(): Promise<void> {
      const priority = await thread.ready;
      linePriority = priority;
      if (priority.refused) {
        o.logger.warn({ asked: o.lineNice, nice: priority.nice, err: priority.refused }, 'insurer line thread runs at the process priority: raising it needs CAP_SYS_NICE or a higher nice limit (INSURER_LINE_NICE)');
      } else if (o.lineNice !== undefined) o.logger.info({ nice: priority.nice }, 'insurer line thread priority');
      for (const id of handles.keys()) {
        // Keyed: processes started together send it once between them.
        await o.system.send('insurer', id, { type: 'wake' }, { idempotencyKey: 'wake' });
        for (const s of await scheduledInteractive(o.db, id)) dispatch(id, s.patientId, s.id);
      }
    },
    async stop(): Promise<void> {
      stopping = true;
      for (const timer of publishing.values()) o.clock.clearTimeout(timer);
      publishing.clear();
      await thread.stop();
      await moves.stop().catch((err: unknown) => o.logger.warn({ err: (err as Error).message }, 'could not record the last sync progress'));
      // Nothing queued here any more (a node that is gone is not counted anyway).
      await Promise.all(
        [...handles.values()].map((h) => publishQueue(o.db, h.settings.id, h.node, { interactive: 0, listing: 0, bulk: 0 }).catch(() => {})),
      );
    },
  };
}

export type InsurerModule = ReturnType<typeof createInsurerModule>;

export { lineId } from './insurer-line.ts';
