import { fromPromise } from 'xstate';
import type { Clock } from '../../../actors/clock.ts';
import type { ActorSystem, RuntimeLogger } from '../../../actors/system.ts';
import type { PimsClient } from '../../../integrations/pims/client.ts';
import { PimsError, PimsNotFoundError, PimsRateLimitedError } from '../../../integrations/pims/errors.ts';
import type { Visit } from '../../../integrations/pims/schemas.ts';
import type { CensusResult } from '../../../machines/pims-census.ts';
import type { FetchInput, FetchOutput } from '../../../machines/visit.ts';
import type { Db } from '../../../storage/db.ts';
import { openVisitIds, removeItems, saveItems } from '../../../storage/pims/items.ts';
import type { PimsGate } from './gate.ts';
import { PIMS_PATIENT_ID, VISIT_ID } from './ids.ts';

export interface PimsEffectDeps {
  db: Db;
  system: ActorSystem;
  clock: Clock;
  client: PimsClient;
  gate: PimsGate;
  logger: RuntimeLogger;
}

/** Hook events the census sends at once, at most. */
const CENSUS_CONCURRENCY = 32;
/** Longest a call waits for its turn at the rate limit before it counts as failed. */
const TURN_TIMEOUT_MS = 30_000;

/** The idempotency key of a check-in: the same check-in once, a new one of the same visit again. */
export const checkinKey = (checkedInAt: string) => `checkin:${new Date(checkedInAt).toISOString()}`;

/**
 * The IO of the visit and census machines: each call to the practice system waits its turn at
 * the shared rate limit; fetched items are stored before the machine hears of them, so a reader
 * never sees a `fetchedAt` whose items are not there.
 */
export function createPimsEffects(d: PimsEffectDeps) {
  /** Readers waiting for new items of a visit (a refresh they asked for), by visit id. */
  const waiting = new Map<string, Set<(fetchedAt: number) => void>>();
  const fetched = {
    on(visitId: string, fn: (fetchedAt: number) => void): void {
      let set = waiting.get(visitId);
      if (!set) waiting.set(visitId, (set = new Set()));
      set.add(fn);
    },
    off(visitId: string, fn: (fetchedAt: number) => void): void {
      const set = waiting.get(visitId);
      set?.delete(fn);
      if (set && !set.size) waiting.delete(visitId);
    },
  };

  const fetchItems = fromPromise<FetchOutput, FetchInput>(async ({ input, signal }) => {
    if (!(await turnWithin(d.gate, signal))) return { outcome: 'failed', error: `no turn at the rate limit within ${TURN_TIMEOUT_MS} ms` };
    try {
      const items = await d.client.lineItems(input.visitId, signal);
      const fetchedAt = d.clock.now();
      await saveItems(d.db, input.visitId, items, fetchedAt, input.final);
      for (const fn of waiting.get(input.visitId) ?? []) fn(fetchedAt);
      return { outcome: 'ok', fetchedAt, itemCount: items.length };
    } catch (err) {
      if (err instanceof PimsNotFoundError) return { outcome: 'unknown' };
      if (err instanceof PimsRateLimitedError) {
        d.gate.hold(err.retryAfterMs);
        return { outcome: 'failed', error: err.message, retryAfterMs: err.retryAfterMs };
      }
      if (err instanceof PimsError) return { outcome: 'failed', error: err.message };
      // Cancelled (checked out meanwhile): nothing to report.
      if (signal.aborted) throw err;
      // Storage trouble (or a bug): the machine counts it as a failure and tries again.
      d.logger.warn({ visit: input.visitId, err: (err as Error).message }, 'visit fetch failed inside the runtime');
      throw err;
    }
  });

  const removeVisitItems = fromPromise<void, { visitId: string }>(async ({ input }) => {
    await removeItems(d.db, input.visitId);
  });

  /**
   * Compares the practice system's open visits with the visit actors. The actors are read
   * before the list is asked for, so a visit checked in while the census runs is never taken
   * for one whose visit closed. A visit whose ids this system cannot take is skipped (and
   * counted), and one send that fails does not stop the others.
   */
  const census = fromPromise<CensusResult, void>(async ({ signal }) => {
    const actors = await openVisitIds(d.db);
    if (!(await turnWithin(d.gate, signal))) throw new Error(`census: no turn at the rate limit within ${TURN_TIMEOUT_MS} ms`);
    let open: Visit[];
    try {
      open = await d.client.openVisits(signal);
    } catch (err) {
      if (err instanceof PimsRateLimitedError) d.gate.hold(err.retryAfterMs);
      throw err;
    }
    const at = d.clock.now();
    const usable = open.filter((v) => VISIT_ID.test(v.id) && PIMS_PATIENT_ID.test(v.patientId) && !Number.isNaN(Date.parse(v.checkedInAt)));
    const listed = new Set(open.map((v) => v.id));
    // Listed as open without an open actor: checked in (a check-in seen before is a duplicate
    // by its key, so a visit checked out here but still listed is not opened again).
    const toCheckIn = usable.filter((v) => !actors.has(v.id));
    const toCheckOut = [...actors.keys()].filter((id) => !listed.has(id));
    const [inFailed, outFailed] = await Promise.all([
      inBatches(toCheckIn, (v) => d.system.send('visit', v.id, { type: 'checkin', patientId: v.patientId, checkedInAt: v.checkedInAt }, { idempotencyKey: checkinKey(v.checkedInAt) })),
      inBatches(toCheckOut, (id) => d.system.send('visit', id, { type: 'checkout', at }, { idempotencyKey: 'checkout' })),
    ]);
    const result = {
      at,
      open: open.length,
      checkedIn: toCheckIn.length - inFailed,
      checkedOut: toCheckOut.length - outFailed,
      skipped: open.length - usable.length,
      failed: inFailed + outFailed,
    };
    if (toCheckIn.length || toCheckOut.length || result.skipped) d.logger.info(result, 'census compared open visits');
    // Counts only: the ids of the visits skipped or failed are not logged.
    if (result.failed) throw new Error(`census: ${result.failed} of ${toCheckIn.length + toCheckOut.length} hook events could not be sent; tried again next period`);
    return result;
  });

  return { actors: { fetchItems, removeItems: removeVisitItems, census }, fetched };
}

/**
 * Waits for a turn at the rate limit: true when granted, false after TURN_TIMEOUT_MS (the rate
 * limiter unreachable, or far more calls due than the rate allows); rejects when `signal` aborts.
 */
async function turnWithin(gate: PimsGate, signal: AbortSignal): Promise<boolean> {
  const timeout = new AbortController();
  const timer = setTimeout(() => timeout.abort(), TURN_TIMEOUT_MS);
  try {
    await gate.turn(AbortSignal.any([signal, timeout.signal]));
    return true;
  } catch (err) {
    if (signal.aborted) throw err;
    return false;
  } finally {
    clearTimeout(timer);
  }
}

/** Runs `fn` over `items`, a few at a time; resolves with how many failed. */
async function inBatches<T>(items: T[], fn: (item: T) => Promise<unknown>): Promise<number> {
  let next = 0;
  let failed = 0;
  await Promise.all(
    Array.from({ length: Math.min(CENSUS_CONCURRENCY, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!).catch(() => failed++);
    }),
  );
  return failed;
}

export type PimsEffects = ReturnType<typeof createPimsEffects>;
