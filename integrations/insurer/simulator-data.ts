/**
 * The simulator's deterministic data: patient `n` (1-based) is computed from `(seed, n)` alone,
 * so a page costs O(page size), never O(all patients), and the same seed gives the same data.
 */

/** mulberry32: a tiny, fast, seedable PRNG giving floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return function next() {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A stateless hash of `(seed, n, salt)` to a float in [0, 1). */
export function hash01(seed: number, n: number, salt = 0): number {
  let h = (seed ^ Math.imul(n, 0x9e3779b1) ^ Math.imul(salt + 1, 0x85ebca77)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
  h ^= h >>> 16;
  return (h >>> 0) / 4294967296;
}

function pick<T>(items: readonly T[], u: number): T {
  return items[Math.floor(u * items.length)] as T;
}

export function patientIdOf(n: number): string {
  return `P-${String(n).padStart(6, '0')}`;
}

/** The number of a simulator patient id (`P-000042` → 42), or undefined for any other string. */
export function patientNumberOf(id: string): number | undefined {
  const m = /^P-(\d{6,})$/.exec(id);
  if (!m) return undefined;
  const n = Number(m[1]);
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

const FIRST_NAMES = ['Ana', 'Bruno', 'Carla', 'Diego', 'Elisa', 'Felipe', 'Gabriela', 'Hugo', 'Ingrid', 'João', 'Karin', 'Lucas', 'Marta', 'Nuno', 'Olga', 'Pedro', 'Rita', 'Sofia', 'Tiago', 'Vera'];
const LAST_NAMES = ['Almeida', 'Berg', 'Costa', 'Dahl', 'Esteves', 'Fonseca', 'Gomes', 'Hansen', 'Iversen', 'Jensen', 'Lima', 'Moreira', 'Nilsen', 'Oliveira', 'Pereira', 'Rocha', 'Santos', 'Teixeira', 'Vik', 'Wold'];
const RECORD_TYPES = ['consultation', 'hospitalisation', 'physiotherapy', 'prescription', 'laboratory'];

function isoDate(year: number, month: number, day: number): string {
  return `${year}-${String(month).padStart(2, '0')}-${String(day).padStart(2, '0')}`;
}

/** A date between 1930 and 2019, always a real day (days 1-28). */
function dateFrom(seed: number, n: number, salt: number, fromYear = 1930, years = 90): string {
  const y = fromYear + Math.floor(hash01(seed, n, salt) * years);
  const m = 1 + Math.floor(hash01(seed, n, salt + 1) * 12);
  const d = 1 + Math.floor(hash01(seed, n, salt + 2) * 28);
  return isoDate(y, m, d);
}

export interface SimPatient {
  id: string;
  firstName: string;
  lastName: string;
  birthDate: string;
  /** Padding so tests can make list pages large; absent when `payloadBytes` is 0. */
  notes?: string;
}

let fillerCache = { bytes: 0, text: '' };
function filler(bytes: number): string {
  if (fillerCache.bytes !== bytes) fillerCache = { bytes, text: 'x'.repeat(bytes) };
  return fillerCache.text;
}

export function patientAt(seed: number, n: number, payloadBytes: number): SimPatient {
  const p: SimPatient = {
    id: patientIdOf(n),
    firstName: pick(FIRST_NAMES, hash01(seed, n, 1)),
    lastName: pick(LAST_NAMES, hash01(seed, n, 2)),
    birthDate: dateFrom(seed, n, 3),
  };
  if (payloadBytes > 0) p.notes = filler(payloadBytes);
  return p;
}

/** Whether patient `n` is one of the seeded "no longer insured" share (answers 410). */
export function seededGone(seed: number, n: number, share: number): boolean {
  return hash01(seed, n, 7) < share;
}

export function careRecordsOf(seed: number, n: number, count: number): Array<Record<string, unknown>> {
  const id = patientIdOf(n);
  const records: Array<Record<string, unknown>> = [];
  for (let k = 1; k <= count; k++) {
    const startsOn = dateFrom(seed, n * 64 + k, 11, 2015, 10);
    // Every third record is still open.
    const endsOn = hash01(seed, n * 64 + k, 15) < 1 / 3 ? null : dateFrom(seed, n * 64 + k, 16, 2025, 1);
    records.push({
      id: `${id}-CR-${k}`,
      type: pick(RECORD_TYPES, hash01(seed, n * 64 + k, 14)),
      startsOn,
      endsOn,
      provider: `Clinic ${1 + Math.floor(hash01(seed, n * 64 + k, 19) * 40)}`,
      amountCents: Math.floor(hash01(seed, n * 64 + k, 20) * 500_000),
    });
  }
  return records;
}

/**
 * One list page after patient number `after` (0 for the first page): up to `pageSize`
 * listed patients, skipping removed ones, and the number of the last one returned.
 * `more` says whether any listed patient follows.
 */
export function pageAfter(
  after: number,
  pageSize: number,
  patientCount: number,
  removed: ReadonlySet<number>,
): { numbers: number[]; more: boolean } {
  const numbers: number[] = [];
  let n = after + 1;
  for (; n <= patientCount && numbers.length < pageSize; n++) {
    if (!removed.has(n)) numbers.push(n);
  }
  while (n <= patientCount && removed.has(n)) n++;
  return { numbers, more: n <= patientCount };
}

export function encodeCursor(lastNumber: number): string {
  return `after-${lastNumber}`;
}

export function decodeCursor(cursor: string): number | undefined {
  const m = /^after-(\d{1,15})$/.exec(cursor);
  return m ? Number(m[1]) : undefined;
}
