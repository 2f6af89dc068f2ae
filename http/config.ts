import { z } from 'zod';

export const ROLES = ['admin', 'secretary', 'doctor', 'auditor', 'integration'] as const;
export type Role = (typeof ROLES)[number];

const tokenSchema = z.array(
  z.strictObject({
    token: z.string().min(16, 'each token must be at least 16 characters'),
    role: z.enum(ROLES),
    subject: z.string().min(1).max(200),
  }),
);

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

/** Every environment variable the app reads, with its default and meaning (README lists them). */
const schema = z.object({
  PORT: int(0, 65535).default(3000).describe('HTTP port of the API and dashboard'),
  HOST: z.string().min(1).default('127.0.0.1').describe('Interface to listen on (0.0.0.0 in containers)'),
  DATA_DIR: z.string().min(1).default('./data').describe('Embedded PostgreSQL data directory and demo tokens'),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL')
    .optional()
    .describe('External PostgreSQL; unset: embedded server under DATA_DIR'),
  REDIS_URL: z
    .string()
    .regex(/^rediss?:\/\//, 'must be a redis:// URL')
    .optional()
    .describe('Redis for locks, rate limits, pub/sub; unset: in-process (one node)'),
  API_TOKENS: z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined) return undefined;
      try {
        const parsed = tokenSchema.safeParse(JSON.parse(v));
        if (parsed.success) return parsed.data;
        const issue = parsed.error.issues[0]!;
        ctx.addIssue({ code: 'custom', message: `[${issue.path.join('].')}: ${issue.message}` });
      } catch {
        ctx.addIssue({ code: 'custom', message: 'must be JSON: [{"token","role","subject"}]' });
      }
      return z.NEVER;
    })
    .describe('JSON [{"token","role","subject"}]; unset: demo tokens are made and printed'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info').describe('pino log level'),
  MAX_BODY_BYTES: int(1024, 16 * 1024 * 1024).default(64 * 1024).describe('Largest request body accepted (413 beyond)'),
  ACTOR_IDLE_TIMEOUT_MS: int(1000, 86_400_000).default(60_000).describe('Evict an actor from memory after this long idle'),
  MAILBOX_SIZE: int(1, 1_000_000).default(1000).describe('Unprocessed events per actor before 503'),
  WAIT_TIMEOUT_MS: int(100, 120_000).default(10_000).describe('Longest ?wait=true waits for processing'),
  DB_POOL_SIZE: int(1, 200).default(10).describe('PostgreSQL connections per process'),
});

export type Config = z.output<typeof schema>;

export class ConfigError extends Error {}

/** Parses and validates the environment once, at boot; the first bad variable is named. */
export function loadConfig(env: Record<string, string | undefined>): Config {
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = schema.safeParse(cleaned);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const name = String(issue.path[0]);
  const got = name === 'API_TOKENS' || name.endsWith('_URL') ? '' : ` (got ${JSON.stringify(env[name])})`;
  throw new ConfigError(`invalid ${name}: ${issue.message}${got}`);
}

/** Name, default and meaning of each variable, for the README and `--help`. */
export function describeConfig(): { name: string; default: string; meaning: string }[] {
  return Object.entries(schema.shape).map(([name, field]) => {
    const def = (field as z.ZodType).safeParse(undefined);
    return {
      name,
      default: def.success && def.data !== undefined ? String(def.data) : '(unset)',
      meaning: (field as z.ZodType).description ?? '',
    };
  });
}
