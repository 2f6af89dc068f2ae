/** Options of the insurer simulator and the shape of what it records. */
import type { RecordedRequest, RequestKind } from './simulator-stats.ts';

/** The recorded figures, read-only to tests. */
export interface InsurerSimulatorStats {
  readonly inFlight: number;
  readonly maxInFlight: number;
  /** Requests answered 400 for lack of an Idempotency-Key. */
  readonly missingIdempotencyKey: number;
  readonly requests: readonly RecordedRequest[];
}

/** Relative weights of the kinds of failure; they need not sum to 1. */
export interface FailureMix {
  500: number;
  503: number;
  /** 429 with `Retry-After: 1`. */
  429: number;
  /** The socket is reset (RST) without an answer. */
  reset: number;
  /** The request is held open for `hangMs`, then the socket is destroyed. */
  timeout: number;
}

export type FailureKind = '500' | '503' | '429' | 'reset' | 'timeout';

export type Latency = number | { min: number; max: number } | ((request: { kind: RequestKind; patientId?: string }) => number);

export interface InsurerSimulatorSettings {
  patientCount: number;
  /** Patients per list page, whatever `limit` the client asks for. */
  pageSize: number;
  /** Share of list and care-records requests that fail, 0..1. */
  failureRate: number;
  failureMix: FailureMix;
  /** How long a `timeout` failure holds the request before dropping the connection. */
  hangMs: number;
  /** Share of patients whose care records answer 410, chosen per patient from the seed. */
  gone410Share: number;
  /** Delay before every answer, failures included. */
  latencyMs: Latency;
  /** Filler bytes per patient in list pages. */
  payloadBytes: number;
  careRecordsPerPatient: number;
  /** Same seed: same patients, same 410 set, same sequence of failure decisions. */
  seed: number;
}

export type InsurerSimulatorOptions = Partial<Omit<InsurerSimulatorSettings, 'failureMix'>> & {
  failureMix?: Partial<FailureMix>;
  /** 0 (default) picks a free port. */
  port?: number;
};

export const defaultSimulatorSettings: Readonly<InsurerSimulatorSettings> = Object.freeze({
  patientCount: 1000,
  pageSize: 100,
  failureRate: 0.8,
  // Hangs are opt-in: at the default failure rate they would dominate any run's wall time.
  failureMix: Object.freeze({ 500: 1, 503: 1, 429: 1, reset: 1, timeout: 0 }),
  hangMs: 30_000,
  gone410Share: 0.05,
  latencyMs: 2,
  payloadBytes: 0,
  careRecordsPerPatient: 3,
  seed: 1,
});
