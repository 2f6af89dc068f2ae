import { EventEmitter } from 'node:events';
import { fromPromise } from 'xstate';
import type { Clock } from '../../../actors/clock.ts';
import type { ActorSystem, RuntimeLogger } from '../../../actors/system.ts';
import type { PimsClient } from '../../../integrations/pims/client.ts';
import { PimsError, PimsNotFoundError, PimsRateLimitedError } from '../../../integrations/pims/errors.ts';
import type { CensusResult } from '../../../machines/pims-census.ts';
import type { FetchInput, FetchOutput } from '../../../machines/visit.ts';
import type { Db } from '../../../storage/db.ts';
import { knownVisitIds, openVisitIds, removeItems, saveItems } from '../../../storage/pims/items.ts';
import type { PimsGate } from './gate.ts';

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

/**
 * The IO of the visit and census machines: each call to the practice system waits its turn at
 * the shared rate limit; fetched items are stored before the machine hears of them, so a reader
 * never sees a `fetchedAt` whose items are not there.
 */
export function createPimsEffects(d: PimsEffectDeps) {
  /** Emits `visitId` → fetchedAt when a fetch stored new items (readers waiting for a refresh). */
  const fetched = new EventEmitter();
  fetched.setMaxListeners(0);

  const fetchItems = fromPromise<FetchOutput, FetchInput>(async ({ input, signal }) => {
    await d.gate.turn(signal);
    try {
      const items = await d.client.lineItems(input.visitId, signal);
      const fetchedAt = d.clock.now();
      await saveItems(d.db, input.visitId, items, fetchedAt, input.final);
      fetched.emit(input.visitId, fetchedAt);
      return { outcome: 'ok', fetchedAt, itemCount: items.length };
    } catch (err) {
      if (err instanceof PimsNotFoundError) return { outcome: 'unknown' };
      if (err instanceof PimsRateLimitedError) {
        d.gate.hold(err.retryAfterMs);
        return { outcome: 'failed', error: err.message, retryAfterMs: err.retryAfterMs };
      }
      if (err instanceof PimsError) return { outcome: 'failed', error: err.message };
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
   * for one whose visit closed.
   */
  const census = fromPromise<CensusResult, void>(async ({ signal }) => {
    const actors = await openVisitIds(d.db);
    await d.gate.turn(signal);
    const open = await d.client.openVisits(signal);
    const at = d.clock.now();
    const listed = new Set(open.map((v) => v.id));
    const candidates = open.filter((v) => !actors.has(v.id));
    const known = await knownVisitIds(d.db, candidates.map((v) => v.id));
    const toCheckIn = candidates.filter((v) => !known.has(v.id));
    const toCheckOut = [...actors.keys()].filter((id) => !listed.has(id));
    await inBatches(toCheckIn, (v) =>
      d.system.send('visit', v.id, { type: 'checkin', patientId: v.patientId, checkedInAt: v.checkedInAt }, { idempotencyKey: 'checkin' }),
    );
    await inBatches(toCheckOut, (id) => d.system.send('visit', id, { type: 'checkout', at }, { idempotencyKey: 'checkout' }));
    if (toCheckIn.length || toCheckOut.length) {
      d.logger.info({ checkedIn: toCheckIn.length, checkedOut: toCheckOut.length, open: open.length }, 'census healed missed hooks');
    }
    return { at, open: open.length, checkedIn: toCheckIn.length, checkedOut: toCheckOut.length };
  });

  return { actors: { fetchItems, removeItems: removeVisitItems, census }, fetched };
}

async function inBatches<T>(items: T[], fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(CENSUS_CONCURRENCY, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

export type PimsEffects = ReturnType<typeof createPimsEffects>;
