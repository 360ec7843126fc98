/**
 * Similar-patch search, public API: the similarity index (exact or HNSW by size), a job's index
 * and its stored form, the index store and cache, and the search service that the API, the CLI and
 * the local viewer share (no Redis, no HTTP here).
 */
export {
  type IndexStorage,
  indexOfDocument,
  JobIndexCache,
  MemoryIndexes,
  StoredIndexes,
  type StoredIndexesOptions,
  searchIndexKey,
  storeJobIndex,
} from './index-store.js';
export {
  buildJobIndex,
  decodeJobIndex,
  encodeJobIndex,
  type IndexableHeader,
  type IndexablePatch,
  JobIndex,
  JobIndexBuilder,
  type Level0Patch,
  type SlideRef,
} from './job-index.js';
export {
  type JobIndexProvider,
  type Neighbour,
  type SearchAnswer,
  type SearchRequest,
  type SearchScope,
  type SearchTarget,
  searchSimilar,
} from './search-service.js';
export {
  type BuildOptions,
  buildSimilarityIndex,
  DEFAULT_HNSW,
  ExactIndex,
  HnswIndex,
  type HnswQuantization,
  type HnswSettings,
  type IndexKind,
  type Neighbours,
  normaliseRows,
  type SimilarityIndex,
} from './similarity-index.js';
