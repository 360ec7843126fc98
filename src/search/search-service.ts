/**
 * Similar-patch search over job indexes, the core that /v1/search, `pathembed search` and the
 * local viewer share. It knows nothing of Redis, HTTP or stores: a `JobIndexProvider` hands it the
 * index of a job (from the result store, or built from a local result file), and it answers
 * the k nearest patches to a patch of a job (given by a level-0 point inside it) or to an
 * embedding, within one job or across several (a batch).
 *
 * Across several jobs the answer is the merge of each job's k nearest: exact when every job's
 * index is exact, as good as the HNSW graphs otherwise (docs/decisions.md: no separate batch index,
 * so nothing goes stale as a batch's jobs complete). The query patch itself is in the answer, at
 * distance ~0 (a float32 rounding away from 0), so `k` neighbours include it.
 */
import { PathembedError } from '../errors.js';
import type { JobIndex, Level0Patch, SlideRef } from './job-index.js';
import type { IndexKind } from './similarity-index.js';

export interface JobIndexProvider {
  /** The index of a completed job; throws NOT_FOUND / JOB_NOT_COMPLETED otherwise. */
  jobIndex(jobId: string): Promise<JobIndex>;
}

/** Which patches are searched: one job, or the given (completed) jobs of a batch. */
export type SearchScope =
  | { readonly jobId: string }
  | { readonly batchId: string; readonly jobIds: readonly string[] };

/** What is searched for: the patch under a level-0 point of a job, or an embedding. */
export type SearchTarget =
  | { readonly patch: { readonly jobId: string; readonly x: number; readonly y: number } }
  | { readonly embedding: Float32Array };

export interface SearchRequest {
  readonly scope: SearchScope;
  readonly target: SearchTarget;
  readonly k: number;
}

export interface Neighbour extends Level0Patch {
  readonly jobId: string;
  /** Cosine distance 1 − cos(query, patch), 0..2. */
  readonly distance: number;
  readonly source: SlideRef;
}

export interface SearchAnswer {
  readonly index: {
    /** hnsw when any searched job's index is an HNSW graph (approximate), else exact. */
    readonly kind: IndexKind;
    /** Patches searched, over all jobs. */
    readonly size: number;
    /** Jobs searched. */
    readonly jobs: number;
  };
  readonly query: {
    readonly jobId?: string;
    readonly batchId?: string;
    readonly k: number;
    /** The query patch (level 0), when the query was a point. */
    readonly patch?: Level0Patch & { readonly jobId: string };
    /** The query embedding's length, when the query was an embedding. */
    readonly embedding?: { readonly dimension: number };
  };
  /** Nearest first; ties by job order, then patch order. */
  readonly neighbours: Neighbour[];
}

/** The query patch of a point, or INVALID_ARGUMENT naming the point and the job. */
function patchRow(job: JobIndex, x: number, y: number): number {
  const row = job.rowAt(x, y);
  if (row === undefined) {
    throw new PathembedError(
      'INVALID_ARGUMENT',
      `The point (${x}, ${y}) (level-0 pixels) lies in no patch of job ${job.jobId} (${job.size} patches)`,
      { jobId: job.jobId, x, y },
    );
  }
  return row;
}

export async function searchSimilar(
  provider: JobIndexProvider,
  request: SearchRequest,
): Promise<SearchAnswer> {
  const { scope, target, k } = request;
  const jobIds = 'jobId' in scope ? [scope.jobId] : scope.jobIds;
  if ('patch' in target && !jobIds.includes(target.patch.jobId)) {
    throw new PathembedError(
      'INVALID_ARGUMENT',
      'batchId' in scope
        ? `Job ${target.patch.jobId} is not a completed job of batch ${scope.batchId}`
        : `patch.jobId ${target.patch.jobId} is not the job searched (${jobIds[0]})`,
      { jobId: target.patch.jobId },
    );
  }
  // The query first: only the query patch's job is needed for it.
  let vector: Float32Array;
  let queryPatch: (Level0Patch & { jobId: string }) | undefined;
  if ('patch' in target) {
    const job = await provider.jobIndex(target.patch.jobId);
    const row = patchRow(job, target.patch.x, target.patch.y);
    vector = job.vector(row);
    queryPatch = { jobId: job.jobId, ...job.patch(row) };
  } else {
    vector = target.embedding;
  }

  // Then one job at a time, keeping only the k best so far: a batch's indexes are never all held
  // at once (the provider's cache bounds what stays loaded).
  const byDistance = (a: Neighbour & { order: number }, b: Neighbour & { order: number }) =>
    a.distance - b.distance || a.order - b.order || a.patchIndex - b.patchIndex;
  let found: Array<Neighbour & { order: number }> = [];
  let size = 0;
  let hnsw = false;
  for (const [order, id] of jobIds.entries()) {
    const job = await provider.jobIndex(id);
    size += job.size;
    hnsw ||= job.index.kind === 'hnsw';
    if (job.size === 0) continue;
    if (job.index.dimension !== vector.length) {
      throw new PathembedError(
        'INVALID_ARGUMENT',
        `${queryPatch ? "the query patch's embedding" : 'embedding'} has ${vector.length} values; job ${job.jobId}'s embeddings have ${job.index.dimension}`,
        { length: vector.length, dimension: job.index.dimension },
      );
    }
    const hits = job.index.search(vector, k);
    hits.ids.forEach((row, i) => {
      found.push({
        jobId: job.jobId,
        ...job.patch(row),
        distance: hits.distances[i]!,
        source: job.slide,
        order,
      });
    });
    found = found.sort(byDistance).slice(0, k);
  }
  const neighbours = found.map(({ order: _order, ...n }) => n);
  return {
    index: {
      kind: hnsw ? 'hnsw' : 'exact',
      size,
      jobs: jobIds.length,
    },
    query: {
      ...('jobId' in scope ? { jobId: scope.jobId } : { batchId: scope.batchId }),
      k,
      ...(queryPatch ? { patch: queryPatch } : { embedding: { dimension: vector.length } }),
    },
    neighbours,
  };
}
