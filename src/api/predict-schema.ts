/**
 * Request and response of POST /v1/predict in the format of Google's Path Foundation serving API
 * (the one EZ-WSI DICOMweb's PathFoundationsEmbeddingEndpoint speaks): snake_case fields,
 * `instances` in, `predictions` out in the same order. These schemas document the API (OpenAPI);
 * the body is read by predict-request.ts, which follows Google's converter field by field
 * (unknown keys ignored, request-level versus instance-level errors).
 */
import { z } from 'zod';
import { PREDICT_ERROR_CODES } from './predict-errors.js';
import { MAX_TOKEN_CHARS } from './schemas.js';

/** The model's input size: the only patch size this endpoint takes. */
export const PREDICT_PATCH_SIZE_PX = 224;
/** Largest image_dimensions for an image (Google's limit for embedded and Cloud Storage images). */
export const MAX_IMAGE_DIMENSION_PX = 10_000;

const booleanLike = z.union([z.boolean(), z.string().regex(/^(true|false)$/i, 'TRUE or FALSE')]);

export const patchCoordinateSchema = z.strictObject({
  x_origin: z.number().int(),
  y_origin: z.number().int(),
  width: z.literal(PREDICT_PATCH_SIZE_PX).default(PREDICT_PATCH_SIZE_PX),
  height: z.literal(PREDICT_PATCH_SIZE_PX).default(PREDICT_PATCH_SIZE_PX),
});

const dimension = z.number().int().positive();

export const predictExtensionsSchema = z.looseObject({
  require_patches_fully_in_source_image: booleanLike
    .optional()
    .describe('Default true: a patch reaching outside the image is an error; false: it is padded with black'),
  image_dimensions: z
    .object({ width_px: dimension, height_px: dimension })
    .optional()
    .describe(
      'Resize the image (DICOM level: by area averaging, at most 8x down; images: at most 10000 px) before cutting patches; coordinates are in the resized image',
    ),
  transform_imaging_to_icc_profile: z
    .enum(['NONE', 'SRGB', 'ADOBERGB', 'ROMMRGB', 'DISPLAYP3'])
    .optional()
    .describe("Colour-transform the pixels from the slide's ICC profile to this one before embedding"),
  ez_wsi_state: z
    .record(z.string(), z.unknown())
    .optional()
    .describe('Sent by EZ-WSI: for in-memory images, the image or the cut patches as base64 PNG'),
});

export const predictInstanceSchema = z
  .looseObject({
    dicom_path: z
      .looseObject({
        series_path: z.string().min(1).describe('DICOMweb series URL or Google Healthcare series path'),
        instance_uids: z
          .array(z.string().min(1))
          .min(1)
          .optional()
          .describe('The instance(s) of one pyramid level (default: the finest level)'),
      })
      .optional(),
    raw_image_bytes: z.string().min(1).optional().describe('Base64 PNG or JPEG'),
    image_file_uri: z
      .string()
      .optional()
      .describe('gs:///placeholder.png with the image in extensions.ez_wsi_state (EZ-WSI LocalImage)'),
    patch_coordinates: z.array(patchCoordinateSchema).min(1),
    bearer_token: z
      .string()
      .max(MAX_TOKEN_CHARS)
      .optional()
      .describe('Token for the DICOM store; "" for none'),
    extensions: predictExtensionsSchema.optional(),
  })
  .describe('One image and the patches to embed from it');

/** The documented request (OpenAPI). */
export const predictRequestSchema = z.looseObject({
  instances: z.array(predictInstanceSchema),
});

const patchCoordinateOut = z.object({
  x_origin: z.number().int(),
  y_origin: z.number().int(),
  width: z.number().int(),
  height: z.number().int(),
});

export const predictionSchema = z.union([
  z.object({
    result: z.object({
      patch_embeddings: z.array(
        z.object({ embedding_vector: z.array(z.number()), patch_coordinate: patchCoordinateOut }),
      ),
    }),
  }),
  z.object({ error: z.object({ code: z.enum(PREDICT_ERROR_CODES), description: z.string().optional() }) }),
]);
export type Prediction = z.infer<typeof predictionSchema>;

export const predictResponseSchema = z.union([
  z.object({ predictions: z.array(predictionSchema) }),
  z.object({ error: z.enum(PREDICT_ERROR_CODES).describe('The whole request was refused') }),
]);
