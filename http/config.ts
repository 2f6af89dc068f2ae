import { z } from 'zod';
import { isTimeZone } from './modules/insurer/daily.ts';

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

const insurerSchema = z.array(
  z.strictObject({
    id: z.string().regex(/^[A-Za-z0-9_-]{1,32}$/, 'id must be 1-32 of letters, digits, _ and -'),
    baseUrl: z.url({ protocol: /^https?$/ }),
    timeoutMs: z.number().int().min(100).max(120_000).default(2_000),
    dailyAt: z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'dailyAt must be HH:MM').default('02:00'),
    timeZone: z.string().refine(isTimeZone, 'timeZone must be an IANA time zone such as Europe/Berlin').default('Europe/Berlin'),
  }),
);

const dataKeysSchema = z.strictObject({
  keys: z
    .array(z.strictObject({ id: z.string().regex(/^[A-Za-z0-9_-]{1,32}$/), key: z.base64().refine((k) => Buffer.from(k, 'base64').length === 32, 'each key must be 32 bytes, base64') }))
    .min(1),
  lookupKey: z.base64().refine((k) => Buffer.from(k, 'base64').length >= 32, 'lookupKey must be at least 32 bytes, base64'),
});

/** A JSON-valued variable: parsed, then checked against `schema`; the first issue is named. */
function json<S extends z.ZodType>(schema: S, shape: string) {
  return z
    .string()
    .optional()
    .transform((v, ctx): z.output<S> | undefined => {
      if (v === undefined) return undefined;
      let value: unknown;
      try {
        value = JSON.parse(v);
      } catch {
        ctx.addIssue({ code: 'custom', message: `must be JSON: ${shape}` });
        return z.NEVER;
      }
      const parsed = schema.safeParse(value);
      if (parsed.success) return parsed.data;
      const issue = parsed.error.issues[0]!;
      ctx.addIssue({ code: 'custom', message: `${issue.path.length ? `[${issue.path.join('].')}: ` : ''}${issue.message}` });
      return z.NEVER;
    });
}

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
  API_TOKENS: json(tokenSchema, '[{"token","role","subject"}]').describe('JSON [{"token","role","subject"}]; unset: demo tokens are made and printed'),
  INSURERS: json(insurerSchema, '[{"id","baseUrl","timeoutMs","dailyAt","timeZone"}]').describe(
    'JSON [{"id","baseUrl","timeoutMs","dailyAt","timeZone"}]; unset: a built-in insurer simulator and demo insurer KK01',
  ),
  DATA_KEYS: json(dataKeysSchema, '{"keys":[{"id","key"}],"lookupKey"}').describe(
    'JSON {"keys":[{"id","key"}],"lookupKey"} (base64, 32 bytes; first key encrypts); unset: generated into DATA_DIR',
  ),
  PIMS_URL: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).optional().describe('Practice system base URL; unset: a built-in practice-system simulator with a few hundred open visits'),
  PIMS_RATE_PER_S: z.coerce.number().positive().max(100_000).default(20).describe('Requests per second to the practice system, shared by all processes (token bucket on Redis when set)'),
  PIMS_TIMEOUT_MS: int(100, 120_000).default(5_000).describe('Timeout of one request to the practice system'),
  VISIT_MAX_AGE_MS: int(1_000, 7 * 86_400_000).default(300_000).describe("Age at which a visit's line items are refreshed (spread over its last 20%)"),
  VISIT_ERROR_AFTER: int(1, 1_000).default(5).describe('Failed refreshes in a row before a visit shows the error state (it keeps trying, slower)'),
  VISIT_RETENTION_MS: int(0, 365 * 86_400_000).default(86_400_000).describe("How long a checked-out visit's last line items stay readable before it is removed"),
  CENSUS_INTERVAL_MS: int(1_000, 86_400_000).default(120_000).describe('Period of the census that heals missed check-in and check-out hooks'),
  PRIDOK_WEBHOOK_SECRET: z.string().min(16, 'must be at least 16 characters').optional().describe('HMAC key of the referral webhook; unset: a demo secret, and a built-in sender trickles signed referrals'),
  PRIDOK_INSURER_ID: z.string().regex(/^[A-Za-z0-9_-]{1,32}$/, 'must be 1-32 of letters, digits, _ and -').default('KK01').describe('The insurer whose customers the record system refers (users from referrals are tagged with it)'),
  COMMS_URL: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).optional().describe('Chat/video/mail provider base URL; unset: a built-in comms simulator'),
  CONSULTATION_SLA_MS: int(1_000, 7 * 86_400_000).default(1_800_000).describe('A consultation not picked up within this raises an alert'),
  BOOKING_FOLLOW_UP_MS: int(1_000, 30 * 86_400_000).default(14_400_000).describe('After a call that did not reach the patient, the next call is due after this'),
  BOOKING_EXPIRE_MS: int(1_000, 365 * 86_400_000).default(604_800_000).describe('A booking whose patient was not reached within this (from creation) expires'),
  INSURER_LINE_NICE: int(-20, 19)
    .default(-10)
    .describe(
      'Scheduling priority (nice) of the insurer line thread, so the next request goes out as soon as the last answer is in while the rest of the process and the database keep the cores busy; below 0 needs CAP_SYS_NICE or a nice limit (RLIMIT_NICE, `ulimit -e`) of at least 20 minus it (refused: the process priority, with a warning)',
    ),
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
  const secret = name === 'API_TOKENS' || name === 'DATA_KEYS' || name === 'INSURERS' || name.endsWith('_URL') || name.endsWith('_SECRET');
  const got = secret ? '' : ` (got ${JSON.stringify(env[name])})`;
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
