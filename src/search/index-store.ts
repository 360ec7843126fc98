/**
 * Where job indexes live and how queries get them: stored as one value beside the job's results
 * (`jobs/<id>/search-index.bin`, through any store with get/put: the local folder and S3 stores
 * both fit), loaded on first query and kept in a cache bounded in bytes. A completed job's index
 * never changes, so a cached one is never stale. A job completed before indexes were written has
 * none: its index is built from its JSON result on first query and stored for the next.
 */
import { PathembedError } from '../errors.js';
import type { ResultDocument } from '../results/result-reader.js';
import { buildJobIndex, decodeJobIndex, encodeJobIndex, type JobIndex } from './job-index.js';
import type { JobIndexProvider } from './search-service.js';
import type { BuildOptions } from './similarity-index.js';

/** The part of a result store the index needs (src/queue/result-store.ts's ResultStore has it). */
export interface IndexStorage {
  get(key: string): Promise<Buffer | undefined>;
  put(key: string, data: Uint8Array | string): Promise<void>;
}

export const searchIndexKey = (jobId: string): string => `jobs/${jobId}/search-index.bin`;

/** Builds the index of a result document (read from a file or a store). */
export function indexOfDocument(
  jobId: string,
  doc: ResultDocument,
  options: BuildOptions,
): Promise<JobIndex> {
  return buildJobIndex(jobId, doc.header, doc.patches, options);
}

export async function storeJobIndex(storage: IndexStorage, index: JobIndex): Promise<number> {
  const bytes = await encodeJobIndex(index);
  await storage.put(searchIndexKey(index.jobId), bytes);
  return bytes.length;
}

/**
 * Indexes by job id, least recently used dropped first once their bytes pass `maxBytes` (the
 * one being returned always stays, however large). Concurrent loads of one job share one promise.
 */
export class JobIndexCache {
  readonly #entries = new Map<string, JobIndex>();
  readonly #loading = new Map<string, Promise<JobIndex>>();
  #bytes = 0;

  constructor(private readonly maxBytes: number) {}

  get bytes(): number {
    return this.#bytes;
  }

  async get(jobId: string, load: () => Promise<JobIndex>): Promise<JobIndex> {
    const cached = this.#entries.get(jobId);
    if (cached) {
      this.#entries.delete(jobId);
      this.#entries.set(jobId, cached);
      return cached;
    }
    const pending = this.#loading.get(jobId);
    if (pending) return pending;
    const promise = load().finally(() => this.#loading.delete(jobId));
    this.#loading.set(jobId, promise);
    const index = await promise;
    if (!this.#entries.has(jobId)) {
      this.#entries.set(jobId, index);
      this.#bytes += index.bytes;
      for (const [id, old] of this.#entries) {
        if (this.#bytes <= this.maxBytes || id === jobId) break;
        this.#entries.delete(id);
        this.#bytes -= old.bytes;
      }
    }
    return index;
  }
}

export interface StoredIndexesOptions {
  readonly storage: IndexStorage;
  readonly cache: JobIndexCache;
  readonly build: BuildOptions;
  /** Checks the job may be searched (exists, caller's, completed); throws otherwise. */
  readonly check: (jobId: string) => Promise<void>;
  /** The job's JSON result, for a job stored without an index; undefined when it has none. */
  readonly readResult: (jobId: string) => Promise<ResultDocument | undefined>;
  /** What to throw when a job has neither index nor JSON result. */
  readonly missing: (jobId: string) => Error;
}

/** Indexes of completed jobs from the result store (the API's provider). */
export class StoredIndexes implements JobIndexProvider {
  constructor(private readonly o: StoredIndexesOptions) {}

  async jobIndex(jobId: string): Promise<JobIndex> {
    await this.o.check(jobId);
    return this.o.cache.get(jobId, async () => {
      const key = searchIndexKey(jobId);
      const bytes = await this.o.storage.get(key);
      if (bytes) return decodeJobIndex(bytes, key);
      const doc = await this.o.readResult(jobId);
      if (!doc) throw this.o.missing(jobId);
      const index = await indexOfDocument(jobId, doc, this.o.build);
      await storeJobIndex(this.o.storage, index);
      return index;
    });
  }
}

/** Indexes held in memory, e.g. of local result files (the CLI, the local viewer). */
export class MemoryIndexes implements JobIndexProvider {
  readonly #indexes = new Map<string, JobIndex>();

  constructor(indexes: Iterable<JobIndex>) {
    for (const index of indexes) this.#indexes.set(index.jobId, index);
  }

  async jobIndex(jobId: string): Promise<JobIndex> {
    const index = this.#indexes.get(jobId);
    if (!index) {
      throw new PathembedError('NOT_FOUND', `No result of job ${jobId} is loaded`, { jobId });
    }
    return index;
  }
}
