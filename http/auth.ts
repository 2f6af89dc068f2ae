import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { MiddlewareHandler } from 'hono';
import { ROLES, type Role } from './config.ts';
import { ProblemError } from './problem.ts';

export interface Principal {
  role: Role;
  subject: string;
}

export interface TokenEntry extends Principal {
  token: string;
}

export type AuthEnv = { Variables: { principal: Principal; requestId: string } };

const digest = (token: string) => createHash('sha256').update(token).digest('hex');

/** Checks the bearer token; lookups are by digest so no token is compared byte by byte. */
export function authenticate(tokens: TokenEntry[]): MiddlewareHandler<AuthEnv> {
  const byDigest = new Map(tokens.map((t) => [digest(t.token), { role: t.role, subject: t.subject }]));
  // Headers already matched, so a client's token is hashed once, not on every request.
  const seen = new Map<string, Principal>();
  // Not async: it hands back next()'s promise rather than wrapping it in one more.
  return function authenticateBearer(c, next) {
    const header = c.req.header('authorization') ?? '';
    let principal = seen.get(header);
    if (!principal) {
      const match = /^Bearer\s+(\S+)$/i.exec(header);
      principal = match ? byDigest.get(digest(match[1]!)) : undefined;
      if (principal && seen.size < tokens.length * 4) seen.set(header, principal);
    }
    if (!principal) {
      c.header('www-authenticate', 'Bearer');
      throw new ProblemError(401, /^Bearer\s+\S+$/i.test(header) ? 'unknown bearer token' : 'a bearer token is required', 'Authorization');
    }
    c.set('principal', principal);
    return next();
  };
}

/** Allows only the given roles. */
export function requireRole(...roles: Role[]): MiddlewareHandler<AuthEnv> {
  return function roleGuard(c, next) {
    const { role } = c.get('principal');
    if (!roles.includes(role)) throw new ProblemError(403, `role '${role}' may not use this route (needs ${roles.join(' or ')})`, 'Authorization');
    return next();
  };
}

/**
 * Demo tokens for `npm start` with nothing configured: one per role, kept in DATA_DIR so they
 * stay the same across restarts.
 */
export function demoTokens(dataDir: string): TokenEntry[] {
  const file = path.join(dataDir, 'demo-tokens.json');
  if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')) as TokenEntry[];
  const tokens = ROLES.map((role) => ({ token: `demo-${role}-${randomBytes(12).toString('hex')}`, role, subject: `demo-${role}` }));
  mkdirSync(dataDir, { recursive: true });
  writeFileSync(file, JSON.stringify(tokens, null, 2), { mode: 0o600 });
  return tokens;
}
