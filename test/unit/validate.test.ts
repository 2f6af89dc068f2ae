import { describe, expect, it } from 'vitest';
import type { ResolvedActorType } from '../../actors/types.ts';
import { validateEvent } from '../../actors/validate.ts';
import { tallyType } from '../../http/modules/demo.ts';

const tally = { ...tallyType(), name: 'tally' } as unknown as ResolvedActorType;
const validate = (json: string) => validateEvent(tally, JSON.parse(json));

describe('validateEvent', () => {
  it('returns a new object with the parsed fields and the type last', () => {
    const input = JSON.parse('{"type":"add","amount":2,"id":"e1"}');
    const event = validate('{"type":"add","amount":2,"id":"e1"}');
    expect(JSON.stringify(event)).toBe('{"id":"e1","amount":2,"type":"add"}');
    expect(event).not.toBe(input);
  });

  it('refuses a "__proto__" key as the unknown field it is, never reading fields through it', () => {
    // JSON makes "__proto__" an own field; copied by assignment it would become the prototype.
    expect(() => validate('{"type":"add","id":"a","amount":1,"__proto__":{"x":1}}')).toThrow(/Unrecognized key: "__proto__"/);
    expect(() => validate('{"type":"add","__proto__":{"id":"a","amount":1}}')).toThrow(expect.objectContaining({ field: 'id' }));
  });
});
