/**
 * Norwegian national identity numbers: fødselsnummer (fnr) and D-number (dnr).
 *
 * Layout `DDMMYY III K1 K2`: date of birth, individual number, two mod-11 check digits.
 * A D-number adds 4 to the first digit (day 41-71). Synthetic test numbers (month + 40 or
 * month + 80), H-numbers and FH-numbers are rejected: a referral must name a real person.
 *
 * Reasons never contain the number: they end up in logs and error responses.
 */

export type NationalIdCheck = { ok: true; kind: 'fnr' | 'dnr' } | { ok: false; reason: string };

const K1_WEIGHTS = [3, 7, 6, 1, 8, 9, 4, 5, 2] as const;
const K2_WEIGHTS = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2] as const;
const DAYS_IN_MONTH = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31] as const;

/**
 * @example
 * checkNationalId(referral.PID) // { ok: true, kind: 'fnr' }
 */
export function checkNationalId(pid: string): NationalIdCheck {
  if (typeof pid !== 'string' || !/^\d{11}$/.test(pid)) return { ok: false, reason: 'must be exactly 11 digits' };
  const d = Array.from(pid, Number);
  if (checkDigit(d, K1_WEIGHTS) !== d[9]) return { ok: false, reason: 'first check digit does not match' };
  if (checkDigit(d, K2_WEIGHTS) !== d[10]) return { ok: false, reason: 'second check digit does not match' };

  let day = d[0]! * 10 + d[1]!;
  const month = d[2]! * 10 + d[3]!;
  const year = d[4]! * 10 + d[5]!;
  const individual = d[6]! * 100 + d[7]! * 10 + d[8]!;
  const kind = day > 40 ? 'dnr' : 'fnr';
  if (kind === 'dnr') day -= 40;
  if (month < 1 || month > 12) return { ok: false, reason: 'month is not 01-12' };
  if (day < 1 || day > daysIn(month, year, individual)) return { ok: false, reason: 'day is not a date in that month' };
  return { ok: true, kind };
}

/**
 * A valid fnr (or, with `dnr`, a D-number) born 1940-2019, from `random` (floats in [0, 1)).
 * Same `random` sequence, same numbers. For simulators and tests only: the numbers are
 * well-formed, not reserved for testing, so never send them to a real system.
 */
export function generateNationalId(random: () => number, opts: { dnr?: boolean } = {}): string {
  const pick = (n: number) => Math.min(n - 1, Math.floor(random() * n));
  // About one prefix in six has no valid check digits (a remainder of 10); draw again.
  for (;;) {
    const year = 1940 + pick(80);
    const month = 1 + pick(12);
    const individual = year < 2000 ? pick(500) : 500 + pick(500);
    const day = 1 + pick(daysIn(month, year % 100, individual));
    const digits = Array.from(
      `${pad(day + (opts.dnr ? 40 : 0), 2)}${pad(month, 2)}${pad(year % 100, 2)}${pad(individual, 3)}`,
      Number,
    );
    const k1 = checkDigit(digits, K1_WEIGHTS);
    if (k1 === undefined) continue;
    digits.push(k1);
    const k2 = checkDigit(digits, K2_WEIGHTS);
    if (k2 === undefined) continue;
    digits.push(k2);
    return digits.join('');
  }
}

/** 11 - (weighted sum mod 11), with 11 meaning 0; undefined when the result would be 10. */
function checkDigit(digits: readonly number[], weights: readonly number[]): number | undefined {
  let sum = 0;
  for (let i = 0; i < weights.length; i++) sum += digits[i]! * weights[i]!;
  const k = 11 - (sum % 11);
  if (k === 11) return 0;
  return k === 10 ? undefined : k;
}

/**
 * Days in `month` of the two-digit `year`. Only 29 February needs the century: year 00 is 1900
 * (not a leap year) for individual numbers 000-499 and 2000 (a leap year) for 500-999. Every
 * other two-digit year divisible by 4 is a leap year in each century the numbers cover.
 */
function daysIn(month: number, year: number, individual: number): number {
  if (month !== 2) return DAYS_IN_MONTH[month - 1]!;
  const leap = year % 4 === 0 && !(year === 0 && individual < 500);
  return leap ? 29 : 28;
}

const pad = (n: number, width: number) => String(n).padStart(width, '0');
