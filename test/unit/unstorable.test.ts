import { describe, expect, it } from 'vitest';
import { unstorableText } from '../../actors/validate.ts';

const check = (event: unknown) => unstorableText(JSON.stringify(event), event);

describe('unstorableText', () => {
  it('names the string or key holding a NUL character or half a surrogate pair', () => {
    expect(check({ type: 'add', id: 'a\u0000' })).toBe('id');
    expect(check({ type: 'add', patient: { names: ['ok', '\udc00 low half'] } })).toBe('patient.names.1');
    expect(check({ type: 'add', meta: { 'key\u0000': 1 } })).toBe('meta.key\u0000');
    expect(check({ type: 'add', note: 'high half at the end \ud83d' })).toBe('note');
  });

  it('lets through whole pairs, other control characters and text that only looks like an escape', () => {
    expect(check({ type: 'add', note: 'emoji 😀, tab\t, bell \u0007' })).toBeUndefined();
    expect(check({ type: 'add', note: 'a backslash and u0000: \\u0000, \\ud800' })).toBeUndefined();
  });
});
