/**
 * The assemble job, parent of a slide's chunk jobs, run once all of them are done: streams the
 * chunk files in order into the JSON result, then into the HDF5 and Parquet files (one pass each,
 * as asked), writes the bulk annotations (ANN) and then the SR that refers to them (storing both
 * over STOW-RS when a destination is set), ends the job record as completed, deletes the token and
 * the chunk files. Chunk files are read one at a time, so a slide of any size is assembled in
 * bounded memory (the ANN's columns aside: N x 4 bytes each).
 */
import type { Job } from 'bullmq';
import { searchBuildOptions } from '../domain-options.js';
import { PathembedError } from '../errors.js';
import {
  isFailedPatch,
  PATCH_FILE_KINDS,
  type PatchEmbedding,
  PatchFailureTally,
  type PatchOutcome,
  type SlidePlan,
} from '../pipeline/index.js';
import { type IndexablePatch, JobIndexBuilder, storeJobIndex } from '../search/index.js';
import { cancelledError } from './cancellation.js';
import { decodeChunk } from './chunk-file.js';
import { type AnnReference, isFinal, type SrReference } from './job-record.js';
import type { AnnWritten, PlannedSlide, StageBusyMs } from './pipeline-port.js';
import type { AssembleJobData } from './queue-jobs.js';
import { resultKeys } from './result-store.js';
import { jobToken, type WorkerContext } from './worker-context.js';

export interface AssembleResult {
  readonly patches: number;
}

/**
 * Every chunk's embeddings in patch order, checking that each patch comes exactly once. When
 * `stageMs` is given, each chunk's stage busy times are added to it as its file is read.
 */
async function* chunkEmbeddings(
  w: WorkerContext,
  d: AssembleJobData,
  planned: number,
  stageMs?: StageBusyMs,
  failures?: PatchFailureTally,
): AsyncGenerator<PatchOutcome> {
  let expected = 0;
  for (let chunkIndex = 0; chunkIndex < d.chunkCount; chunkIndex++) {
    const key = resultKeys.chunk(d.jobId, chunkIndex);
    const data = await w.ctx.results.get(key);
    if (!data) throw new PathembedError('INTERNAL', `Chunk file ${key} of job ${d.jobId} is missing`);
    const chunk = decodeChunk(data, key);
    if (stageMs) {
      stageMs.fetchMs += chunk.stageMs.fetchMs;
      stageMs.decodeMs += chunk.stageMs.decodeMs;
      stageMs.inferMs += chunk.stageMs.inferMs;
    }
    for (const e of chunk.embeddings) {
      if (e.index !== expected) {
        throw new PathembedError(
          'INTERNAL',
          `Job ${d.jobId}: expected patch ${expected}, chunk ${chunkIndex} holds ${e.index}`,
        );
      }
      expected++;
      if (failures && isFailedPatch(e)) failures.add(e.failed);
      yield e;
    }
  }
  if (expected !== planned) {
    throw new PathembedError(
      'INTERNAL',
      `Job ${d.jobId}: the chunks hold ${expected} patches, the plan ${planned}`,
    );
  }
}

/** The index's patch of an embedded outcome: the planned rectangle and the embedding. */
function indexable(plan: SlidePlan, o: PatchEmbedding): IndexablePatch {
  const p = plan.patches[o.index]!;
  return { index: o.index, x: p.x, y: p.y, width: p.width, height: p.height, embedding: o.embedding };
}

/** Passes the outcomes through, handing each embedded patch to the index builder on the way. */
async function* feeding(
  outcomes: AsyncIterable<PatchOutcome>,
  plan: SlidePlan,
  builder: JobIndexBuilder,
): AsyncGenerator<PatchOutcome> {
  for await (const o of outcomes) {
    if (!isFailedPatch(o)) builder.add(indexable(plan, o));
    yield o;
  }
}

