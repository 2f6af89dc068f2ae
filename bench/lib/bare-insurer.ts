import { createInsurerClient } from '../../integrations/insurer/client.ts';
import { GoneError, RetryableError } from '../../integrations/insurer/errors.ts';
import { preciseNow } from '../../integrations/insurer/simulator-stats.ts';
import { sleep } from './report.ts';

export interface BareLoopOptions {
  url: string;
  timeoutMs: number;
  /** How many patients the list must yield. */
  patients: number;
  /**
   * false: every page, then every patient's care records, each failed request asked again at
   * once, whatever a 429 said. true: a 429's Retry-After is waited out for that request, as the
   * insurer asks and as our sync does, and the line meanwhile serves the next patient (or, while
   * the next page waits, patients already listed); a request that failed otherwise is asked again at once.
   */
  honourRetryAfter: boolean;
  deadline: number;
  limitMin: number;
}

export interface BareLoop {
  /** When the last page was listed (simulator clock, `preciseNow`). */
  listingEnd: number;
}

/**
 * The line's limit on this machine: the same requests as a full sync, one after another, with the
 * insurer client alone (no runtime, no database, no lease).
 */
export async function bareLoop({ url, timeoutMs, patients, honourRetryAfter, deadline, limitMin }: BareLoopOptions): Promise<BareLoop> {
  const client = createInsurerClient({ baseUrl: url, timeoutMs });
  const over = () => {
    if (Date.now() > deadline) throw new Error(`bare loop did not finish within ${limitMin} min (raise --limit-min or lower --patients)`);
  };
  /** The Retry-After to wait out before asking again, or 0 to ask again at once. */
  const holdFor = (err: unknown): number => {
    if (err instanceof RetryableError) return honourRetryAfter ? (err.retryAfterMs ?? 0) : 0;
    throw err;
  };

  // Patients to sync, in listing order; those waiting out a Retry-After, by when they may go.
  const ready: string[] = [];
  let head = 0;
  const held: { id: string; until: number }[] = [];
  let listed = 0;
  let cursor: string | null = null;
  let listingDone = false;
  let listHold = 0;
  let listingEnd = 0;
  let n = 0;

  while (!listingDone || head < ready.length || held.length) {
    over();
    const now = Date.now();
    if (!listingDone && listHold <= now) {
      try {
        const page = await client.listPatients({ cursor, limit: 500, idempotencyKey: `bare:list:${n++}` });
        for (const p of page.patients) ready.push(p.id);
        listed += page.patients.length;
        cursor = page.nextCursor;
        listingDone = cursor === null;
        if (listingDone) listingEnd = preciseNow();
      } catch (err) {
        const ms = holdFor(err);
        if (ms > 0) listHold = Date.now() + ms;
      }
      continue;
    }
    // Without honouring Retry-After nothing is held: the whole list comes first, as before.
    const due = held.length && held[0]!.until <= now ? held.shift()!.id : undefined;
    const id = due ?? (head < ready.length ? ready[head++] : undefined);
    if (id === undefined) {
      const next = Math.min(listingDone ? Infinity : listHold, held[0]?.until ?? Infinity);
      await sleep(Math.max(1, next - now));
      continue;
    }
    for (;;) {
      over();
      try {
        await client.careRecords(id, { idempotencyKey: `bare:care:${n++}` });
        break;
      } catch (err) {
        if (err instanceof GoneError) break;
        const ms = holdFor(err);
        if (ms > 0) {
          const until = Date.now() + ms;
          // Kept in order of `until`.
          let i = held.length;
          while (i > 0 && held[i - 1]!.until > until) i--;
          held.splice(i, 0, { id, until });
          break;
        }
      }
    }
  }
  if (listed !== patients) throw new Error(`bare loop listed ${listed} patients, expected ${patients}`);
  return { listingEnd };
}
