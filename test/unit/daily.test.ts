import { describe, expect, it } from 'vitest';
import { isTimeZone, localDate, nextDailyAt } from '../../http/modules/insurer/daily.ts';

describe('next daily run time', () => {
  it('is later today when the time has not passed, else tomorrow (Europe/Berlin, winter: UTC+1)', () => {
    const now = Date.parse('2026-01-10T00:30:00Z'); // 01:30 in Berlin
    expect(new Date(nextDailyAt(now, '02:00', 'Europe/Berlin')).toISOString()).toBe('2026-01-10T01:00:00.000Z');
    const later = Date.parse('2026-01-10T01:00:00Z'); // exactly 02:00: the next one is tomorrow
    expect(new Date(nextDailyAt(later, '02:00', 'Europe/Berlin')).toISOString()).toBe('2026-01-11T01:00:00.000Z');
  });

  it('follows summer time (UTC+2) and the spring-forward gap', () => {
    expect(new Date(nextDailyAt(Date.parse('2026-07-01T12:00:00Z'), '02:00', 'Europe/Berlin')).toISOString()).toBe('2026-07-02T00:00:00.000Z');
    // 2026-03-29 02:00 does not exist in Berlin (clocks jump 02:00 -> 03:00).
    const at = nextDailyAt(Date.parse('2026-03-28T12:00:00Z'), '02:00', 'Europe/Berlin');
    expect(at).toBeGreaterThan(Date.parse('2026-03-28T12:00:00Z'));
    expect(at).toBeLessThanOrEqual(Date.parse('2026-03-29T01:00:00Z'));
  });

  it('gives local dates and knows time zones', () => {
    expect(localDate(Date.parse('2026-01-10T23:30:00Z'), 'Europe/Berlin')).toBe('2026-01-11');
    expect(isTimeZone('America/Sao_Paulo')).toBe(true);
    expect(isTimeZone('Mars/Olympus')).toBe(false);
  });
});
