import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isPathembedError } from '../../src/errors.js';
import { TokenCipher } from '../../src/queue/token-crypto.js';

const key = () => randomBytes(32).toString('hex');

describe('TokenCipher (AES-256-GCM for per-job store tokens)', () => {
  it('opens what it sealed, and the sealed form does not contain the token', () => {
    const cipher = new TokenCipher(key());
    const token = 'ya29.a0AfH6SMBx-secret-token-value';
    const sealed = cipher.seal(token, 'job-1');
    expect(sealed).not.toContain(token);
    expect(sealed).not.toContain(Buffer.from(token).toString('base64'));
    expect(sealed.startsWith('v1.')).toBe(true);
    expect(cipher.open(sealed, 'job-1')).toBe(token);
  });

  it('uses a fresh nonce per seal, so equal tokens do not look equal at rest', () => {
    const cipher = new TokenCipher(key());
    expect(cipher.seal('same', 'job')).not.toBe(cipher.seal('same', 'job'));
  });

  it('refuses a token sealed for another job (AAD binds it to its owner)', () => {
    const cipher = new TokenCipher(key());
    const sealed = cipher.seal('secret', 'job-a');
    expect(() => cipher.open(sealed, 'job-b')).toThrow(/cannot be decrypted/);
  });

  it('refuses altered ciphertext and another key, without echoing the value', () => {
    const cipher = new TokenCipher(key());
    const sealed = cipher.seal('secret-value', 'job');
    const parts = sealed.split('.');
    const ct = Buffer.from(parts[2], 'base64url');
    ct[0] ^= 1;
    const tampered = [parts[0], parts[1], ct.toString('base64url'), parts[3]].join('.');
    try {
      cipher.open(tampered, 'job');
      expect.unreachable();
    } catch (err) {
      expect(isPathembedError(err, 'INTERNAL')).toBe(true);
      expect((err as Error).message).not.toContain('secret-value');
    }
    expect(() => new TokenCipher(key()).open(sealed, 'job')).toThrow(/cannot be decrypted/);
    expect(() => cipher.open('v0.x.y.z', 'job')).toThrow(/format/);
  });

  it('accepts only a 256-bit hex key', () => {
    expect(() => new TokenCipher('abcd')).toThrow(/64 hex digits/);
    expect(() => new TokenCipher('z'.repeat(64))).toThrow(/64 hex digits/);
  });
});
