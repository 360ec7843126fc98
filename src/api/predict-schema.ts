/**
 * Request and response of POST /v1/predict in the format of Google's Path Foundation serving API
 * (the one EZ-WSI DICOMweb's V2PatchEmbeddingEndpoint speaks): snake_case fields, `instances` in,
 * `predictions` out in the same order. The request body is checked in two steps: the envelope
 * here, then each instance on its own (predict-request.ts), so one malformed instance becomes that
 * instance's error instead of failing the request.
 */
import { z } from 'zod';
import { PREDICT_ERROR_CODES } from './predict-errors.js';
import { MAX_TOKEN_CHARS } from './schemas.js';

/** The model's input size: the only patch size this endpoint takes. */
export const PREDICT_PATCH_SIZE_PX = 224;
/** Largest image_dimensions the endpoint resizes to (Google's limit for embedded images). */
export const MAX_IMAGE_DIMENSION_PX = 10_000;

const booleanLike = z.union([z.boolean(), z.string().regex(/^(true|false)$/i, 'TRUE or FALSE')]);

export const patchCoordinateSchema = z.strictObject({
  x_origin: z.number().int(),
  y_origin: z.number().int(),
  width: z.number().int().positive().default(PREDICT_PATCH_SIZE_PX),
  height: z.number().int().positive().default(PREDICT_PATCH_SIZE_PX),
});

const dimension = z.number().int().positive().max(MAX_IMAGE_DIMENSION_PX);

export const predictExtensionsSchema = z.strictObject({
  require_patches_fully_in_source_image: booleanLike
    .optional()
    .describe('Default true: a patch reaching outside the image is an error; false: it is padded with black'),
  image_dimensions: z
    .union([
      z.strictObject({ width_px: dimension, height_px: dimension }),
      z.strictObject({ width: dimension, height: dimension }),
    ])
    .optional()
    .describe('Resize the image (raw_image_bytes) to these dimensions before cutting patches'),
  transform_imaging_to_icc_profile: z
    .string()
    .optional()
    .describe('Only NONE (or empty) is supported; other profiles give INVALID_ICC_PROFILE_TRANSFORM_ERROR'),
  ez_wsi_state: z.record(z.string(), z.unknown()).optional().describe('Sent by EZ-WSI; accepted and ignored'),
});

export const predictInstanceSchema = z
  .strictObject({
    dicom_path: z
      .strictObject({
        series_path: z.string().min(1).describe('DICOMweb series URL or Google Healthcare series path'),
        instance_uids: z
          .array(z.string().min(1))
          .min(1)
          .optional()
          .describe('The instance(s) of one pyramid level'),
      })
      .optional(),
    raw_image_bytes: z
      .strictObject({ input_bytes: z.string().min(1).describe('Base64 PNG or JPEG') })
      .optional(),
    image_file_uri: z.string().optional().describe('Cloud Storage images are not supported by this service'),
    patch_coordinates: z.array(patchCoordinateSchema).min(1),
    bearer_token: z.string().max(MAX_TOKEN_CHARS).optional().describe('Token for the DICOM store'),
    extensions: predictExtensionsSchema.optional(),
  })
  .describe('One image and the patches to embed from it');
export type PredictInstance = z.output<typeof predictInstanceSchema>;

/** What the route parses first: instances are checked one by one afterwards. */
export const predictEnvelopeSchema = z.strictObject({
  instances: z.array(z.unknown()).min(1),
  parameters: z.record(z.string(), z.unknown()).optional(),
});

/** The documented request (OpenAPI). */
export const predictRequestSchema = z.strictObject({
  instances: z.array(predictInstanceSchema).min(1),
  parameters: z.record(z.string(), z.unknown()).optional(),
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

export const predictResponseSchema = z.object({ predictions: z.array(predictionSchema) });
