/**
 * The simulator's visits and line items. A visit's initial items are computed from
 * `(seed, visit number)` when asked for, so a large `visitCount` costs a few fields per visit;
 * items are stored only once `changeItems` has changed them.
 */
import type { LineItem, Visit } from './schemas.ts';

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

const pad = (n: number) => String(n).padStart(6, '0');
export const visitIdOf = (n: number) => `V-${pad(n)}`;

/** A veterinary practice's price list: product and unit price. */
const PRODUCTS: ReadonlyArray<readonly [string, number]> = [
  ['Consultation', 48.5],
  ['Rabies vaccine', 32.9],
  ['Amoxicillin 250 mg tablet', 0.85],
  ['Meloxicam 1.5 mg/ml oral suspension', 14.2],
  ['Blood panel', 89],
  ['X-ray, one view', 74.5],
  ['Microchip implant', 39.95],
  ['Flea and tick treatment', 21.75],
  ['Dental cleaning', 189],
  ['Hospitalisation, per day', 65],
  ['Bandage change', 18.4],
  ['Nail clipping', 12.5],
];

/** quantity × unitPrice, rounded to cents as the practice system does. */
export function lineTotal(quantity: number, unitPrice: number): number {
  return Math.round(quantity * unitPrice * 100) / 100;
}

function itemAt(seed: number, visit: SimVisit, k: number, updatedAt: number): LineItem {
  const [productName, unitPrice] = PRODUCTS[Math.floor(hash01(seed, visit.number * 256 + k, 11) * PRODUCTS.length)]!;
  const quantity = 1 + Math.floor(hash01(seed, visit.number * 256 + k, 12) * 4);
  return {
    id: `${visit.id}-L${k}`,
    productName,
    quantity,
    unitPrice,
    total: lineTotal(quantity, unitPrice),
    updatedAt: new Date(updatedAt).toISOString(),
  };
}

export interface SimVisit {
  /** 1, 2, 3... in order of creation; the key of the visit's generated data. */
  number: number;
  id: string;
  patientId: string;
  /** ms since the epoch. */
  checkedInAt: number;
  open: boolean;
  /** Items numbered so far: the count it was created with, plus those `change()` added. */
  itemCount: number;
  /** Set once `change()` has touched the items; until then they are generated. */
  items?: LineItem[];
  /** The latest `updatedAt` among the items, so every change moves it forward. */
  updatedAt: number;
}

/** Every visit the simulator knows, open or closed; removed visits are forgotten. */
export class VisitBook {
  private readonly visits = new Map<string, SimVisit>();
  private next = 1;
  private readonly random: () => number;

  constructor(
    private readonly seed: number,
    private readonly now: () => number,
  ) {
    this.random = mulberry32(seed ^ 0x1b873593);
  }

  /** Adds an open visit. Its items are stamped with its check-in time. */
  open(fields: Partial<Visit>, itemCount: number, checkedInAt: number = this.now()): SimVisit {
    const number = this.next++;
    const id = fields.id ?? visitIdOf(number);
    if (this.visits.has(id)) throw new RangeError(`visit ${id} already exists`);
    const at = fields.checkedInAt === undefined ? checkedInAt : Date.parse(fields.checkedInAt);
    if (Number.isNaN(at)) throw new RangeError('checkedInAt is not a date');
    const patientId = fields.patientId ?? `P-${pad(1 + Math.floor(hash01(this.seed, number, 1) * 99_999))}`;
    const visit: SimVisit = { number, id, patientId, checkedInAt: at, open: true, itemCount, updatedAt: at };
    this.visits.set(id, visit);
    return visit;
  }

  get(id: string): SimVisit | undefined {
    return this.visits.get(id);
  }

  /** Returns whether the visit was open. */
  close(id: string): boolean {
    const visit = this.visits.get(id);
    if (!visit?.open) return false;
    visit.open = false;
    return true;
  }

  remove(id: string): boolean {
    return this.visits.delete(id);
  }

  /** Open visits in order of creation. */
  openVisits(): SimVisit[] {
    const open: SimVisit[] = [];
    for (const v of this.visits.values()) if (v.open) open.push(v);
    return open;
  }

  itemsOf(visit: SimVisit): LineItem[] {
    if (visit.items) return visit.items;
    return Array.from({ length: visit.itemCount }, (_, i) => itemAt(this.seed, visit, i + 1, visit.checkedInAt));
  }

  /**
   * Changes one item's quantity (or adds an item to an empty visit) and, every other time, adds
   * an item; the touched items get a fresh `updatedAt`, later than any before.
   */
  change(id: string): LineItem[] {
    const visit = this.visits.get(id);
    if (!visit) throw new RangeError(`no visit ${id}`);
    const items = this.itemsOf(visit).map((item) => ({ ...item }));
    visit.updatedAt = Math.max(this.now(), visit.updatedAt + 1);
    const stamp = new Date(visit.updatedAt).toISOString();
    const target = items.length > 0 ? items[Math.floor(this.random() * items.length)] : undefined;
    if (target) {
      target.quantity += 1 + Math.floor(this.random() * 3);
      target.total = lineTotal(target.quantity, target.unitPrice);
      target.updatedAt = stamp;
    }
    if (!target || this.random() < 0.5) {
      visit.itemCount++;
      items.push(itemAt(this.seed, visit, visit.itemCount, visit.updatedAt));
    }
    visit.items = items;
    return items;
  }
}

export function toVisit(v: SimVisit): Visit {
  return { id: v.id, patientId: v.patientId, checkedInAt: new Date(v.checkedInAt).toISOString() };
}
