/**
 * Reads a /v1/predict body the way Google's Path Foundation server does (python/serving,
 * EmbeddingConverterV2 and the predictor's extension readers), so a client gets the same answer
 * from either:
 *
 * - Request level (`PredictRequestRefused`, answered HTTP 200 `{"error": "CODE"}`): `instances`
 *   missing or not a list, an instance that is not an object, missing/empty/malformed
 *   `patch_coordinates`, a patch that is not 224 x 224 anywhere in the request, a source of the
 *   wrong type, an instance with no source, and more than the allowed patches in all.
 * - Instance level (`InstanceRefused`, that instance's `{"error": {code, description}}`): the
 *   extensions (require_patches_fully_in_source_image, image_dimensions, ez_wsi_state,
 *   transform_imaging_to_icc_profile), read only when that instance is processed.
 *
 * Keys the reference does not know are ignored at every level but a patch coordinate, whose keys
 * Google checks (an unknown one is INVALID_REQUEST_FIELD_ERROR there too).
 */

import type { PredictErrorCode } from './predict-errors.js';
import { PREDICT_PATCH_SIZE_PX } from './predict-schema.js';

/** The whole request is refused with this code (Google's `{"error": "CODE"}`). */
export class PredictRequestRefused extends Error {
  constructor(
    readonly code: PredictErrorCode,
    description: string,
  ) {
    super(description);
  }
}

/** One instance is refused; the others still run. */
export class InstanceRefused extends Error {
  constructor(
    readonly code: PredictErrorCode,
    description: string,
  ) {
    super(description);
  }
}

export interface RequestPatch {
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
}

interface InstanceBase {
  readonly patches: readonly RequestPatch[];
  readonly extensions: Readonly<Record<string, unknown>>;
}

export interface DicomInstance extends InstanceBase {
  readonly kind: 'dicom';
  readonly seriesPath: string;
  /** Google requires them; pathembed reads the finest level when they are left out. */
  readonly instanceUids?: readonly string[];
  /** '' means no token, as in Google's server. */
  readonly bearerToken: string;
}

export interface FileUriInstance extends InstanceBase {
  readonly kind: 'file-uri';
  readonly uri: string;
  readonly bearerToken: string;
}

export interface BytesInstance extends InstanceBase {
  readonly kind: 'bytes';
  readonly imageBase64: string;
}

export type RequestInstance = DicomInstance | FileUriInstance | BytesInstance;

