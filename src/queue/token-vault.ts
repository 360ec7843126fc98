/**
 * Per-job store tokens at rest: sealed with AES-256-GCM (token-crypto.ts) under a key of their own
 * with a TTL, read by the worker only while it runs the job, deleted when the job ends. Tokens never
 * enter job data, records, results or logs. Without PATHEMBED_TOKEN_KEY the vault is disabled and
 * the API refuses requests carrying tokens.
 */
import type { Redis } from 'ioredis';
import { PathembedError } from '../errors.js';
import type { ServiceKeys } from './redis-keys.js';
import { TokenCipher } from './token-crypto.js';

/**
 * Safety net for tokens of jobs that never end (a purged queue): short-lived credentials (Google
 * access tokens last an hour) are useless long before this anyway.
 */
export const TOKEN_TTL_S = 24 * 3600;

export class TokenVault {
  readonly #cipher: TokenCipher | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly keys: ServiceKeys,
    tokenKeyHex: string | undefined,
  ) {
    this.#cipher = tokenKeyHex ? new TokenCipher(tokenKeyHex) : undefined;
  }

  get enabled(): boolean {
    return this.#cipher !== undefined;
  }

  /** Throws INVALID_ARGUMENT naming `field` when tokens cannot be accepted (no key configured). */
  assertEnabled(field: string): void {
    if (!this.enabled) {
      throw new PathembedError(
        'INVALID_ARGUMENT',
        `${field}: this service does not accept per-job tokens because PATHEMBED_TOKEN_KEY is not set; ` +
          'send the request without a token, or ask the operator to configure the key',
        { field, reason: 'per-job tokens are disabled (PATHEMBED_TOKEN_KEY unset)' },
      );
    }
  }

  async put(ownerId: string, token: string): Promise<void> {
    this.assertEnabled('bearerToken');
    const sealed = (this.#cipher as TokenCipher).seal(token, ownerId);
    await this.redis.set(this.keys.token(ownerId), sealed, 'EX', TOKEN_TTL_S);
  }

  /** The token, or undefined when none is stored (the job had none, or it ended). */
  async get(ownerId: string): Promise<string | undefined> {
    const sealed = await this.redis.get(this.keys.token(ownerId));
    if (sealed === null) return undefined;
    if (!this.#cipher) {
      throw new PathembedError(
        'CONFIG_INVALID',
        `A token is stored for ${ownerId} but this process has no PATHEMBED_TOKEN_KEY to open it`,
      );
    }
    return this.#cipher.open(sealed, ownerId);
  }

  async delete(...ownerIds: string[]): Promise<void> {
    if (ownerIds.length === 0) return;
    await this.redis.del(...ownerIds.map((id) => this.keys.token(id)));
  }
}
