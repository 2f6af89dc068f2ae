import { describe, expect, it } from 'vitest';
import { ConfigError, describeConfig, loadConfig } from '../../http/config.ts';

describe('config', () => {
  it('applies defaults when nothing is set', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({ PORT: 3000, DATA_DIR: './data', LOG_LEVEL: 'info' });
    expect(c.DATABASE_URL).toBeUndefined();
    expect(c.API_TOKENS).toBeUndefined();
  });

  it.each([
    [{ PORT: 'abc' }, /^invalid PORT: .*\(got "abc"\)$/],
    [{ PORT: '70000' }, /^invalid PORT/],
    [{ DATABASE_URL: 'mysql://x' }, /^invalid DATABASE_URL: must be a postgres:\/\/ URL$/],
    [{ REDIS_URL: 'http://x' }, /^invalid REDIS_URL/],
    [{ LOG_LEVEL: 'loud' }, /^invalid LOG_LEVEL/],
    [{ API_TOKENS: 'not json' }, /^invalid API_TOKENS: must be JSON/],
    [{ API_TOKENS: '[{"token":"short","role":"admin","subject":"a"}]' }, /^invalid API_TOKENS: .*token.*16/],
    [{ API_TOKENS: '[{"token":"0123456789abcdef0","role":"king","subject":"a"}]' }, /^invalid API_TOKENS: .*role/],
  ])('names the variable in one line for %j', (env, message) => {
    let err: unknown;
    try {
      loadConfig(env);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(message);
    expect((err as Error).message).not.toContain('\n');
  });

  it('never echoes a secret-bearing value', () => {
    expect(() => loadConfig({ API_TOKENS: '[{"token":"secret-secret-secret","role":"nope","subject":"x"}]' })).toThrow(/^(?!.*secret-secret).*$/);
  });

  it('describes every variable with a default and a meaning', () => {
    const rows = describeConfig();
    expect(rows.map((r) => r.name)).toEqual(expect.arrayContaining(['PORT', 'DATA_DIR', 'DATABASE_URL', 'REDIS_URL', 'API_TOKENS']));
    expect(rows.every((r) => r.meaning.length > 0)).toBe(true);
  });
});
