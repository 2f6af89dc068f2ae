import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';

export interface DataKey {
  id: string;
  /** 32 bytes. */
  key: Buffer;
}

/**
 * Field encryption at rest: AES-256-GCM with the key id stored beside each value, so keys can
 * rotate (new values use the first key; old values still decrypt with theirs). Lookups by a
 * sensitive value use a keyed hash (HMAC-SHA256), never the plaintext.
 *
 * Format: `v1.<keyId>.<iv>.<tag>.<ciphertext>` (base64url parts).
 */
export interface FieldCipher {
  encrypt(plaintext: string, aad?: string): string;
  decrypt(sealed: string, aad?: string): string;
  /** Keyed hash for lookups (e.g. by national id). */
  lookupHash(value: string): string;
  readonly currentKeyId: string;
}

export function createFieldCipher({ keys, lookupKey }: { keys: DataKey[]; lookupKey: Buffer }): FieldCipher {
  if (!keys.length) throw new Error('at least one data key is required');
  for (const k of keys) {
    if (k.key.length !== 32) throw new Error(`data key '${k.id}' must be 32 bytes`);
    if (!/^[A-Za-z0-9_-]{1,32}$/.test(k.id)) throw new Error(`data key id '${k.id}' must be 1-32 of [A-Za-z0-9_-]`);
  }
  const byId = new Map(keys.map((k) => [k.id, k.key]));
  const current = keys[0]!;
  return {
    currentKeyId: current.id,
    encrypt(plaintext, aad = '') {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', current.key, iv);
      cipher.setAAD(Buffer.from(aad));
      const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
      return ['v1', current.id, iv.toString('base64url'), cipher.getAuthTag().toString('base64url'), ct.toString('base64url')].join('.');
    },
    decrypt(sealed, aad = '') {
      const [version, keyId, iv, tag, ct] = sealed.split('.');
      const key = keyId === undefined ? undefined : byId.get(keyId);
      if (version !== 'v1' || !key || iv === undefined || tag === undefined || ct === undefined) {
        throw new Error(`cannot decrypt: unknown format or key id '${keyId ?? ''}'`);
      }
      const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
      decipher.setAAD(Buffer.from(aad));
      decipher.setAuthTag(Buffer.from(tag, 'base64url'));
      return Buffer.concat([decipher.update(Buffer.from(ct, 'base64url')), decipher.final()]).toString('utf8');
    },
    lookupHash(value) {
      return createHmac('sha256', lookupKey).update(value).digest('base64url');
    },
  };
}

/** Fresh random key material, for demo set-ups and tests. */
export function generateKeyMaterial(): { keys: { id: string; key: string }[]; lookupKey: string } {
  return { keys: [{ id: `k${Date.now().toString(36)}`, key: randomBytes(32).toString('base64') }], lookupKey: randomBytes(32).toString('base64') };
}
