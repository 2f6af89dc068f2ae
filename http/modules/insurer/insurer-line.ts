import type { InsurerClient } from '../../../integrations/insurer/client.ts';
import type { CareRecord, PatientPage } from '../../../integrations/insurer/schemas.ts';
import type { Priority } from './scheduler.ts';

/** One request to the insurer, as data: it may be sent from another thread. */
export type InsurerCall =
  | { op: 'careRecords'; patientId: string; idempotencyKey: string }
  | { op: 'listPatients'; cursor: string | null; limit: number; idempotencyKey: string };

export type CallResult<C extends InsurerCall> = C extends { op: 'careRecords' } ? CareRecord[] : PatientPage;

export interface SendOptions {
  /** Our back-off: due from then; sent earlier only when nothing else can go. Epoch ms. */
  notBefore?: number;
  /** The wait the insurer named (Retry-After): never sent before it. Epoch ms. */
  holdUntil?: number;
  /** Withdraws the request while it is still queued; once sent, it runs to its end. */
  signal?: AbortSignal;
}

export interface LineStats {
  made: number;
  failed: number;
  inFlight: number;
  lastRequestAt: number;
}

/**
 * An insurer's line as the sync sees it: requests go one at a time, interactive first (see
 * LineScheduler), and each resolves with the insurer's answer or rejects with an InsurerError,
 * or LineStoppedError when the line stops first.
 */
export interface InsurerLine {
  send<C extends InsurerCall>(kind: Priority, call: C, opts?: SendOptions): Promise<CallResult<C>>;
  /** Requests queued in this process, by priority. */
  readonly waiting: Record<Priority, number>;
  readonly stats: LineStats;
}

export const whatOf = (call: InsurerCall) => (call.op === 'careRecords' ? 'care-records' : 'list-patients');

export function callInsurer(client: InsurerClient, call: InsurerCall, signal: AbortSignal): Promise<CareRecord[] | PatientPage> {
  return call.op === 'careRecords'
    ? client.careRecords(call.patientId, { idempotencyKey: call.idempotencyKey, signal })
    : client.listPatients({ cursor: call.cursor, limit: call.limit, idempotencyKey: call.idempotencyKey, signal });
}

/** The line's id in the store (storage/line) for an insurer. */
export const lineId = (insurerId: string) => `insurer:${insurerId}`;
