import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { arrayLiteral } from '../../actors/commit-sql.ts';
import { testDb, type TestDb } from '../support/db.ts';

// The group commit writes its columns as array literals it builds itself: PostgreSQL must read
// back exactly what went in, whatever the text holds.
describe('group commit array literals on real Postgres', () => {
  let t: TestDb;
  beforeAll(async () => {
    t = await testDb('default');
  });
  afterAll(async () => {
    await t.cleanup();
  });

  const roundTrip = async (type: string, data: unknown[]) =>
    (await t.db.query<{ v: unknown[] }>(`SELECT $1::${type}[] AS v`, [arrayLiteral(data)])).rows[0]!.v;

  it('reads text back as written, quotes, backslashes, braces, NULL and look-alikes included', async () => {
    const text = ['plain', '', ' padded ', 'say "hi"', 'back\\slash', '\\"', 'a,b', '{x}', 'NULL', null, 'null', 'ünï ✓ 𝄞', "it's", 'tab\there', 'line\nbreak'];
    expect(await roundTrip('text', text)).toEqual(text);
  });

  it('reads numbers, booleans and an empty array back', async () => {
    expect(await roundTrip('bigint', [0, 1795481710480, -3, null])).toEqual(['0', '1795481710480', '-3', null]);
    expect(await roundTrip('bool', [true, false, null])).toEqual([true, false, null]);
    expect(await roundTrip('text', [])).toEqual([]);
  });
});
