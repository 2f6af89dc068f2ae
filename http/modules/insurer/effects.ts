import { randomInt } from 'node:crypto';
import { fromPromise } from 'xstate';
import type { PatientPage } from '../../../integrations/insurer/schemas.ts';
import { GoneError, RetryableError } from '../../../integrations/insurer/errors.ts';
import type { Clock } from '../../../actors/clock.ts';
import type { ActorSystem, RuntimeLogger } from '../../../actors/system.ts';
import type { AttemptInput, AttemptOutput } from '../../../machines/insurer-patient.ts';
import type { RunInput, RunTrigger } from '../../../machines/insurer.ts';
import type { Db } from '../../../storage/db.ts';
import type { PatientStore } from '../../../storage/insurer/patients.ts';
import { countRequests, createRun, getRun, setRunState } from '../../../storage/insurer/runs.ts';
import { moveSyncs, scheduleSyncs } from '../../../storage/insurer/syncs.ts';
import { localDate, nextDailyAt } from './daily.ts';
import type { InsurerLine } from './insurer-line.ts';
import { LineStoppedError } from './scheduler.ts';
import type { SyncMoves } from './sync-moves.ts';

export interface InsurerSettings {
  id: string;
  baseUrl: string;
  timeoutMs: number;
  dailyAt: string;
  timeZone: string;
}

export interface EffectDeps {
  db: Db;
  system: ActorSystem;
  clock: Clock;
  patients: PatientStore;
  logger: RuntimeLogger;
  insurer(id: string): { settings: InsurerSettings; line: InsurerLine };
  /** Patients asked per list page (the insurer may send more). */
  pageLimit?: number;
  /** Attempts per request before giving up. */
  maxAttempts?: number;
  /** Back-off of a failed request: base and cap, ms (full jitter between half and all). */
  backoff?: { baseMs: number; capMs: number };
  /** Bulk sync writes (patient data with its audit records, run counters) at once, per process. */
  bulkWriters?: number;
  /** Where bulk syncs' moves while they run are batched. */
  moves: SyncMoves;
}

const systemCtx = (actor: string, reason: string) => ({ principal: actor, role: 'system', reason });

/** Capped exponential back-off with jitter; a Retry-After the insurer named wins. */
export function backoffMs(attempt: number, { baseMs, capMs }: { baseMs: number; capMs: number }, retryAfterMs?: number): number {
  const exp = Math.min(capMs, baseMs * 2 ** Math.max(0, attempt - 1));
  const jittered = Math.round(exp / 2 + randomInt(0, Math.max(1, Math.floor(exp / 2)) + 1));
  return Math.max(jittered, retryAfterMs ?? 0);
}

/**
 * At most `max` of the calls given to it at once; the rest wait in order, in memory. Bulk
 * writes go through one, so they wait here rather than on a pooled connection blocked on the
 * audit lock or the run's counters: the pool stays free for everyone else (the single-patient
 * route, the runtime's journal), and the audit guarantee is unchanged.
 */
export function limiter(max: number) {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async function limited<T>(fn: () => Promise<T>): Promise<T> {
    if (active < max) active++;
    else await new Promise<void>((resolve) => waiting.push(resolve));
    try {
      return await fn();
    } finally {
      // The slot passes straight to the next waiter, if any.
      const next = waiting.shift();
      if (next) next();
      else active--;
    }
  };
}

