import { describe, expect, it } from 'vitest';
import { checkIcpc2 } from '../../http/modules/consultations/icpc2.ts';

const CHAPTERS = 'ABDFHKLNPRSTUWXYZ'.split('');

describe('checkIcpc2', () => {
  it.each([
    ['A03', 'A', 'symptom'], // Fever
    ['L03', 'L', 'symptom'], // Low back symptom/complaint
    ['P01', 'P', 'symptom'], // Feeling anxious/nervous/tense
    ['Z29', 'Z', 'symptom'], // Social problem NOS
    ['R74', 'R', 'diagnosis'], // Upper respiratory infection acute
    ['K86', 'K', 'diagnosis'], // Hypertension uncomplicated
    ['T90', 'T', 'diagnosis'], // Diabetes non-insulin dependent
    ['W78', 'W', 'diagnosis'], // Pregnancy
    ['A99', 'A', 'diagnosis'],
    ['P76', 'P', 'diagnosis'], // Depressive disorder
    ['X99', 'X', 'diagnosis'],
  ] as const)('accepts %s as chapter %s, %s', (code, chapter, component) => {
    expect(checkIcpc2(code)).toEqual({ ok: true, chapter, component });
  });

  it('accepts every process code 30-69 in every chapter', () => {
    for (const chapter of CHAPTERS) {
      for (let n = 30; n <= 69; n++) expect(checkIcpc2(`${chapter}${n}`)).toEqual({ ok: true, chapter, component: 'process' });
    }
  });

  it('accepts the first and last symptom and diagnosis rubric of each chapter', () => {
    for (const chapter of CHAPTERS) {
      expect(checkIcpc2(`${chapter}29`)).toMatchObject({ ok: true, component: 'symptom' });
      if (chapter !== 'Z') expect(checkIcpc2(`${chapter}99`)).toMatchObject({ ok: true, component: 'diagnosis' });
    }
  });

  it('rejects codes in the gaps of the rubric list', () => {
    for (const code of ['A12', 'A83', 'B01', 'B85', 'F77', 'H87', 'K08', 'K97', 'N02', 'N77', 'P14', 'P83', 'R70', 'R91', 'T06', 'T74', 'U73', 'W74', 'X93', 'Y09', 'Y87', 'Z17', 'Z26']) {
      expect(checkIcpc2(code), code).toEqual({ ok: false, reason: expect.stringMatching(/^not an ICPC-2 (symptom|diagnosis) rubric$/) });
    }
  });

  it('rejects diagnoses in chapter Z, which has none', () => {
    for (const code of ['Z70', 'Z85', 'Z99']) expect(checkIcpc2(code)).toEqual({ ok: false, reason: 'the chapter has no diagnosis rubrics' });
  });

  it('rejects 00', () => {
    expect(checkIcpc2('A00')).toEqual({ ok: false, reason: 'not an ICPC-2 rubric (00 is unused)' });
  });

  it('rejects letters that are not chapters', () => {
    for (const letter of 'CEGIJMOQV') expect(checkIcpc2(`${letter}74`)).toEqual({ ok: false, reason: 'the letter is not an ICPC-2 chapter' });
  });

  it('rejects anything that is not one uppercase letter and two digits', () => {
    for (const code of ['', 'r74', 'R7', 'R740', 'R 74', ' R74', 'R74 ', 'R-74', '-74', 'RR74', 'R7a', 'T90.1', 'R７４', '74R']) {
      expect(checkIcpc2(code), code).toEqual({ ok: false, reason: 'must be one uppercase chapter letter and two digits, e.g. R74' });
    }
  });
});
