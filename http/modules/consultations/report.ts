import { Hono } from 'hono';
import { Counter, Histogram, Registry } from 'prom-client';
import { z } from 'zod';
import { reportRows } from '../../../storage/consultations/records.ts';
import type { Db } from '../../../storage/db.ts';
import { requireRole, type AuthEnv } from '../../auth.ts';
import { ProblemError } from '../../problem.ts';
import { parseQuery } from '../../request.ts';

/** Waiting time (starts_at − created_at) and treatment duration (ends_at − starts_at), in seconds. */
export function consultationMetrics() {
  const registry = new Registry();
  const buckets = [60, 300, 900, 1800, 3600, 7200, 14_400, 28_800, 86_400];
  const waiting = new Histogram({ name: 'consultation_waiting_seconds', help: 'Consultation waiting time: starts_at - created_at', buckets, registers: [registry] });
  const treatment = new Histogram({ name: 'consultation_treatment_seconds', help: 'Consultation treatment duration: ends_at - starts_at', buckets: [60, 300, 600, 900, 1800, 3600, 7200], registers: [registry] });
  const slaAlerts = new Counter({ name: 'consultation_sla_alerts_total', help: 'Consultations not picked up within their SLA', registers: [registry] });
  return { registry, waiting, treatment, slaAlerts };
}

const reportQuery = z.strictObject({
  from: z.iso.datetime({ offset: true, error: 'from must be an ISO 8601 date-time' }),
  to: z.iso.datetime({ offset: true, error: 'to must be an ISO 8601 date-time' }),
  format: z.enum(['json', 'csv']).optional(),
});

const pct = (sorted: number[], p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]! : null);
const summary = (values: number[]) => {
  const s = [...values].sort((a, b) => a - b);
  return { n: s.length, p50: pct(s, 50), p90: pct(s, 90), p99: pct(s, 99), max: s.length ? s[s.length - 1]! : null };
};

/**
 * `GET /reports/consultations?from=&to=` (admin, auditor): consultations created in the period,
 * counts per state and outcome, waiting-time and treatment-duration percentiles in seconds. JSON,
 * or CSV with `format=csv` or `Accept: text/csv`. Aggregates only: no person, no result.
 */
export function consultationReport({ db }: { db: Db }) {
  const app = new Hono<AuthEnv>();
  app.get('/reports/consultations', requireRole('admin', 'auditor'), async (c) => {
    const q = parseQuery(c, reportQuery);
    const from = Date.parse(q.from);
    const to = Date.parse(q.to);
    if (!(from < to)) throw new ProblemError(400, 'from must be before to', 'from');
    const rows = await reportRows(db, from, to);
    const byState: Record<string, number> = {};
    const byOutcome: Record<string, number> = {};
    const waiting: number[] = [];
    const treatment: number[] = [];
    for (const r of rows) {
      byState[r.state] = (byState[r.state] ?? 0) + 1;
      if (r.outcome) byOutcome[r.outcome] = (byOutcome[r.outcome] ?? 0) + 1;
      if (r.startsAt !== null && r.createdAt !== null) waiting.push((r.startsAt - r.createdAt) / 1000);
      if (r.endsAt !== null && r.startsAt !== null && r.state === 'completed') treatment.push((r.endsAt - r.startsAt) / 1000);
    }
    const report = { from: q.from, to: q.to, consultations: rows.length, byState, byOutcome, waitingSeconds: summary(waiting), treatmentSeconds: summary(treatment) };
    if (q.format === 'csv' || (!q.format && /text\/csv/.test(c.req.header('accept') ?? ''))) {
      const lines = ['metric,key,value', `consultations,,${rows.length}`];
      for (const [k, v] of Object.entries(byState)) lines.push(`state,${k},${v}`);
      for (const [k, v] of Object.entries(byOutcome)) lines.push(`outcome,${k},${v}`);
      for (const [name, s] of [['waiting_seconds', report.waitingSeconds], ['treatment_seconds', report.treatmentSeconds]] as const) {
        for (const [k, v] of Object.entries(s)) lines.push(`${name},${k},${v ?? ''}`);
      }
      c.header('content-type', 'text/csv; charset=utf-8');
      return c.body(`${lines.join('\n')}\n`);
    }
    return c.json(report);
  });
  return app;
}
