/**
 * ICPC-2 (International Classification of Primary Care, 2nd edition) codes as Norwegian
 * primary care records them: a chapter letter and two digits, e.g. `R74`, `L03`, `K86`.
 *
 * Components, by number:
 * - 01-29 symptoms and complaints (chapter Z, social problems, has only these: its "diagnoses"
 *   are the same rubrics);
 * - 30-69 process codes (examination, tests, medication, referral, ...), defined once for
 *   every chapter, so all of 30-69 is accepted with any chapter letter;
 * - 70-99 diagnoses and diseases.
 *
 * Source of the tables below: the ICPC-2-R rubric list (WONCA, 2005), with its English short
 * titles, checked rubric by rubric. Assumed, not verified against the official file: that the
 * Norwegian edition (ICPC-2 / ICPC-2e from the Directorate of e-health) translates the titles
 * but keeps exactly these rubrics. Only listed rubrics are accepted: most chapters have gaps
 * (there is no A83, no R70, no T74), and a code in a gap is a typo or an ICPC-1 code.
 * Extensions (sub-codes like `T90.1`, ICPC-2-B additions) are rejected. If the list is
 * revised, edit the tables; nothing else changes.
 */

export type Icpc2Component = 'symptom' | 'process' | 'diagnosis';

export type Icpc2Check = { ok: true; chapter: string; component: Icpc2Component } | { ok: false; reason: string };

/** Inclusive ranges, as `[from, to]`. */
type Ranges = ReadonlyArray<readonly [number, number]>;

interface Chapter {
  /** Symptom and complaint rubrics (01-29). */
  symptoms: Ranges;
  /** Diagnosis and disease rubrics (70-99). */
  diagnoses: Ranges;
}

const CHAPTERS: Readonly<Record<string, Chapter>> = {
  // General and unspecified
  A: { symptoms: [[1, 11], [13, 13], [16, 16], [18, 18], [20, 21], [23, 23], [25, 29]], diagnoses: [[70, 82], [84, 99]] },
  // Blood, blood-forming organs and immune mechanism
  B: { symptoms: [[2, 2], [4, 4], [25, 29]], diagnoses: [[70, 84], [87, 87], [90, 90], [99, 99]] },
  // Digestive
  D: { symptoms: [[1, 21], [23, 29]], diagnoses: [[70, 99]] },
  // Eye
  F: { symptoms: [[1, 5], [13, 18], [27, 29]], diagnoses: [[70, 76], [79, 86], [91, 95], [99, 99]] },
  // Ear
  H: { symptoms: [[1, 5], [13, 13], [15, 15], [27, 29]], diagnoses: [[70, 86], [99, 99]] },
  // Circulatory
  K: { symptoms: [[1, 7], [22, 22], [24, 25], [27, 29]], diagnoses: [[70, 96], [99, 99]] },
  // Musculoskeletal
  L: { symptoms: [[1, 5], [7, 20], [26, 29]], diagnoses: [[70, 99]] },
  // Neurological
  N: { symptoms: [[1, 1], [3, 8], [16, 19], [26, 29]], diagnoses: [[70, 76], [79, 81], [85, 95], [99, 99]] },
  // Psychological
  P: { symptoms: [[1, 13], [15, 20], [22, 25], [27, 29]], diagnoses: [[70, 82], [85, 86], [98, 99]] },
  // Respiratory
  R: { symptoms: [[1, 9], [21, 21], [23, 29]], diagnoses: [[71, 90], [92, 92], [95, 99]] },
  // Skin
  S: { symptoms: [[1, 24], [26, 29]], diagnoses: [[70, 99]] },
  // Endocrine, metabolic and nutritional
  T: { symptoms: [[1, 5], [7, 8], [10, 11], [26, 29]], diagnoses: [[70, 73], [78, 78], [80, 83], [85, 87], [89, 93], [99, 99]] },
  // Urological
  U: { symptoms: [[1, 2], [4, 8], [13, 14], [26, 29]], diagnoses: [[70, 72], [75, 80], [85, 85], [88, 88], [90, 90], [95, 95], [98, 99]] },
  // Pregnancy, childbearing, family planning
  W: { symptoms: [[1, 3], [5, 5], [10, 15], [17, 19], [21, 21], [27, 29]], diagnoses: [[70, 73], [75, 76], [78, 85], [90, 96], [99, 99]] },
  // Female genital (and breast)
  X: { symptoms: [[1, 29]], diagnoses: [[70, 92], [99, 99]] },
  // Male genital (and breast)
  Y: { symptoms: [[1, 8], [10, 10], [13, 14], [16, 16], [24, 29]], diagnoses: [[70, 86], [99, 99]] },
  // Social problems
  Z: { symptoms: [[1, 16], [18, 25], [27, 29]], diagnoses: [] },
};

const inRanges = (n: number, ranges: Ranges) => ranges.some(([from, to]) => n >= from && n <= to);

/**
 * @example
 * checkIcpc2('R74') // { ok: true, chapter: 'R', component: 'diagnosis' }
 * checkIcpc2('K45') // { ok: true, chapter: 'K', component: 'process' }
 * checkIcpc2('A83') // { ok: false, reason: 'not an ICPC-2 diagnosis rubric' }
 */
export function checkIcpc2(code: string): Icpc2Check {
  if (typeof code !== 'string') return { ok: false, reason: 'must be a string' };
  const m = /^([A-Z])(\d{2})$/.exec(code);
  if (!m) return { ok: false, reason: 'must be one uppercase chapter letter and two digits, e.g. R74' };
  const chapter = m[1]!;
  const number = Number(m[2]);
  const table = CHAPTERS[chapter];
  if (!table) return { ok: false, reason: 'the letter is not an ICPC-2 chapter' };
  if (number === 0) return { ok: false, reason: 'not an ICPC-2 rubric (00 is unused)' };
  if (number <= 29) {
    return inRanges(number, table.symptoms)
      ? { ok: true, chapter, component: 'symptom' }
      : { ok: false, reason: 'not an ICPC-2 symptom rubric' };
  }
  if (number <= 69) return { ok: true, chapter, component: 'process' };
  if (table.diagnoses.length === 0) return { ok: false, reason: 'the chapter has no diagnosis rubrics' };
  return inRanges(number, table.diagnoses)
    ? { ok: true, chapter, component: 'diagnosis' }
    : { ok: false, reason: 'not an ICPC-2 diagnosis rubric' };
}
