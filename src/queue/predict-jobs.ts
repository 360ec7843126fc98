/**
 * The contract of predict jobs, the work behind /v1/predict: a list of items (one per valid request
 * instance) that a worker embeds at high priority. Embeddings travel back through the result store
 * as chunk files, not through Redis: 4000 patches are 6 MB of floats, which BullMQ would also copy
 * into its event stream. Tokens are in the vault under `predictTokenOwner(requestId, position)`.
 */
import type { ErrorCode } from '../errors.js';
import type { RectPx } from '../geometry.js';
import type { IccProfileName } from '../wsi/icc-transform.js';
import type { DicomWebSourceSpec } from './queue-jobs.js';

interface PredictItemBase {
  /** Index of the instance in the request (predictions keep request order). */
  readonly position: number;
  readonly patches: readonly RectPx[];
  /** Path Foundation's require_patches_fully_in_source_image (default true). */
  readonly requireInside: boolean;
  /** transform_imaging_to_icc_profile: transform from the source's own ICC profile to this one. */
  readonly icc?: IccProfileName;
}

export interface DicomPredictItem extends PredictItemBase {
  readonly kind: 'dicom';
  /** The series, restricted to the instances of the level the coordinates refer to (if given). */
  readonly source: DicomWebSourceSpec;
  readonly hasToken: boolean;
  /**
   * Path Foundation's image_dimensions: the patch coordinates are pixels of the named level resized
   * to this size (wsi/resized-level.ts).
   */
  readonly resize?: { readonly width: number; readonly height: number };
}

export interface ImagePredictItem extends PredictItemBase {
  readonly kind: 'image';
  /** Base64 PNG or JPEG, as the request sent it. */
  readonly imageBase64: string;
  /** Resize the decoded image to this size before cutting patches. */
  readonly resize?: { readonly width: number; readonly height: number };
  /**
   * EZ-WSI already transformed the pixels to `icc` (ez_wsi_state icc_profile_metadata_normalization):
   * an image that still carries a profile is then refused as a second transform, as Google does.
   */
  readonly clientTransformed?: boolean;
}

/**
 * Patches the client cut itself (EZ-WSI's ez_wsi_state `patches`): one base64 PNG or JPEG per
 * patch, in patch order, each embedded as it is.
 */
export interface PatchImagesPredictItem extends PredictItemBase {
  readonly kind: 'patch-images';
  readonly patchImagesBase64: readonly string[];
  /** The size of the image the patches were cut from, when the client said (for requireInside). */
  readonly sourceSize?: { readonly width: number; readonly height: number };
}

export type PredictItem = DicomPredictItem | ImagePredictItem | PatchImagesPredictItem;

export interface PredictJobData {
  readonly requestId: string;
  readonly items: readonly PredictItem[];
}

export interface PredictItemResult {
  readonly position: number;
  /** Result store key of a chunk file with one embedding per patch, in patch order. */
  readonly embeddingsKey?: string;
  readonly error?: { readonly code: ErrorCode; readonly message: string };
}

export interface PredictJobResult {
  readonly items: readonly PredictItemResult[];
}

export function predictTokenOwner(requestId: string, position: number): string {
  return `${requestId}-i${position}`;
}

export function predictEmbeddingsKey(requestId: string, position: number): string {
  return `predict/${requestId}/${position}.f32`;
}

export function predictRoot(requestId: string): string {
  return `predict/${requestId}`;
}
