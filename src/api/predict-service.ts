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
import { ICC_PROFILE_NAMES, type IccProfileName, isIccProfileName } from '../wsi/icc-transform.js';
import { parseGcsUri, readGcsObject } from './gcs-image.js';
import { type PredictError, predictError, toPredictError } from './predict-errors.js';
import {
  asInt,
  ezWsiStateOf,
  type FileUriInstance,
  InstanceRefused,
  iccProfileNameOf,
  imageDimensionsOf,
  isStrictBase64,
  type RequestInstance,
  readPredictRequest,
  requireInsideOf,
} from './predict-request.js';
import { MAX_IMAGE_DIMENSION_PX, type Prediction } from './predict-schema.js';

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
const ICC_NONE = 'NONE';
/** The service cannot answer now; clients retry (EZ-WSI retries 429 and 503). */
const STATUS_UNAVAILABLE = 503;

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

  /**
   * Answers a request in Path Foundation's format. Throws PredictRequestRefused for what Google
   * refuses as a whole (answered 200 `{"error": "CODE"}`) and PredictRequestError when the service
   * cannot answer now (429/503, which EZ-WSI retries).
   */
  async predict(body: unknown): Promise<{ predictions: Prediction[] }> {
    const { config } = this.deps;
    const instances = readPredictRequest(body, config.PATHEMBED_MAX_PREDICT_PATCHES);
    // One instance at a time: a Cloud Storage read is awaited here, and reads should not pile up.
    const checked: Checked[] = [];
    for (const inst of instances) {
      try {
        checked.push(await this.#check(inst));
      } catch (err) {
        if (err instanceof InstanceRefused) checked.push({ error: predictError(err.code, err.message) });
        else checked.push({ error: toPredictError(err) });
      }
    }
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

  /**
   * One instance, its extensions read in the order Google's predictor reads them, so the first
   * problem found is the one Google reports. Throws InstanceRefused or a registry error.
   */
  async #check(inst: RequestInstance): Promise<Checked> {
    const ext = inst.extensions;
    const requireInside = requireInsideOf(ext);
    const patches = inst.patches;
    if (inst.kind === 'bytes') {
      const resize = imageDimensionsOf(ext, MAX_IMAGE_DIMENSION_PX);
      const icc = this.#checkIcc(ext);
      return {
        item: {
          kind: 'image',
          imageBase64: inst.imageBase64,
          patches,
          requireInside,
          ...(resize ? { resize } : {}),
          ...(icc ? { icc } : {}),
        },
      };
    }
    if (inst.kind === 'file-uri') return this.#checkFileUri(inst, requireInside);
    const resize = imageDimensionsOf(ext);
    ezWsiStateOf(ext); // contents unused: pathembed reads the series' metadata itself
    const icc = this.#checkIcc(ext);
    const token = this.#token(inst.bearerToken);
    const ref = parseSeriesReference(inst.seriesPath);
    // Before anything leaves the service: an unapproved store is never contacted.
    assertApprovedStore(ref.baseUrl, this.deps.allowList);
    const instanceUids = inst.instanceUids ?? ref.instanceUids;
    if (instanceUids) parseSeriesReference({ ...ref, instanceUids }); // validates the UIDs
    const source = {
      kind: 'dicomweb' as const,
      ...ref,
      ...(instanceUids ? { instanceUids: [...instanceUids] } : {}),
    };
    return {
      item: {
        kind: 'dicom',
        source,
        patches,
        requireInside,
        hasToken: token !== undefined,
        ...(resize ? { resize } : {}),
        ...(icc ? { icc } : {}),
      },
      token,
    };
  }

  /** EZ-WSI's in-memory images (ez_wsi_state `image` or `patches`), or a Cloud Storage object. */
  async #checkFileUri(inst: FileUriInstance, requireInside: boolean): Promise<Checked> {
    const ext = inst.extensions;
    const resize = imageDimensionsOf(ext, MAX_IMAGE_DIMENSION_PX);
    const state = ezWsiStateOf(ext);
    const patches = inst.patches;
    if (Object.keys(state).length > 0) {
      const stateDims = imageDimensionsOf(state);
      const patchImages = state.patches ?? [];
      if (!Array.isArray(patchImages) || !patchImages.every((p) => typeof p === 'string' && p.length > 0)) {
        throw new InstanceRefused('EZ_WSI_STATE_ERROR', 'Invalid patch JSON metadata (ez_wsi_state.patches)');
      }
      const image = state.image ?? '';
      if (typeof image !== 'string') {
        throw new InstanceRefused('EZ_WSI_STATE_ERROR', 'Invalid image JSON metadata (ez_wsi_state.image)');
      }
      const srcWidth = asInt(state.source_image_width_px ?? 0);
      const srcHeight = asInt(state.source_image_height_px ?? 0);
      if (srcWidth === undefined || srcHeight === undefined) {
        throw new InstanceRefused(
          'INVALID_REQUEST_FIELD_ERROR',
          'Invalid patch dimensions (width and/or height)',
        );
      }
      const sourceSize =
        stateDims ?? (srcWidth > 0 && srcHeight > 0 ? { width: srcWidth, height: srcHeight } : undefined);
      if (image) {
        if (!isStrictBase64(image))
          throw new InstanceRefused(
            'IMAGE_ERROR',
            'Invalid image JSON metadata: ez_wsi_state.image is not base64',
          );
        const icc = this.#checkIcc(ext);
        const clientTransformed = this.#clientIcc(state, icc);
        // The client sends the image at the size it wants: no resize here, as in Google's server.
        return {
          item: {
            kind: 'image',
            imageBase64: image,
            patches,
            requireInside,
            ...(icc ? { icc } : {}),
            ...(clientTransformed ? { clientTransformed } : {}),
          },
        };
      }
      if (patchImages.length > 0) {
        if (patchImages.length !== patches.length) {
          throw new InstanceRefused(
            'EZ_WSI_STATE_ERROR',
            `Length of per-patch and patch coordinates data do not match (${patchImages.length} patches, ${patches.length} coordinates)`,
          );
        }
        const bad = patchImages.findIndex((p) => !isStrictBase64(p as string));
        if (bad >= 0)
          throw new InstanceRefused(
            'IMAGE_ERROR',
            `Error decoding image bytes of ez_wsi_state.patches[${bad}]`,
          );
        this.#checkIcc(ext);
        return {
          item: {
            kind: 'patch-images',
            patchImagesBase64: patchImages as string[],
            patches,
            requireInside,
            ...(sourceSize ? { sourceSize } : {}),
          },
        };
      }
    }
    if (!parseGcsUri(inst.uri)) {
      throw new InstanceRefused(
        'GCS_IMAGE_PATH_FORMAT_ERROR',
        `Invalid GCS URI: ${inst.uri}; expecting gs://bucket/object`,
      );
    }
    const { config } = this.deps;
    // Read here, with the caller's token if any (never stored), else the service's ADC.
    const bytes = await readGcsObject(inst.uri, {
      allowed: config.PATHEMBED_ALLOWED_GCS ?? [],
      ...(config.PATHEMBED_GCS_ENDPOINT ? { apiEndpoint: config.PATHEMBED_GCS_ENDPOINT } : {}),
      ...(inst.bearerToken !== '' ? { token: inst.bearerToken } : {}),
    });
    const icc = this.#checkIcc(ext);
    return {
      item: {
        kind: 'image',
        imageBase64: bytes.toString('base64'),
        patches,
        requireInside,
        ...(resize ? { resize } : {}),
        ...(icc ? { icc } : {}),
      },
    };
  }

  /** The target profile (undefined for NONE); the transform itself happens on the worker. */
  #checkIcc(ext: Readonly<Record<string, unknown>>): IccProfileName | undefined {
    const name = iccProfileNameOf(ext);
    if (name === ICC_NONE) return undefined;
    if (isIccProfileName(name)) return name;
    throw new InstanceRefused(
      'INVALID_ICC_PROFILE_TRANSFORM_ERROR',
      `transform_imaging_to_icc_profile ${JSON.stringify(name)} is not valid; expecting: ${ICC_PROFILE_NAMES.join(', ')}, or NONE`,
    );
  }

  /**
   * EZ-WSI says in icc_profile_metadata_normalization which profile it already transformed the
   * pixels to; another target than the request's is a client bug Google refuses.
   */
  #clientIcc(state: Readonly<Record<string, unknown>>, target: IccProfileName | undefined): boolean {
    const raw = state.icc_profile_metadata_normalization ?? '';
    if (typeof raw !== 'string') {
      throw new InstanceRefused(
        'EZ_WSI_STATE_ERROR',
        'Invalid ICC profile metadata parameter (icc_profile_metadata_normalization)',
      );
    }
    const client = raw.toUpperCase();
    if (client === '' || client === ICC_NONE) return false;
    if (client !== (target ?? ICC_NONE)) {
      throw new InstanceRefused(
        'EZ_WSI_STATE_ERROR',
        `Different ICC profile transformations defined by client (${client}) and server (${target ?? ICC_NONE})`,
      );
    }
    return true;
  }

  /** '' is no token (Google's default); a token needs PATHEMBED_TOKEN_KEY to be kept encrypted. */
  #token(bearerToken: string): string | undefined {
    if (bearerToken === '') return undefined;
    if (!this.deps.ctx.vault.enabled) {
      throw new InstanceRefused(
        'INVALID_REQUEST_FIELD_ERROR',
        'bearer_token: this service does not accept per-request tokens because PATHEMBED_TOKEN_KEY is not set (tokens are only ever kept encrypted). Set PATHEMBED_TOKEN_KEY (64 hex characters) on the API and the workers, or send the request without bearer_token.',
      );
    }
    return bearerToken;
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
        if (timedOut) {
          await requestCancel(ctx.redis, ctx.keys, requestId);
          // 503, not a 200 with INTERNAL_ERROR: EZ-WSI and other clients retry 429 and 503.
          const message = `PREDICT_TIMEOUT: the workers did not answer within ${config.PATHEMBED_PREDICT_TIMEOUT_MS} ms (PATHEMBED_PREDICT_TIMEOUT_MS). Check that a worker is running (GET /readyz) and retry; send fewer patches per request if the workers are busy.`;
          logger.warn({ requestId, timedOut, code: 'PREDICT_TIMEOUT' }, message);
          throw new PredictRequestError(STATUS_UNAVAILABLE, predictError('INTERNAL_ERROR', message));
        }
        const error = new PathembedError('INTERNAL', `The predict job failed: ${(err as Error).message}`);
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
        // Predict plans never skip patches (no frameErrors), so every outcome has an embedding.
        const vectors = embeddings.map((e) => ('embedding' in e ? e.embedding : undefined));
        if (vectors.some((v) => v === undefined)) {
          out.set(r.position, {
            error: predictError('INTERNAL_ERROR', 'the worker left a patch without an embedding'),
          });
          continue;
        }
        out.set(r.position, {
          result: {
            patch_embeddings: item.patches.map((p, i) => ({
              embedding_vector: Array.from(vectors[i]!),
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
