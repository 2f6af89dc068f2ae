/**
 * When a daily `HH:MM` in an IANA time zone next comes after `now` (epoch ms). Handles DST:
 * a time that does not exist that day (spring forward) runs at the first minute after the gap.
 */
export function nextDailyAt(now: number, hhmm: string, timeZone: string): number {
  const [h, m] = hhmm.split(':').map(Number) as [number, number];
  const today = zonedParts(now, timeZone);
  for (let addDays = 0; addDays <= 2; addDays++) {
    const day = new Date(Date.UTC(today.year, today.month - 1, today.day + addDays));
    const at = zonedToEpoch(day.getUTCFullYear(), day.getUTCMonth() + 1, day.getUTCDate(), h, m, timeZone);
    if (at > now) return at;
  }
  throw new Error('unreachable: a daily time always recurs within two days');
}

/** The local calendar date of `epoch` in `timeZone`, as YYYY-MM-DD. */
export function localDate(epoch: number, timeZone: string): string {
  const p = zonedParts(epoch, timeZone);
  return `${p.year}-${String(p.month).padStart(2, '0')}-${String(p.day).padStart(2, '0')}`;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function zonedParts(epoch: number, timeZone: string) {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', { timeZone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric' });
    formatters.set(timeZone, f);
  }
  const parts = Object.fromEntries(f.formatToParts(epoch).map((p) => [p.type, p.value]));
  return { year: +parts.year!, month: +parts.month!, day: +parts.day!, hour: +parts.hour!, minute: +parts.minute!, second: +parts.second! };
}

/** Epoch ms of a wall-clock time in `timeZone` (the offset is found by two corrections). */
function zonedToEpoch(y: number, mo: number, d: number, h: number, mi: number, timeZone: string): number {
  const wall = Date.UTC(y, mo - 1, d, h, mi);
  let guess = wall;
  for (let i = 0; i < 2; i++) {
    const p = zonedParts(guess, timeZone);
    const seen = Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second);
    guess += wall - seen;
  }
  return guess;
}

export function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}
