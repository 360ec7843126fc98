/**
 * The JSON a client sees for a job (GET /v1/jobs/:id and the list), built from the job record:
 * state, progress in patches, timings, the error and links to the results. Paths are relative to
 * the API root, so they work behind any proxy.
 */
import type { z } from 'zod';
import { formatSeriesUrl } from '../dicomweb/index.js';
import type { JobRecord } from '../queue/job-record.js';
import type { jobStatusSchema } from './schemas.js';

export type JobStatus = z.infer<typeof jobStatusSchema>;

export const jobPaths = {
  status: (id: string) => `/v1/jobs/${id}`,
  result: (id: string) => `/v1/jobs/${id}/result`,
  sr: (id: string) => `/v1/jobs/${id}/sr`,
  ann: (id: string) => `/v1/jobs/${id}/ann`,
  file: (id: string, format: 'hdf5' | 'parquet') => `/v1/jobs/${id}/result?format=${format}`,
};

const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());
const between = (from: number | undefined, to: number | undefined) =>
  from === undefined || to === undefined ? null : Math.max(0, to - from);

export function jobStatus(record: JobRecord, now = Date.now()): JobStatus {
  const embeddingEnd =
    record.writingAt ?? record.finishedAt ?? (record.state === 'embedding' ? now : undefined);
  const embeddingSeconds = (between(record.plannedAt, embeddingEnd) ?? 0) / 1000;
  return {
    id: record.id,
    state: record.state,
    source: {
      baseUrl: record.source.baseUrl,
      studyUid: record.source.studyUid,
      seriesUid: record.source.seriesUid,
      ...(record.source.instanceUids ? { instanceUids: [...record.source.instanceUids] } : {}),
      url: formatSeriesUrl(record.source),
    },
    options: { ...record.options },
    outputs: [...record.outputs],
    priority: record.priority,
    progress: {
      planned: record.planned ?? null,
      done: record.done,
      chunks: record.chunkCount ?? null,
      patchesPerSecond: embeddingSeconds > 0 ? record.done / embeddingSeconds : null,
    },
    timings: {
      createdAt: new Date(record.createdAt).toISOString(),
      startedAt: iso(record.startedAt),
      plannedAt: iso(record.plannedAt),
      writingAt: iso(record.writingAt),
      finishedAt: iso(record.finishedAt),
      queuedMs: between(record.createdAt, record.startedAt),
      planningMs: between(record.startedAt, record.plannedAt),
      embeddingMs: between(record.plannedAt, record.writingAt),
      writingMs: between(record.writingAt, record.state === 'completed' ? record.finishedAt : undefined),
      totalMs: between(record.createdAt, record.finishedAt),
    },
    error: record.error ?? null,
    results: {
      json: record.state === 'completed' && record.result?.json ? jobPaths.result(record.id) : null,
      sr: record.result?.sr ? { ...record.result.sr, url: jobPaths.sr(record.id) } : null,
      ann: record.result?.ann ? { ...record.result.ann, url: jobPaths.ann(record.id) } : null,
      hdf5: record.state === 'completed' && record.result?.hdf5 ? jobPaths.file(record.id, 'hdf5') : null,
      parquet:
        record.state === 'completed' && record.result?.parquet ? jobPaths.file(record.id, 'parquet') : null,
      failedPatches: record.result?.failedPatches ?? 0,
    },
    model: { sha256: record.modelSha256 },
  };
}
