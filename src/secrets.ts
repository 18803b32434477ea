import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Store } from './db/store';

const keyFileName = 'secret.key';

/**
 * The AES-256 key that seals pending secrets: NOTIFY_SECRET_KEY (64 hex characters or 32 bytes in base64), else a key
 * generated on first start into the data folder with mode 0600.
 */
export function loadSecretKey(configured: string | undefined, dataDir: string): Buffer {
  if (configured) {
    const key = /^[0-9a-f]{64}$/i.test(configured) ? Buffer.from(configured, 'hex') : Buffer.from(configured, 'base64');
    if (key.length !== 32) throw new Error('NOTIFY_SECRET_KEY must be 32 bytes: 64 hex characters or base64');
    return key;
  }
  const file = path.join(dataDir, keyFileName);
  let stored: string | undefined;
  try {
    stored = fs.readFileSync(file, 'utf8').trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  if (stored !== undefined) {
    if (!/^[0-9a-f]{64}$/i.test(stored)) throw new Error(`${file} must hold a 32-byte key as 64 hex characters`);
    return Buffer.from(stored, 'hex');
  }
  fs.mkdirSync(dataDir, { recursive: true });
  const key = crypto.randomBytes(32);
  fs.writeFileSync(file, key.toString('hex'), { mode: 0o600, flag: 'wx' });
  return key;
}

export class SecretBox {
  constructor(private readonly key: Buffer) {}

  seal(value: unknown): string {
    const iv = crypto.randomBytes(12);
    const cipher = crypto.createCipheriv('aes-256-gcm', this.key, iv);
    const ciphertext = Buffer.concat([cipher.update(JSON.stringify(value), 'utf8'), cipher.final()]);
    return `v1.${Buffer.concat([iv, cipher.getAuthTag(), ciphertext]).toString('base64')}`;
  }

  /** Throws when the value was not sealed with this key or was altered (the GCM tag does not match). */
  open<T>(sealed: string): T {
    if (!sealed.startsWith('v1.')) throw new Error('not a sealed value');
    const raw = Buffer.from(sealed.slice(3), 'base64');
    // A full 16-byte tag only: Node would otherwise accept a truncated one, which is far easier to forge.
    const decipher = crypto.createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, 12), { authTagLength: 16 });
    decipher.setAuthTag(raw.subarray(12, 28));
    return JSON.parse(Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8')) as T;
  }

  /** Keyed hash for values that must be compared but not recoverable (idempotency payloads). */
  digest(value: string): string {
    return crypto.createHmac('sha256', this.key).update(value).digest('base64url');
  }
}

export class SecretKeyMismatchError extends Error {
  constructor() {
    super(
      'The secret key (NOTIFY_SECRET_KEY, or secret.key in the data folder) is not the one this database was first used ' +
        'with: pending robot credentials and SMS codes sealed with the other key could not be opened. Start with the ' +
        'same key as the first gateway (every replica must share it).',
    );
    this.name = 'SecretKeyMismatchError';
  }
}

/**
 * Records a check value of the key at the first start (a keyed hash, which does not reveal the key) and refuses a
 * different key afterwards: a replica with its own key would fail every DingTalk and SMS delivery it claims.
 */
export async function checkSecretKey(store: Store, secretBox: SecretBox): Promise<void> {
  const check = secretBox.digest('notify-gateway secret key check');
  if ((await store.settingOnce('secret_key_check', check)) !== check) throw new SecretKeyMismatchError();
}
