/**
 * Contract of the /v1/predict body as Google's Path Foundation server reads it (python/serving:
 * EmbeddingConverterV2 and the predictor's extension readers): which problems refuse the whole
 * request, with which code, and which are one instance's error.
 */
import { describe, expect, it } from 'vitest';
import {
  ezWsiStateOf,
  InstanceRefused,
  iccProfileNameOf,
  imageDimensionsOf,
  isStrictBase64,
  PredictRequestRefused,
  readPredictRequest,
  requireInsideOf,
} from '../../src/api/predict-request.js';

const MAX = 4000;
const pc = (x = 0, y = 0, extra: Record<string, unknown> = {}) => ({ x_origin: x, y_origin: y, ...extra });
const dicom = {
  dicom_path: { series_path: 'http://store/dicomWeb/studies/1.2/series/1.3', instance_uids: ['1.4'] },
};

function refusedCode(body: unknown): string | undefined {
  try {
    readPredictRequest(body, MAX);
  } catch (err) {
    if (err instanceof PredictRequestRefused) return err.code;
    throw err;
  }
  return undefined;
}

function instanceCode(read: () => unknown): string | undefined {
  try {
    read();
  } catch (err) {
    if (err instanceof InstanceRefused) return err.code;
    throw err;
  }
  return undefined;
}

describe('request-level refusals (Google answers 200 {"error": "CODE"})', () => {
  it.each([
    ['{}', {}],
    ['instances not a list', { instances: { a: 1 } }],
    ['instances null', { instances: null }],
    ['a body that is a list', [1, 2]],
    ['an instance that is not an object', { instances: ['x'] }],
    ['missing patch_coordinates', { instances: [{ ...dicom }] }],
    ['empty patch_coordinates', { instances: [{ ...dicom, patch_coordinates: [] }] }],
    ['patch_coordinates not a list', { instances: [{ ...dicom, patch_coordinates: {} }] }],
    ['a coordinate that is a string', { instances: [{ ...dicom, patch_coordinates: [pc('1' as never)] }] }],
    ['a fractional coordinate', { instances: [{ ...dicom, patch_coordinates: [pc(1.5)] }] }],
    [
      'an unknown key in a coordinate',
      { instances: [{ ...dicom, patch_coordinates: [pc(0, 0, { z: 1 })] }] },
    ],
    ['no source', { instances: [{ patch_coordinates: [pc()] }] }],
    ['dicom_path not an object', { instances: [{ dicom_path: 'x', patch_coordinates: [pc()] }] }],
    ['empty series_path', { instances: [{ dicom_path: { series_path: '' }, patch_coordinates: [pc()] }] }],
    [
      'empty instance_uids',
      { instances: [{ dicom_path: { series_path: 's', instance_uids: [] }, patch_coordinates: [pc()] }] },
    ],
    ['bearer_token not a string', { instances: [{ ...dicom, bearer_token: 5, patch_coordinates: [pc()] }] }],
    ['extensions not an object', { instances: [{ ...dicom, extensions: [], patch_coordinates: [pc()] }] }],
    ['raw_image_bytes a number', { instances: [{ raw_image_bytes: 5, patch_coordinates: [pc()] }] }],
    ['empty image_file_uri', { instances: [{ image_file_uri: '', patch_coordinates: [pc()] }] }],
  ])('%s is INVALID_REQUEST_FIELD_ERROR', (_what, body) => {
    expect(refusedCode(body)).toBe('INVALID_REQUEST_FIELD_ERROR');
  });

  it('refuses a patch that is not 224 x 224 anywhere in the request, even after a valid instance', () => {
    const body = {
      instances: [
        { ...dicom, patch_coordinates: [pc()] },
        { ...dicom, patch_coordinates: [pc(0, 0, { width: 256, height: 224 })] },
      ],
    };
    expect(refusedCode(body)).toBe('PATCH_DIMENSIONS_DO_NOT_MATCH_ENDPOINT_INPUT_DIMENSIONS_ERROR');
    // Checked before the types, as Google's dataclass does: "224" is not 224.
    expect(refusedCode({ instances: [{ ...dicom, patch_coordinates: [pc(0, 0, { width: '224' })] }] })).toBe(
      'PATCH_DIMENSIONS_DO_NOT_MATCH_ENDPOINT_INPUT_DIMENSIONS_ERROR',
    );
  });

  it('counts patches over all instances against the limit (4000 in Google)', () => {
    const coords = Array.from({ length: 2001 }, () => pc());
    expect(
      refusedCode({
        instances: [
          { ...dicom, patch_coordinates: coords },
          { ...dicom, patch_coordinates: coords },
        ],
      }),
    ).toBe('TOO_MANY_PATCHES_ERROR');
    expect(
      refusedCode({
        instances: [
          { ...dicom, patch_coordinates: coords.slice(0, 1999) },
          { ...dicom, patch_coordinates: coords },
        ],
      }),
    ).toBe(undefined);
  });

  it('takes an empty instance list, integral floats, defaults and unknown keys as Google does', () => {
    expect(readPredictRequest({ instances: [] }, MAX)).toEqual([]);
    const [d, b, f] = readPredictRequest(
      {
        instances: [
          {
            ...dicom,
            patch_coordinates: [pc(10.0, 20, { width: 224.0 })],
            extensions: { EGF: 'QRS' },
            EGF: 1,
          },
          { raw_image_bytes: 'aGVsbG8=', patch_coordinates: [pc()] },
          { image_file_uri: 'gs:///placeholder.png', patch_coordinates: [pc()], bearer_token: '' },
        ],
        parameters: { anything: true },
        unknown_top_level: 1,
      },
      MAX,
    );
    expect(d).toMatchObject({
      kind: 'dicom',
      instanceUids: ['1.4'],
      bearerToken: '',
      extensions: { EGF: 'QRS' },
    });
    expect(d.patches).toEqual([{ x: 10, y: 20, width: 224, height: 224 }]);
    expect(b).toMatchObject({ kind: 'bytes', imageBase64: 'aGVsbG8=' });
    expect(f).toMatchObject({ kind: 'file-uri', uri: 'gs:///placeholder.png', bearerToken: '' });
    // pathembed's older {input_bytes} form still reads (Google refuses it; no Google client sends it).
    const [old] = readPredictRequest(
      { instances: [{ raw_image_bytes: { input_bytes: 'aGk=' }, patch_coordinates: [pc()] }] },
      MAX,
    );
    expect(old).toMatchObject({ kind: 'bytes', imageBase64: 'aGk=' });
  });
});

