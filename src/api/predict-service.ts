/**
 * POST /v1/predict: validates each instance on its own (a bad one becomes its own error, the others
 * still run), refuses unapproved stores before anything is fetched, sends the valid instances to
 * the workers as one high-priority predict job, waits for it (QueueEvents) up to
 * PATHEMBED_PREDICT_TIMEOUT_MS, and answers in Path Foundation's format in instance order.
 */
import { randomUUID } from 'node:crypto';
import type { QueueEvents } from 'bullmq';
import type { Config } from '../config.js';
import { type AllowedStore, assertApprovedStore, parseSeriesReference } from '../dicomweb/index.js';
import { PathembedError } from '../errors.js';
import type { Logger } from '../log.js';
import { requestCancel } from '../queue/cancellation.js';
import { decodeChunk } from '../queue/chunk-file.js';
import {
  type PredictItem,
  type PredictJobData,
  type PredictJobResult,
  predictRoot,
  predictTokenOwner,
} from '../queue/predict-jobs.js';
import type { QueueContext } from '../queue/queue-context.js';
import { JOB_NAMES, PREDICT_PRIORITY } from '../queue/queue-jobs.js';
import { type PredictError, type PredictErrorCode, predictError, toPredictError } from './predict-errors.js';
import {
  PREDICT_PATCH_SIZE_PX,
  type PredictInstance,
  type Prediction,
  predictEnvelopeSchema,
  predictInstanceSchema,
} from './predict-schema.js';
import { fieldIssues } from './validation.js';

/** A request-level failure, answered in Path Foundation's error shape with this HTTP status. */
export class PredictRequestError extends Error {
  constructor(
    readonly status: number,
    readonly error: PredictError,
  ) {
    super(error.description);
  }
}

/** One retry for a transient failure: the client is waiting, so more would only add latency. */
const PREDICT_ATTEMPTS = 2;
const PREDICT_BACKOFF_MS = 500;
const KEEP_PREDICT_JOBS_S = 300;
const STATUS_BAD_REQUEST = 400;
const STATUS_TOO_LARGE = 413;
const ICC_NONE = new Set(['', 'NONE']);

function asBool(v: boolean | string | undefined, fallback: boolean): boolean {
  if (v === undefined) return fallback;
  return typeof v === 'boolean' ? v : v.toUpperCase() === 'TRUE';
}

/** Omit over each member of a union (plain Omit would merge the members). */
type ItemDraft = PredictItem extends infer T ? (T extends PredictItem ? Omit<T, 'position'> : never) : never;
type Checked = { item: ItemDraft; token?: string } | { error: PredictError };

export interface PredictServiceDeps {
  readonly config: Config;
  readonly ctx: QueueContext;
  readonly events: QueueEvents;
  readonly allowList: readonly AllowedStore[];
  readonly logger: Logger;
}

export class PredictService {
  constructor(private readonly deps: PredictServiceDeps) {}

