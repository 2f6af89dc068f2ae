import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createFieldCipher, generateKeyMaterial, type FieldCipher } from '../storage/crypto.ts';
import type { Config } from './config.ts';

/**
 * The field cipher from DATA_KEYS, or, with nothing configured, from a key file made once in
 * DATA_DIR (mode 0600) so a demo keeps reading what it wrote.
 */
export function loadCipher(config: Config): { cipher: FieldCipher; source: string } {
  let material = config.DATA_KEYS;
  let source = 'DATA_KEYS';
  if (!material) {
    const file = path.join(config.DATA_DIR, 'data-keys.json');
    if (!existsSync(file)) {
      mkdirSync(config.DATA_DIR, { recursive: true });
      writeFileSync(file, JSON.stringify(generateKeyMaterial(), null, 2), { mode: 0o600 });
    }
    material = JSON.parse(readFileSync(file, 'utf8')) as NonNullable<Config['DATA_KEYS']>;
    source = file;
  }
  const cipher = createFieldCipher({
    keys: material.keys.map((k) => ({ id: k.id, key: Buffer.from(k.key, 'base64') })),
    lookupKey: Buffer.from(material.lookupKey, 'base64'),
  });
  return { cipher, source };
}
