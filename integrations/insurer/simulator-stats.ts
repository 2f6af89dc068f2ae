import { performance } from 'node:perf_hooks';

export type RequestKind = 'list' | 'care-records' | 'other';

/**
 * An HTTP status, or what happened instead: `reset` (socket reset by us), `timeout` (held
 * open, then dropped by us or abandoned by the client), `aborted` (the client went away
 * before any answer).
 */
export type RequestStatus = number | 'reset' | 'timeout' | 'aborted';

export interface RecordedRequest {
  /** 1, 2, 3... in order of arrival. */
  id: number;
  method: string;
  path: string;
  kind: RequestKind;
  patientId?: string;
  /** null when the header was missing (the request was answered 400). */
  idempotencyKey: string | null;
  /** ms, `performance.timeOrigin + performance.now()`. */
  start: number;
  /** undefined while in flight. */
  end: number | undefined;
  status: RequestStatus | undefined;
}

/** Wall-clock milliseconds with sub-millisecond precision, comparable across the process. */
export function preciseNow(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * What the simulator saw. In-flight time runs from the request's arrival to the moment the
 * whole answer is handed to the socket, the socket is dropped, or the client goes away.
 * Busy and overlap time are summed as requests come and go, so reading them is O(1).
 */
export class SimulatorStats {
  inFlight = 0;
  maxInFlight = 0;
  missingIdempotencyKey = 0;
  requests: RecordedRequest[] = [];
  private nextId = 1;
  private busyMs = 0;
  private overlapMs = 0;
  private changedAt = preciseNow();

  begin(fields: Pick<RecordedRequest, 'method' | 'path' | 'kind' | 'patientId' | 'idempotencyKey'>): RecordedRequest {
    const start = preciseNow();
    this.accrue(start);
    const rec: RecordedRequest = { id: this.nextId++, ...fields, start, end: undefined, status: undefined };
    if (rec.patientId === undefined) delete rec.patientId;
    this.requests.push(rec);
    this.inFlight++;
    if (this.inFlight > this.maxInFlight) this.maxInFlight = this.inFlight;
    return rec;
  }

  /** Marks `rec` finished; keeps a status set earlier. A second call is a no-op. */
  end(rec: RecordedRequest, status: RequestStatus): void {
    if (rec.end !== undefined) return;
    const now = preciseNow();
    this.accrue(now);
    rec.end = now;
    rec.status ??= status;
    this.inFlight--;
  }

  /**
   * Starts a new window: forgets recorded requests and times. Requests still in flight stay
   * counted in `inFlight` (and so in the new `maxInFlight`) until they end.
   */
  reset(): void {
    this.requests = [];
    this.missingIdempotencyKey = 0;
    this.maxInFlight = this.inFlight;
    this.busyMs = 0;
    this.overlapMs = 0;
    this.changedAt = preciseNow();
  }

  requestsBetween(t0: number, t1: number): RecordedRequest[] {
    return this.requests.filter((r) => r.start <= t1 && (r.end ?? Infinity) >= t0);
  }

  busyTime(): number {
    return this.busyMs + (this.inFlight >= 1 ? preciseNow() - this.changedAt : 0);
  }

  overlapTime(): number {
    return this.overlapMs + (this.inFlight >= 2 ? preciseNow() - this.changedAt : 0);
  }

  private accrue(now: number): void {
    const dt = now - this.changedAt;
    if (this.inFlight >= 1) this.busyMs += dt;
    if (this.inFlight >= 2) this.overlapMs += dt;
    this.changedAt = now;
  }
}