  async predict(body: unknown): Promise<{ predictions: Prediction[] }> {
    const { config } = this.deps;
    const envelope = predictEnvelopeSchema.safeParse(body);
    if (!envelope.success) {
      const issues = fieldIssues(envelope.error.issues);
      throw new PredictRequestError(
        STATUS_BAD_REQUEST,
        predictError(
          'INVALID_REQUEST_FIELD_ERROR',
          issues.map((i) => `${i.path || 'body'}: ${i.reason}`).join('; '),
        ),
      );
    }
    const instances = envelope.data.instances;
    const patchCount = instances.reduce<number>((n, inst) => {
      const coords = (inst as { patch_coordinates?: unknown } | null)?.patch_coordinates;
      return n + (Array.isArray(coords) ? coords.length : 0);
    }, 0);
    if (patchCount > config.PATHEMBED_MAX_PREDICT_PATCHES) {
      throw new PredictRequestError(
        STATUS_TOO_LARGE,
        predictError(
          'TOO_MANY_PATCHES_ERROR',
          `The request asks for ${patchCount} patch embeddings; the endpoint allows ${config.PATHEMBED_MAX_PREDICT_PATCHES}. Reduce the total number of patches in the request.`,
        ),
      );
    }

    const checked = instances.map((inst) => this.#check(inst));
    const predictions: Array<Prediction | undefined> = checked.map((c) =>
      'error' in c ? { error: c.error } : undefined,
    );
    const items: PredictItem[] = [];
    const tokens: Array<[string, string]> = [];
    const requestId = `p${randomUUID().replaceAll('-', '')}`;
    checked.forEach((c, position) => {
      if ('error' in c) return;
      items.push({ ...c.item, position } as PredictItem);
      if (c.token !== undefined) tokens.push([predictTokenOwner(requestId, position), c.token]);
    });
    if (items.length > 0) {
      const results = await this.#run(requestId, items, tokens);
      for (const [position, prediction] of results) predictions[position] = prediction;
    }
    return {
      predictions: predictions.map((p) => p ?? { error: predictError('INTERNAL_ERROR', 'no result') }),
    };
  }

  /** Validates one instance; every problem is that instance's error, never the request's. */
  #check(raw: unknown): Checked {
    const parsed = predictInstanceSchema.safeParse(raw);
    if (!parsed.success) {
      const issues = fieldIssues(parsed.error.issues);
      return {
        error: predictError(
          'INVALID_REQUEST_FIELD_ERROR',
          issues.map((i) => `${i.path || 'instance'}: ${i.reason}`).join('; '),
        ),
      };
    }
    const inst: PredictInstance = parsed.data;
    const fail = (code: PredictErrorCode, description: string): Checked => ({
      error: predictError(code, description),
    });
    const sources = [inst.dicom_path, inst.raw_image_bytes, inst.image_file_uri].filter(
      (s) => s !== undefined,
    );
    if (inst.image_file_uri !== undefined) {
      return fail(
        'INVALID_REQUEST_FIELD_ERROR',
        'image_file_uri (Cloud Storage images) is not supported by this service; send dicom_path or raw_image_bytes',
      );
    }
    if (sources.length !== 1) {
      return fail(
        'INVALID_REQUEST_FIELD_ERROR',
        'An instance needs exactly one of dicom_path or raw_image_bytes',
      );
    }
    const wrong = inst.patch_coordinates.find(
      (p) => p.width !== PREDICT_PATCH_SIZE_PX || p.height !== PREDICT_PATCH_SIZE_PX,
    );
    if (wrong) {
      return fail(
        'PATCH_DIMENSIONS_DO_NOT_MATCH_ENDPOINT_INPUT_DIMENSIONS_ERROR',
        `Patch ${wrong.width}x${wrong.height} at (${wrong.x_origin}, ${wrong.y_origin}): this endpoint embeds ${PREDICT_PATCH_SIZE_PX}x${PREDICT_PATCH_SIZE_PX} patches only`,
      );
    }
    const ext = inst.extensions ?? {};
    const icc = (ext.transform_imaging_to_icc_profile ?? '').toUpperCase();
    if (!ICC_NONE.has(icc)) {
      return fail(
        'INVALID_ICC_PROFILE_TRANSFORM_ERROR',
        `transform_imaging_to_icc_profile ${JSON.stringify(ext.transform_imaging_to_icc_profile)} is not supported; this service embeds pixels as stored (NONE)`,
      );
    }
    const patches = inst.patch_coordinates.map((p) => ({
      x: p.x_origin,
      y: p.y_origin,
      width: p.width,
      height: p.height,
    }));
    const requireInside = asBool(ext.require_patches_fully_in_source_image, true);
    if (inst.bearer_token !== undefined && !this.deps.ctx.vault.enabled) {
      return fail(
        'INVALID_REQUEST_FIELD_ERROR',
        'bearer_token: this service does not accept per-request tokens because PATHEMBED_TOKEN_KEY is not set',
      );
    }
    if (inst.dicom_path) {
      try {
        const ref = parseSeriesReference(inst.dicom_path.series_path);
        // Before anything leaves the service: an unapproved store is never contacted.
        assertApprovedStore(ref.baseUrl, this.deps.allowList);
        const instanceUids = inst.dicom_path.instance_uids ?? ref.instanceUids;
        const source = { kind: 'dicomweb' as const, ...ref, ...(instanceUids ? { instanceUids } : {}) };
        if (instanceUids) parseSeriesReference({ ...ref, instanceUids }); // validates the UIDs
        return {
          item: { kind: 'dicom', source, patches, requireInside, hasToken: inst.bearer_token !== undefined },
          token: inst.bearer_token,
        };
      } catch (err) {
        return { error: toPredictError(err) };
      }
    }
    const bytes = (inst.raw_image_bytes as { input_bytes: string }).input_bytes;
    if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(bytes.replace(/\s+/g, ''))) {
      return fail('IMAGE_ERROR', 'raw_image_bytes.input_bytes is not base64');
    }
    const dims = ext.image_dimensions;
    const resize = dims
      ? 'width_px' in dims
        ? { width: dims.width_px, height: dims.height_px }
        : dims
      : undefined;
    return {
      item: { kind: 'image', imageBase64: bytes, patches, requireInside, ...(resize ? { resize } : {}) },
    };
  }

  async #run(
    requestId: string,
    items: PredictItem[],
    tokens: Array<[string, string]>,
  ): Promise<Map<number, Prediction>> {
    const { ctx, events, config, logger } = this.deps;
    const out = new Map<number, Prediction>();
    try {
      for (const [owner, token] of tokens) await ctx.vault.put(owner, token);
      const data: PredictJobData = { requestId, items };
      const job = await ctx.queue.add(JOB_NAMES.predict, data, {
        jobId: requestId,
        priority: PREDICT_PRIORITY,
        attempts: PREDICT_ATTEMPTS,
        backoff: { type: 'fixed', delay: PREDICT_BACKOFF_MS },
        // Kept a little while: waitUntilFinished reads the finished job if it completed before
        // the wait began, which a job removed on completion would turn into "missing key".
        removeOnComplete: { age: KEEP_PREDICT_JOBS_S },
        removeOnFail: { age: KEEP_PREDICT_JOBS_S },
      });
      let result: PredictJobResult;
      try {
        result = (await job.waitUntilFinished(
          events,
          config.PATHEMBED_PREDICT_TIMEOUT_MS,
        )) as PredictJobResult;
      } catch (err) {
        const timedOut = /timed out|ttl/i.test((err as Error).message);
        if (timedOut) await requestCancel(ctx.redis, ctx.keys, requestId);
        // Path Foundation has no timeout code: PREDICT_TIMEOUT maps to INTERNAL_ERROR, so the
        // description names the timeout and what to do about it.
        const error = timedOut
          ? new PathembedError(
              'PREDICT_TIMEOUT',
              `PREDICT_TIMEOUT: the workers did not answer within ${config.PATHEMBED_PREDICT_TIMEOUT_MS} ms (PATHEMBED_PREDICT_TIMEOUT_MS). Check that a worker is running (GET /readyz) and retry; send fewer patches per request if the workers are busy.`,
              { timeoutMs: config.PATHEMBED_PREDICT_TIMEOUT_MS },
            )
          : new PathembedError('INTERNAL', `The predict job failed: ${(err as Error).message}`);
        logger.warn({ requestId, timedOut, code: error.code }, error.message);
        const prediction = { error: toPredictError(error) };
        for (const item of items) out.set(item.position, prediction);
        return out;
      }
      for (const r of result.items) {
        if (r.error) {
          out.set(r.position, { error: toPredictError(new PathembedError(r.error.code, r.error.message)) });
          continue;
        }
        const item = items.find((i) => i.position === r.position) as PredictItem;
        const file = r.embeddingsKey ? await ctx.results.get(r.embeddingsKey) : undefined;
        if (!file) {
          out.set(r.position, { error: predictError('INTERNAL_ERROR', 'the worker wrote no embeddings') });
          continue;
        }
        const { embeddings } = decodeChunk(file, r.embeddingsKey as string);
        if (embeddings.length < item.patches.length) {
          out.set(r.position, {
            error: predictError(
              'INTERNAL_ERROR',
              `the worker wrote ${embeddings.length} embeddings for ${item.patches.length} patches`,
            ),
          });
          continue;
        }
        out.set(r.position, {
          result: {
            patch_embeddings: item.patches.map((p, i) => ({
              embedding_vector: Array.from(embeddings[i]!.embedding),
              patch_coordinate: { x_origin: p.x, y_origin: p.y, width: p.width, height: p.height },
            })),
          },
        });
      }
      return out;
    } finally {
      await ctx.vault.delete(...tokens.map(([owner]) => owner));
      await ctx.results.deleteTree(predictRoot(requestId)).catch(() => undefined);
    }
  }
}