describe('instance-level extension errors', () => {
  it('require_patches_fully_in_source_image: booleans and TRUE/FALSE strings', () => {
    expect(requireInsideOf({})).toBe(true);
    expect(requireInsideOf({ require_patches_fully_in_source_image: 'False' })).toBe(false);
    expect(requireInsideOf({ require_patches_fully_in_source_image: false })).toBe(false);
    expect(instanceCode(() => requireInsideOf({ require_patches_fully_in_source_image: 'yes' }))).toBe(
      'INVALID_REQUEST_FIELD_ERROR',
    );
    expect(instanceCode(() => requireInsideOf({ require_patches_fully_in_source_image: 1 }))).toBe(
      'INVALID_REQUEST_FIELD_ERROR',
    );
  });

  it('image_dimensions: {width_px, height_px}, positive integers, at most the image limit', () => {
    expect(imageDimensionsOf({})).toBeUndefined();
    expect(imageDimensionsOf({ image_dimensions: {} })).toBeUndefined();
    expect(imageDimensionsOf({ image_dimensions: { width_px: 500, height_px: 400.0 } })).toEqual({
      width: 500,
      height: 400,
    });
    for (const bad of [
      { width: 5, height: 5 },
      { width_px: 5 },
      { width_px: 5, height_px: 5, x: 1 },
      'big',
    ]) {
      expect(instanceCode(() => imageDimensionsOf({ image_dimensions: bad }))).toBe(
        'INVALID_REQUEST_FIELD_ERROR',
      );
    }
    expect(instanceCode(() => imageDimensionsOf({ image_dimensions: { width_px: 0, height_px: 5 } }))).toBe(
      'INVALID_REQUEST_FIELD_ERROR',
    );
    expect(
      instanceCode(() => imageDimensionsOf({ image_dimensions: { width_px: 10_001, height_px: 5 } }, 10_000)),
    ).toBe('IMAGE_DIMENSION_ERROR');
    // DICOM has no dimension limit, only the 8x downsampling one (checked against the level).
    expect(imageDimensionsOf({ image_dimensions: { width_px: 20_000, height_px: 5 } })).toEqual({
      width: 20_000,
      height: 5,
    });
  });

  it('ez_wsi_state must be an object; the ICC profile name a string', () => {
    expect(ezWsiStateOf({})).toEqual({});
    expect(instanceCode(() => ezWsiStateOf({ ez_wsi_state: 'x' }))).toBe('EZ_WSI_STATE_ERROR');
    expect(instanceCode(() => ezWsiStateOf({ ez_wsi_state: [1] }))).toBe('EZ_WSI_STATE_ERROR');
    expect(iccProfileNameOf({})).toBe('NONE');
    expect(iccProfileNameOf({ transform_imaging_to_icc_profile: 'srgb' })).toBe('SRGB');
    expect(instanceCode(() => iccProfileNameOf({ transform_imaging_to_icc_profile: 1 }))).toBe(
      'INVALID_REQUEST_FIELD_ERROR',
    );
  });

  it('decodes ez_wsi_state images as strict base64 (Python validate=True)', () => {
    expect(isStrictBase64('aGVsbG8=')).toBe(true);
    expect(isStrictBase64('aGVsbG8')).toBe(false);
    expect(isStrictBase64('aGVs bG8=')).toBe(false);
    expect(isStrictBase64('aGVsbG8-')).toBe(false);
  });
});