/** The IO behind the insurer machines, provided at registration. */
export function createInsurerEffects(deps: EffectDeps) {
  const { db, system, clock, patients, logger } = deps;
  const pageLimit = deps.pageLimit ?? 500;
  const maxAttempts = deps.maxAttempts ?? 100;
  const backoff = deps.backoff ?? { baseMs: 50, capMs: 5_000 };
  const sleep = (ms: number) => new Promise<void>((r) => clock.setTimeout(r, ms));
  const bulkWrites = limiter(deps.bulkWriters ?? 3);
  const moves = deps.moves;

  /**
   * One patient's care records: retried through the line until done, gone or given up. The
   * sync shows `running` on its first attempt and `retrying` from its first failure on. A bulk
   * sync's moves until then are written in batches (see SyncMoves); an interactive one's at once
   * (its first failure, then at most once a second), as someone watches it. The outcome is
   * written with the patient's data, with the requests not yet counted.
   */
  async function attempt({ input, signal }: { input: AttemptInput; signal: AbortSignal }): Promise<AttemptOutput> {
    const { insurerId, patientId, syncIds, kind } = input;
    // Cancelled (the actor started over at a higher priority): write nothing more.
    const cancelled = (): AttemptOutput => ({ outcome: 'failed', error: 'superseded' });
    const { line } = deps.insurer(insurerId);
    const ctx = systemCtx(`insurer-patient/${insurerId}:${patientId}`, syncIds[0] ?? 'sync');
    const interactive = kind === 'interactive';
    // Someone waits for an interactive sync: its writes skip the bulk queue.
    const write = interactive ? <T>(fn: () => Promise<T>) => fn() : bulkWrites;
    if (interactive) await moveSyncs(db, syncIds, 'running', { now: clock.now() });
    else moves.queue(syncIds, 'running');
    let notBefore = 0;
    let holdUntil = 0;
    // Failed requests not yet written (interactive: at most once a second; bulk: with the outcome, what the batches have not taken).
    let unwritten = 0;
    let lastWrite = 0;
    /** Requests to count with the outcome: this one, and those not written before it. */
    const outcome = async (failedNow: number) => {
      // Interactive too: it may serve a bulk sync whose earlier attempt queued moves.
      const carried = await moves.take(syncIds);
      return { attempts: unwritten + carried.attempts + 1, failedRequests: unwritten + carried.failedRequests + failedNow };
    };
    for (let n = 1; ; n++) {
      let records: { id: string }[] = [];
      let failure: unknown;
      try {
        records = await line.send(kind, { op: 'careRecords', patientId, idempotencyKey: `care-records:${insurerId}:${syncIds[0]}` }, { notBefore, holdUntil, signal });
      } catch (err) {
        failure = err;
      }
      if (signal.aborted) return cancelled();
      // Shutting down: nothing is decided; the effect runs again after the restart.
      if (failure instanceof LineStoppedError) throw failure;
      // Storage errors below are not the insurer's: they reject, and the actor tries again later.
      // Locks are taken in one order everywhere (audit log, then run counters) so writers never deadlock.
      if (failure === undefined) {
        const counts = await outcome(0);
        await write(() =>
          db.tx(async (tx) => {
            await patients.storeCareRecords(tx, insurerId, patientId, records, ctx, clock.now());
            await moveSyncs(tx, syncIds, 'done', { now: clock.now(), ...counts });
          }),
        );
        return { outcome: 'done' };
      }
      if (failure instanceof GoneError) {
        // No longer insured: undo what we hold for them, and do not retry.
        const counts = await outcome(0);
        await write(() =>
          db.tx(async (tx) => {
            await patients.compensate(tx, insurerId, patientId, ctx, clock.now());
            await moveSyncs(tx, syncIds, 'cancelled_410', { now: clock.now(), ...counts, error: 'patient no longer insured (410)' });
          }),
        );
        return { outcome: 'gone' };
      }
      const message = failure instanceof Error ? failure.message : 'request failed';
      if (!(failure instanceof RetryableError) || n >= maxAttempts) {
        const counts = await outcome(1);
        await write(() => moveSyncs(db, syncIds, 'failed', { now: clock.now(), ...counts, error: message }));
        return { outcome: 'failed', error: message };
      }
      if (!interactive) moves.queue(syncIds, 'retrying', { attempts: 1, failedRequests: 1, error: message });
      else unwritten++;
      if (interactive && (n === 1 || clock.now() - lastWrite >= 1_000)) {
        await moveSyncs(db, syncIds, 'retrying', { now: clock.now(), attempts: unwritten, failedRequests: unwritten, error: message });
        unwritten = 0;
        lastWrite = clock.now();
      }
      holdUntil = failure.retryAfterMs !== undefined ? clock.now() + failure.retryAfterMs : 0;
      notBefore = clock.now() + backoffMs(n, backoff, failure.retryAfterMs);
    }
  }

  async function nextDaily({ input }: { input: { insurerId: string } }) {
    const { settings } = deps.insurer(input.insurerId);
    const at = nextDailyAt(clock.now(), settings.dailyAt, settings.timeZone);
    // One id per insurer and local day, so a daily run is recorded once whoever starts it.
    return { runId: `daily-${input.insurerId}-${localDate(at, settings.timeZone)}`, delayMs: at - clock.now() };
  }

  async function startRun({ input }: { input: RunInput & { trigger: RunTrigger } }) {
    const { created, active } = await createRun(db, { id: input.runId, insurerId: input.insurerId, trigger: input.trigger, now: clock.now() });
    if (!created && active.id !== input.runId) throw new Error('another run is in progress');
  }

  /**
   * Pages through the list from the stored cursor; each page's new patients get their syncs.
   * The next page is asked for as soon as a page arrives, while that page is being stored, so
   * the listing never waits for the database between requests (at most two pages in memory;
   * pages are stored in order, and a restart resumes from the last stored cursor). A failed
   * page request goes back to the line at once with its back-off: the failure is written
   * beside it, not before it.
   */
  async function listPatients({ input, signal }: { input: RunInput; signal?: AbortSignal }): Promise<{ gaveUp: string | null }> {
    const { insurerId, runId } = input;
    const { line } = deps.insurer(insurerId);
    const ctx = systemCtx(`insurer/${insurerId}`, runId);
    const run = await getRun(db, runId);
    if (!run) throw new Error('run not recorded');
    await resendOpenSyncs(insurerId, runId);
    if (run.listingDone) return { gaveUp: null };
    // Ends a prefetch left behind when this effect ends early (storage error, actor stopped).
    const stop = new AbortController();
    const onAbort = () => stop.abort(signal!.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    const failures = failureCounter(runId);
    const fetchPage = async (cursor: string | null): Promise<{ page: PatientPage } | { gaveUp: string }> => {
      let failed = 0;
      let notBefore = 0;
      let holdUntil = 0;
      for (;;) {
        try {
          const page = await line.send('listing', { op: 'listPatients', cursor, limit: pageLimit, idempotencyKey: `list:${runId}:${cursor ?? 'first'}` }, { notBefore, holdUntil, signal: stop.signal });
          return { page };
        } catch (err) {
          if (err instanceof LineStoppedError || stop.signal.aborted) throw err;
          const message = err instanceof Error ? err.message : 'request failed';
          failures.add(message);
          if (!(err instanceof RetryableError) || ++failed >= maxAttempts) return { gaveUp: `listing gave up: ${message}` };
          holdUntil = err.retryAfterMs !== undefined ? clock.now() + err.retryAfterMs : 0;
          notBefore = clock.now() + backoffMs(failed, backoff, err.retryAfterMs);
        }
      }
    };
    let fetching: Promise<Awaited<ReturnType<typeof fetchPage>>> | undefined = fetchPage(run.cursor);
    try {
      while (fetching) {
        const got = await fetching;
        fetching = undefined;
        if ('gaveUp' in got) {
          await failures.flush();
          return { gaveUp: got.gaveUp };
        }
        const { page } = got;
        if (page.nextCursor !== null) {
          fetching = fetchPage(page.nextCursor);
          fetching.catch(() => {}); // awaited on the next turn, or abandoned with the effect
        }
        const syncIds: string[] = [];
        await bulkWrites(() => db.tx(async (tx) => {
          const fresh = await patients.storePage(tx, insurerId, runId, page.patients, page.nextCursor, ctx, clock.now());
          const syncs = fresh.map((patientId) => ({ id: `${runId}:${patientId}`, insurerId, patientId, runId, kind: 'bulk' as const, requestedBy: `insurer/${insurerId}` }));
          await scheduleSyncs(tx, syncs, clock.now());
          await failures.writeWith(tx, 1);
          syncIds.push(...syncs.map((s) => s.id));
        }));
        // After the commit: if this process dies first, the next listing resends them.
        await Promise.all(syncIds.map((id) => sendSync(insurerId, id.slice(runId.length + 1), id, 'bulk')));
      }
      return { gaveUp: null };
    } finally {
      signal?.removeEventListener('abort', onAbort);
      if (fetching) stop.abort(new Error('listing ended'));
      await failures.settled();
    }
  }

  /**
   * A run's failed list requests, counted as they happen: the first failure is written at once
   * in the background, later ones at most once a second, and what is left with the next page.
   */
  function failureCounter(runId: string) {
    let unwritten = 0;
    let lastError: string | null = null;
    let lastWrite = -Infinity;
    let writing: Promise<void> | undefined;
    const write = () => {
      const n = unwritten;
      const error = lastError;
      unwritten = 0;
      lastError = null;
      lastWrite = clock.now();
      writing = bulkWrites(() => countRequests(db, runId, n, n, error))
        .catch((err: unknown) => {
          // Counted again with the next write; the listing goes on.
          unwritten += n;
          lastError ??= error;
          logger.warn({ run: runId, err: err instanceof Error ? err.message : String(err) }, 'could not count failed list requests');
        })
        .finally(() => (writing = undefined));
    };
    return {
      add(message: string) {
        unwritten++;
        lastError = message;
        if (!writing && clock.now() - lastWrite >= 1_000) write();
      },
      /** Waits for a write under way. */
      async settled() {
        while (writing) await writing;
      },
      /** Writes what is left with `made` successful requests, in the caller's transaction. */
      async writeWith(tx: Parameters<typeof countRequests>[0], made: number) {
        const n = unwritten;
        await countRequests(tx, runId, made + n, n, n ? lastError : null);
        // Failures added meanwhile stay for the next write. (A rolled-back transaction loses
        // these few counts; the listing then starts over from the stored cursor anyway.)
        unwritten -= n;
        if (!unwritten) lastError = null;
      },
      async flush() {
        await this.settled();
        if (unwritten) write();
        await this.settled();
      },
    };
  }

  function sendSync(insurerId: string, patientId: string, syncId: string, kind: 'bulk' | 'interactive') {
    return system.send('insurer-patient', `${insurerId}:${patientId}`, { type: 'sync', syncId, kind }, { idempotencyKey: syncId });
  }

  async function resendOpenSyncs(insurerId: string, runId: string) {
    const { rows } = await db.query<{ id: string; patient_id: string }>(
      `SELECT id, patient_id FROM patient_syncs WHERE run_id = $1 AND status = 'scheduled'`,
      [runId],
    );
    await Promise.all(rows.map((r) => sendSync(insurerId, r.patient_id, r.id, 'bulk')));
  }

  async function sweep({ input }: { input: RunInput }) {
    const removed = await patients.sweep(input.insurerId, input.runId, systemCtx(`insurer/${input.insurerId}`, input.runId), clock.now());
    await setRunState(db, input.runId, 'syncing', { now: clock.now() });
    logger.info({ insurer: input.insurerId, run: input.runId, removed }, 'listing complete');
  }

  async function awaitSyncs({ input }: { input: RunInput }) {
    for (;;) {
      const run = await getRun(db, input.runId);
      if (!run) throw new Error('run not recorded');
      if (run.counts.scheduled + run.counts.running + run.counts.retrying === 0) return;
      await sleep(250);
    }
  }

  async function finishRun({ input }: { input: RunInput & { outcome: 'completed' | 'failed'; error: string | null } }) {
    await setRunState(db, input.runId, input.outcome, { now: clock.now(), error: input.error });
    logger.info({ insurer: input.insurerId, run: input.runId, outcome: input.outcome }, 'run finished');
  }

  return {
    actors: {
      attempt: fromPromise(attempt),
      nextDaily: fromPromise(nextDaily),
      startRun: fromPromise(startRun),
      listPatients: fromPromise(listPatients),
      sweep: fromPromise(sweep),
      awaitSyncs: fromPromise(awaitSyncs),
      finishRun: fromPromise(finishRun),
    },
    sendSync,
  };
}
