/**
 * The embedding job's contract, shared by the CLI, the queue workers and the API: what a job reads
 * (a slide source), how (options), what it plans (a SlidePlan, plain JSON so the API or a parent job
 * can hand it to chunk workers), and what it produces (patch embeddings in patch order).
 */

import type { ModelManifest } from '../embed/index.js';
import type { PlannedPatch, RectPx } from '../geometry.js';
import type { SlideSourceSpec } from '../slide-source-spec.js';
import type { IccProfileName } from '../wsi/icc-transform.js';
import type { SlideLevel } from '../wsi/slide-level.js';

/** Patches are rectangles in the pixel grid of the target spacing (the plan's `pixelSpacingUm`). */
export type { PlannedPatch, RectPx, SlideSourceSpec };

export interface EmbedOptions {
  /** Target pixel spacing in µm/px (default from config, 0.5). */
  readonly pixelSpacingUm?: number;
  /** Grid stride in pixels at the target spacing (default from config). */
  readonly stridePx?: number;
  /** Least tissue fraction of a grid patch (default from config). */
  readonly minTissue?: number;
  /** Explicit patches instead of the tissue grid; each must be the model's patch size. */
  readonly patches?: readonly Pick<RectPx, 'x' | 'y'>[];
  /** Require explicit patches to lie fully inside the image (else padded). */
  readonly requirePatchesInside?: boolean;
  /** Transform patch pixels from the slide's ICC profile to this one (a slide without: as stored). */
  readonly iccProfile?: IccProfileName;
  /** What a frame the decoder reports as corrupt does to the job (default from config, `fail`). */
  readonly frameErrors?: FrameErrorPolicy;
}

/**
 * `fail`: a corrupt frame fails the job (FRAME_DECODE_ERROR naming frame and instance).
 * `skip`: the patches that need it are reported as failed in the result, and the others embedded.
 */
export const FRAME_ERROR_POLICIES = ['fail', 'skip'] as const;
export type FrameErrorPolicy = (typeof FRAME_ERROR_POLICIES)[number];

/** Level 0 of the slide: full-resolution geometry, and the image SR regions are drawn on. */
export interface PlanBaseLevel {
  readonly widthPx: number;
  readonly heightPx: number;
  /** Physical size of one pixel in millimetres: x along columns, y along rows. */
  readonly pixelSpacingMm: { readonly x: number; readonly y: number };
  /** The level's first instance (the first part of a concatenation). */
  readonly sopInstanceUid: string;
}

export interface SlidePlan {
  readonly version: 1;
  readonly source: SlideSourceSpec;
  readonly studyInstanceUid: string;
  readonly seriesInstanceUid: string;
  readonly pixelSpacingUm: number;
  /** The stored level patches are read from, and the downsample applied to it (1 when it matches). */
  readonly level: SlideLevel;
  readonly downsample: number;
  readonly patchSizePx: number;
  readonly stridePx: number;
  readonly minTissue: number;
  /** Tissue-filtered stride grid, or the caller's explicit patches (in the order given). */
  readonly patchSelection: 'tissue-grid' | 'explicit';
  readonly requirePatchesInside: boolean;
  /** Grid positions considered before the tissue filter (the explicit list's length otherwise). */
  readonly candidates: number;
  readonly baseLevel: PlanBaseLevel;
  /** Size of the slide in the target grid. */
  readonly widthPx: number;
  readonly heightPx: number;
  readonly patches: readonly PlannedPatch[];
  readonly tissue: { readonly method: string; readonly spacingUm: number; readonly fraction: number } | null;
  /** The requested ICC target (EmbedOptions.iccProfile). */
  readonly iccProfile?: IccProfileName;
  /** The slide's own ICC profile (base64), read at planning; absent when the slide has none. */
  readonly sourceIccProfileBase64?: string;
  /** Present (`skip`) when patches with corrupt frames are reported as failed instead of failing the job. */
  readonly frameErrors?: 'skip';
}

export interface PatchEmbedding {
  readonly index: number;
  readonly embedding: Float32Array;
}

/** Why a patch has no embedding: the error code and message of the frame that could not be read. */
export interface PatchFailure {
  readonly code: string;
  readonly message: string;
}

/** A planned patch left out under `frameErrors: skip`. */
export interface FailedPatch {
  readonly index: number;
  readonly failed: PatchFailure;
}

/** What embedding a planned patch gave: its embedding, or (only under `skip`) why it has none. */
export type PatchOutcome = PatchEmbedding | FailedPatch;

export function isFailedPatch(p: PatchOutcome): p is FailedPatch {
  return 'failed' in p;
}

/**
 * Milliseconds each stage was busy (wall time during which at least one operation of the stage
 * was running). Fetching and decoding overlap inference, so the stages need not add up to the
 * job's total time; fetch + decode close to or above infer means slide reading is the bottleneck.
 */
export interface StageTimings {
  fetchMs: number;
  decodeMs: number;
  inferMs: number;
  writeMs: number;
}

export interface JobProgress {
  readonly planned: number;
  readonly done: number;
  readonly patchesPerSecond: number;
}

export interface ModelInfo {
  readonly manifest: ModelManifest;
}