/**
 * Builds and stores the job's similar-patch search index (src/search) from a builder that has seen
 * every embedded patch, beside its results whatever outputs were asked for, so every completed job
 * can be searched: exact below PATHEMBED_SIMILARITY_EXACT_BELOW patches (only the embeddings
 * stored), an HNSW graph from there on. The builder is fed during the JSON pass over the chunk
 * files (a pass of its own only when no JSON is written); it holds the job's embeddings (N x 384
 * float32) while the graph is built.
 */
async function writeSearchIndex(w: WorkerContext, builder: JobIndexBuilder): Promise<void> {
  const started = Date.now();
  const index = await builder.build(searchBuildOptions(w.config));
  const bytes = await storeJobIndex(w.ctx.results, index);
  w.logger.info(
    { jobId: builder.jobId, kind: index.index.kind, patches: index.size, bytes, ms: Date.now() - started },
    'search index written',
  );
}

export async function processAssemble(w: WorkerContext, job: Job<AssembleJobData>): Promise<AssembleResult> {
  const d = job.data;
  const { ctx } = w;
  const record = await ctx.records.get(d.jobId);
  if (!record || record.state === 'cancelled') throw cancelledError(d.jobId);
  if (isFinal(record.state)) {
    // A second run (a retried slide job re-added the flow): remove any chunk file a duplicate
    // chunk left, so a completed job keeps only its results.
    if (record.state === 'completed') await ctx.results.deleteTree(resultKeys.chunkRoot(d.jobId));
    return { patches: record.done };
  }
  await ctx.records.transition(d.jobId, 'writing', { writingAt: Date.now() });
  const plan = await w.plans.get(d.jobId);
  const planned = plan.patches.length;
  const token = await jobToken(w.ctx, d.jobId, d.hasToken);
  const watch = await w.cancels.watch(d.jobId);
  // Counted on the first pass over the chunks (the JSON's, else the SR's).
  const failures = new PatchFailureTally();
  // Every completed job is searchable: its index is fed by the JSON pass, else by a pass of its own.
  const indexer = new JobIndexBuilder(d.jobId, w.pipeline.resultHeader(plan), planned);
  try {
    let json = false;
    let sr: SrReference | undefined;
    if (d.outputs.includes('json')) {
      const upload = await ctx.results.openWrite(resultKeys.json(d.jobId));
      // The result's fetch, decode and infer times: sums of the chunks' busy times (chunks run in
      // parallel on several workers, so the sums can exceed the job's wall time).
      const stageMs: StageBusyMs = { fetchMs: 0, decodeMs: 0, inferMs: 0 };
      try {
        await w.pipeline.writeJson(
          plan,
          feeding(chunkEmbeddings(w, d, planned, stageMs, failures), plan, indexer),
          upload,
          {
            jobId: d.jobId,
            startedAt: record.startedAt ?? record.createdAt,
            plannedAt: record.plannedAt ?? record.createdAt,
            stageMs: () => stageMs,
          },
        );
      } catch (err) {
        await upload.abort();
        throw err;
      }
      json = true;
    }
    // One more pass over the chunk files per output; failed patches are counted on the first pass only.
    let countFailures = !json;
    const chunkPass = () => {
      const tally = countFailures ? failures : undefined;
      countFailures = false;
      return chunkEmbeddings(w, d, planned, undefined, tally);
    };
    const files: { hdf5?: boolean; parquet?: boolean } = {};
    for (const kind of PATCH_FILE_KINDS) {
      if (!d.outputs.includes(kind)) continue;
      const upload = await ctx.results.openWrite(resultKeys[kind](d.jobId));
      try {
        await w.pipeline.writePatchFile(kind, plan, chunkPass(), upload, { jobId: d.jobId });
      } catch (err) {
        await upload.abort();
        throw err;
      }
      files[kind] = true;
    }
    // Before the DICOM outputs, which may be stored to another system (STOW): a failure here must
    // fail the job before anything has left the service, not after.
    if (!json) for await (const o of chunkPass()) if (!isFailedPatch(o)) indexer.add(indexable(plan, o));
    await writeSearchIndex(w, indexer);
    const wantsDicom = d.outputs.includes('dicom-sr') || d.outputs.includes('dicom-ann');
    let slide: PlannedSlide | undefined;
    if (wantsDicom && planned === 0) {
      // No patch (no tissue found): there is no mean embedding to report, so no SR and no ANN.
      w.logger.warn({ jobId: d.jobId }, 'no patch was planned, so no SR or ANN is written');
    } else if (wantsDicom) {
      const metadata = await ctx.results.get(resultKeys.metadata(d.jobId));
      if (!metadata) throw new PathembedError('INTERNAL', `The slide metadata of job ${d.jobId} is missing`);
      slide = { plan, metadata: JSON.parse(metadata.toString('utf8')) };
    }
    let annWritten: AnnWritten | undefined;
    let ann: AnnReference | undefined;
    if (slide && d.outputs.includes('dicom-ann')) {
      const upload = await ctx.results.openWrite(resultKeys.ann(d.jobId));
      try {
        annWritten = await w.pipeline.writeAnn(
          slide,
          chunkPass,
          upload,
          {
            includeEmbedding: d.annEmbedding === true,
            ...(d.srDestination ? { stowTo: d.srDestination } : {}),
          },
          { token, signal: watch.signal },
        );
        ann = {
          studyUid: annWritten.studyUid,
          seriesUid: annWritten.seriesUid,
          sopInstanceUid: annWritten.sopInstanceUid,
          annotationCount: annWritten.annotationCount,
          includesEmbedding: annWritten.includesEmbedding,
          ...(d.srDestination ? { storedTo: d.srDestination } : {}),
        };
      } catch (err) {
        await upload.abort();
        throw err;
      }
    }
    if (slide && d.outputs.includes('dicom-sr')) {
      const upload = await ctx.results.openWrite(resultKeys.sr(d.jobId));
      try {
        const written = await w.pipeline.writeSr(
          slide,
          chunkPass(),
          upload,
          {
            jsonResultName: `/v1/jobs/${d.jobId}/result`,
            ...(d.srDestination ? { stowTo: d.srDestination } : {}),
            ...(annWritten ? { bulkAnnotations: annWritten } : {}),
          },
          { token, signal: watch.signal },
        );
        sr = { ...written, ...(d.srDestination ? { storedTo: d.srDestination } : {}) };
      } catch (err) {
        await upload.abort();
        throw err;
      }
    }
    if (failures.count > 0) {
      w.logger.warn(
        { jobId: d.jobId, failedPatches: failures.count, planned },
        'patches left out: their frames could not be decoded (frameErrors: skip)',
      );
    }
    const ended = await ctx.records.finish(d.jobId, 'completed', {
      result: {
        json,
        ...files,
        ...(sr ? { sr } : {}),
        ...(ann ? { ann } : {}),
        failedPatches: failures.count,
      },
    });
    if (!ended) w.logger.warn({ jobId: d.jobId }, 'job ended (cancelled?) while its result was written');
  } catch (err) {
    // A job that is not completed presents no result: a JSON (or HDF5, Parquet) written before a
    // later output failed goes too (a retry writes them all again).
    await Promise.all([
      ctx.results.delete(resultKeys.json(d.jobId)),
      ctx.results.delete(resultKeys.sr(d.jobId)),
      ctx.results.delete(resultKeys.ann(d.jobId)),
      ctx.results.delete(resultKeys.hdf5(d.jobId)),
      ctx.results.delete(resultKeys.parquet(d.jobId)),
      ctx.results.delete(resultKeys.searchIndex(d.jobId)),
    ]).catch(() => undefined);
    throw err;
  } finally {
    watch.release();
  }
  await ctx.results.deleteTree(resultKeys.chunkRoot(d.jobId));
  w.logger.info({ jobId: d.jobId, patches: planned }, 'slide job completed');
  return { patches: planned };
}
