/**
 * Sealing per-job store tokens for storage in Redis: AES-256-GCM with a random 96-bit nonce per
 * token and the owning job id as additional authenticated data, so a sealed token copied onto
 * another job's key fails to open instead of lending that job someone else's credentials.
 * The key is PATHEMBED_TOKEN_KEY (64 hex digits); without it the service refuses per-job tokens.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { PathembedError } from '../errors.js';

const ALGORITHM = 'aes-256-gcm';
const KEY_BYTES = 32;
/** 96 bits: the nonce size GCM is specified for; other sizes are hashed and weaken the bound. */
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
/** Leading field of a sealed token, so the format can change without misreading old values. */
const FORMAT_VERSION = 'v1';

export class TokenCipher {
  readonly #key: Buffer;

  /** @param hexKey 64 hex digits (PATHEMBED_TOKEN_KEY). */
  constructor(hexKey: string) {
    if (!/^[0-9a-fA-F]{64}$/.test(hexKey)) {
      throw new PathembedError(
        'CONFIG_INVALID',
        'PATHEMBED_TOKEN_KEY must be 64 hex digits (a 256-bit AES key)',
      );
    }
    this.#key = Buffer.from(hexKey, 'hex');
    if (this.#key.length !== KEY_BYTES)
      throw new PathembedError('CONFIG_INVALID', 'PATHEMBED_TOKEN_KEY has a wrong length');
  }

  /** `v1.<nonce>.<ciphertext>.<tag>`, each base64url; `ownerId` must be given again to open it. */
  seal(plaintext: string, ownerId: string): string {
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv(ALGORITHM, this.#key, nonce, { authTagLength: TAG_BYTES });
    cipher.setAAD(Buffer.from(ownerId, 'utf8'));
    const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    const tag = cipher.getAuthTag();
    return [FORMAT_VERSION, nonce, ciphertext, tag]
      .map((part) => (typeof part === 'string' ? part : part.toString('base64url')))
      .join('.');
  }

  /** Opens a sealed token; throws INTERNAL (without echoing the value) when it was tampered with. */
  open(sealed: string, ownerId: string): string {
    const parts = sealed.split('.');
    if (parts.length !== 4 || parts[0] !== FORMAT_VERSION) {
      throw new PathembedError(
        'INTERNAL',
        `A stored token for ${ownerId} is not in the ${FORMAT_VERSION} format`,
      );
    }
    // Four parts (checked above): the version, then these three.
    const [nonce, ciphertext, tag] = parts.slice(1).map((p) => Buffer.from(p, 'base64url')) as [
      Buffer,
      Buffer,
      Buffer,
    ];
    try {
      const decipher = createDecipheriv(ALGORITHM, this.#key, nonce, { authTagLength: TAG_BYTES });
      decipher.setAAD(Buffer.from(ownerId, 'utf8'));
      decipher.setAuthTag(tag);
      return Buffer.concat([decipher.update(ciphertext), decipher.final()]).toString('utf8');
    } catch {
      // GCM authentication failed: wrong key (rotated PATHEMBED_TOKEN_KEY), wrong owner or altered bytes.
      throw new PathembedError(
        'INTERNAL',
        `The stored token for ${ownerId} cannot be decrypted (PATHEMBED_TOKEN_KEY changed, or the value was altered)`,
      );
    }
  }
}