const PATCH_KEYS = new Set(['x_origin', 'y_origin', 'width', 'height']);
const TRUE = 'TRUE';
const FALSE = 'FALSE';

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** An integer, or a float with an integer value (Python's validate_int); booleans are not. */
export function asInt(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isInteger(v) ? v : undefined;
}

function requestField(description: string): PredictRequestRefused {
  return new PredictRequestRefused('INVALID_REQUEST_FIELD_ERROR', description);
}

function readPatches(raw: unknown, where: string): RequestPatch[] {
  if (!Array.isArray(raw)) throw requestField(`${where}: patch_coordinates is not a list`);
  if (raw.length === 0) throw requestField(`${where}: empty patch_coordinates`);
  return raw.map((pc, i) => {
    if (!isRecord(pc)) throw requestField(`${where}: patch coordinate ${i} is not an object`);
    const unknown = Object.keys(pc).filter((k) => !PATCH_KEYS.has(k));
    if (unknown.length > 0 || !('x_origin' in pc) || !('y_origin' in pc)) {
      throw requestField(
        `${where}: patch coordinate ${i} has invalid keys; expecting: x_origin, y_origin, width, height`,
      );
    }
    const width = pc.width ?? PREDICT_PATCH_SIZE_PX;
    const height = pc.height ?? PREDICT_PATCH_SIZE_PX;
    // Google checks the size before the types, so "224" (a string) is a size mismatch there too.
    if (width !== PREDICT_PATCH_SIZE_PX || height !== PREDICT_PATCH_SIZE_PX) {
      throw new PredictRequestRefused(
        'PATCH_DIMENSIONS_DO_NOT_MATCH_ENDPOINT_INPUT_DIMENSIONS_ERROR',
        `${where}: patch coordinate ${i} is ${String(width)}x${String(height)}; width and height must be ${PREDICT_PATCH_SIZE_PX}x${PREDICT_PATCH_SIZE_PX}`,
      );
    }
    const x = asInt(pc.x_origin);
    const y = asInt(pc.y_origin);
    if (x === undefined || y === undefined) {
      throw requestField(`${where}: patch coordinate ${i} has a non-integer x_origin or y_origin`);
    }
    return { x, y, width: PREDICT_PATCH_SIZE_PX, height: PREDICT_PATCH_SIZE_PX };
  });
}

function nonEmptyString(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0;
}

function extensionsOf(inst: Record<string, unknown>, where: string): Record<string, unknown> {
  const ext = inst.extensions ?? {};
  if (!isRecord(ext)) throw requestField(`${where}: extensions is not an object`);
  return ext;
}

function tokenOf(inst: Record<string, unknown>, where: string): string {
  const token = inst.bearer_token ?? '';
  if (typeof token !== 'string') throw requestField(`${where}: bearer_token is not a string`);
  return token;
}

/** Base64 PNG or JPEG: Google's string, or the `{input_bytes}` object pathembed once taught. */
function imageBytesOf(raw: unknown): string | undefined {
  if (nonEmptyString(raw)) return raw;
  if (isRecord(raw) && nonEmptyString(raw.input_bytes)) return raw.input_bytes;
  return undefined;
}

function readInstance(raw: unknown, index: number): RequestInstance {
  const where = `instances[${index}]`;
  if (!isRecord(raw)) throw requestField(`${where} is not an object`);
  const patches = readPatches(raw.patch_coordinates, where);
  if ('dicom_path' in raw) {
    const path = raw.dicom_path;
    if (!isRecord(path)) throw requestField(`${where}: invalid DICOM path`);
    if (!nonEmptyString(path.series_path))
      throw requestField(`${where}: dicom_path.series_path is not a string`);
    let instanceUids: string[] | undefined;
    if (path.instance_uids !== undefined) {
      const uids = path.instance_uids;
      if (!Array.isArray(uids) || uids.length === 0 || !uids.every(nonEmptyString)) {
        throw requestField(`${where}: dicom_path.instance_uids must be a non-empty list of UIDs`);
      }
      instanceUids = uids;
    }
    return {
      kind: 'dicom',
      seriesPath: path.series_path,
      ...(instanceUids ? { instanceUids } : {}),
      bearerToken: tokenOf(raw, where),
      extensions: extensionsOf(raw, where),
      patches,
    };
  }
  if ('image_file_uri' in raw) {
    if (!nonEmptyString(raw.image_file_uri)) throw requestField(`${where}: image_file_uri is not a string`);
    return {
      kind: 'file-uri',
      uri: raw.image_file_uri,
      bearerToken: tokenOf(raw, where),
      extensions: extensionsOf(raw, where),
      patches,
    };
  }
  if ('raw_image_bytes' in raw) {
    const imageBase64 = imageBytesOf(raw.raw_image_bytes);
    if (imageBase64 === undefined) throw requestField(`${where}: raw_image_bytes is not a base64 string`);
    return { kind: 'bytes', imageBase64, extensions: extensionsOf(raw, where), patches };
  }
  throw requestField(`${where}: unidentified type; send dicom_path, image_file_uri or raw_image_bytes`);
}

/**
 * The instances of a request, or PredictRequestRefused for what Google refuses as a whole.
 * `maxPatches` is the most patches over all instances (Google: 4000).
 */
export function readPredictRequest(body: unknown, maxPatches: number): RequestInstance[] {
  const instances = isRecord(body) ? body.instances : undefined;
  if (!Array.isArray(instances)) {
    throw requestField('Invalid input, missing expected key: instances and associated list of values');
  }
  const read = instances.map((raw, i) => readInstance(raw, i));
  const total = read.reduce((n, inst) => n + inst.patches.length, 0);
  if (total > maxPatches) {
    throw new PredictRequestRefused(
      'TOO_MANY_PATCHES_ERROR',
      `The request asks for ${total} patch embeddings; the endpoint allows ${maxPatches}. Reduce the total number of patches in the request.`,
    );
  }
  return read;
}

// Extension readers: each throws InstanceRefused, as Google's predictor raises them per instance.

export function requireInsideOf(ext: Readonly<Record<string, unknown>>): boolean {
  const value = ext.require_patches_fully_in_source_image ?? true;
  if (typeof value === 'boolean') return value;
  if (typeof value === 'string') {
    const upper = value.toUpperCase();
    if (upper === TRUE) return true;
    if (upper === FALSE) return false;
  }
  throw new InstanceRefused(
    'INVALID_REQUEST_FIELD_ERROR',
    'require_patches_fully_in_source_image is not a boolean',
  );
}

export interface Dimensions {
  readonly width: number;
  readonly height: number;
}

/**
 * `image_dimensions` ({width_px, height_px}) of an extensions object or ez_wsi_state; absent or
 * empty: undefined. Above `maxDimension`: IMAGE_DIMENSION_ERROR.
 */
export function imageDimensionsOf(
  obj: Readonly<Record<string, unknown>>,
  maxDimension?: number,
): Dimensions | undefined {
  const value = obj.image_dimensions;
  // Python's "if not value": null, {}, 0, "" and false all mean "not given".
  if (value === undefined || value === null || value === 0 || value === '' || value === false)
    return undefined;
  if (isRecord(value) && Object.keys(value).length === 0) return undefined;
  if (!isRecord(value))
    throw new InstanceRefused('INVALID_REQUEST_FIELD_ERROR', 'image_dimensions is not a dictionary');
  const keys = Object.keys(value);
  if (keys.length !== 2 || !('width_px' in value) || !('height_px' in value)) {
    throw new InstanceRefused(
      'INVALID_REQUEST_FIELD_ERROR',
      'image_dimensions dict has invalid keys; expecting: width_px, height_px',
    );
  }
  const width = asInt(value.width_px);
  const height = asInt(value.height_px);
  if (width === undefined || height === undefined) {
    throw new InstanceRefused('INVALID_REQUEST_FIELD_ERROR', 'Invalid dimensions (width and/or height)');
  }
  if (width <= 0 || height <= 0) {
    throw new InstanceRefused(
      'INVALID_REQUEST_FIELD_ERROR',
      'Image dimensions (width and/or height) are not positive integers',
    );
  }
  if (maxDimension !== undefined && (width > maxDimension || height > maxDimension)) {
    throw new InstanceRefused(
      'IMAGE_DIMENSION_ERROR',
      `Image width and/or height exceeds max dimension (${maxDimension} px) supported by the endpoint`,
    );
  }
  return { width, height };
}

/** `ez_wsi_state`: an object with string keys, default {}; anything else EZ_WSI_STATE_ERROR. */
export function ezWsiStateOf(ext: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const state = ext.ez_wsi_state ?? {};
  if (!isRecord(state) || Object.keys(state).some((k) => k.length === 0)) {
    throw new InstanceRefused(
      'EZ_WSI_STATE_ERROR',
      'Invalid EZ-WSI state metadata (ez_wsi_state must be an object)',
    );
  }
  return state;
}

/** `transform_imaging_to_icc_profile` upper-cased, default NONE; a non-string is refused. */
export function iccProfileNameOf(ext: Readonly<Record<string, unknown>>): string {
  const value = ext.transform_imaging_to_icc_profile ?? 'NONE';
  if (typeof value !== 'string') {
    throw new InstanceRefused(
      'INVALID_REQUEST_FIELD_ERROR',
      'transform_imaging_to_icc_profile value is not a string',
    );
  }
  return value.toUpperCase();
}

const STRICT_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Python's b64decode(validate=True): the standard alphabet, padded, nothing else. */
export function isStrictBase64(s: string): boolean {
  return s.length > 0 && STRICT_BASE64.test(s);
}
