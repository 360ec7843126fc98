/**
 * Which ResultStore a process uses: the folder or an S3 bucket, chosen by
 * PATHEMBED_RESULT_STORE (parsed in domain-options.ts into ResultStoreOptions).
 */
import { LocalResultStore, type ResultStore } from './result-store.js';
import { S3ResultStore, type S3ResultStoreOptions } from './s3-result-store.js';

export type ResultStoreOptions =
  | { readonly kind: 'file'; readonly root: string }
  | ({ readonly kind: 's3' } & S3ResultStoreOptions);

export function createResultStore(options: ResultStoreOptions): ResultStore {
  return options.kind === 'file' ? new LocalResultStore(options.root) : new S3ResultStore(options);
}
