/**
 * The connections and stores both `serve` and `worker` need, opened once from the config: a Redis
 * client for the service's own keys, the BullMQ queue, job records, the token vault and the result
 * store. Each process builds one and closes it on shutdown.
 */
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import type { Config } from '../config.js';
import { resultStoreOptions } from '../domain-options.js';
import { JobRecordStore } from './job-record.js';
import { createResultStore } from './open-result-store.js';
import { QUEUE_NAME } from './queue-jobs.js';
import { ServiceKeys } from './redis-keys.js';
import type { ResultStore } from './result-store.js';
import { TokenVault } from './token-vault.js';

export interface QueueContextOptions {
  /** Result store; default: the one PATHEMBED_RESULT_STORE names (else the folder PATHEMBED_RESULTS_DIR). */
  readonly results?: ResultStore;
  /**
   * Commands fail at once while Redis is down, and after PATHEMBED_REDIS_COMMAND_TIMEOUT_MS when
   * it hangs, instead of waiting for it to return: for request paths (the API), which must answer
   * 503 promptly. Default false: workers wait, so a Redis restart delays work without failing it.
   */
  readonly failFast?: boolean;
}

/** ioredis options of one kind of connection (see QueueContextOptions.failFast). */
export interface RedisConnectionOptions {
  readonly url: string;
  readonly maxRetriesPerRequest: number | null;
  readonly enableOfflineQueue?: boolean;
  readonly commandTimeout?: number;
}

export class QueueContext {
  readonly #own: RedisConnectionOptions;
  readonly #ownsResults: boolean;
  readonly keys: ServiceKeys;
  readonly redis: Redis;
  readonly queue: Queue;
  readonly records: JobRecordStore;
  readonly vault: TokenVault;
  readonly results: ResultStore;

  constructor(
    readonly config: Config,
    options: QueueContextOptions = {},
  ) {
    this.keys = new ServiceKeys(config.PATHEMBED_QUEUE_PREFIX);
    const own = options.failFast
      ? {
          maxRetriesPerRequest: 0,
          enableOfflineQueue: false,
          commandTimeout: config.PATHEMBED_REDIS_COMMAND_TIMEOUT_MS,
        }
      : // maxRetriesPerRequest null: a Redis restart delays commands instead of failing jobs midway.
        { maxRetriesPerRequest: null };
    this.#own = { url: config.REDIS_URL, ...own };
    this.redis = new Redis(config.REDIS_URL, own);
    // Reconnection is ioredis's own business; an unhandled 'error' event would only be noise.
    this.redis.on('error', () => undefined);
    this.queue = new Queue(QUEUE_NAME, {
      connection: { ...this.#own },
      prefix: config.PATHEMBED_QUEUE_PREFIX,
    });
    this.records = new JobRecordStore(this.redis, this.keys);
    this.vault = new TokenVault(this.redis, this.keys, config.PATHEMBED_TOKEN_KEY);
    this.results = options.results ?? createResultStore(resultStoreOptions(config));
    this.#ownsResults = options.results === undefined;
  }

  /** BullMQ connection options for another Queue/Worker/FlowProducer/QueueEvents. */
  connection(): { url: string; maxRetriesPerRequest: null } {
    return { url: this.config.REDIS_URL, maxRetriesPerRequest: null };
  }

  async close(): Promise<void> {
    await this.queue.close();
    this.redis.disconnect();
    if (this.#ownsResults) this.results.close();
  }
}
