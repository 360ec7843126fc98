/**
 * The overview picture of a job: the slide's thumbnail, the tissue mask tinted and outlined, and
 * every embedded patch filled with its embedding's colour (e.g. the first three principal
 * components as RGB), so one image shows where the job looked and what the model saw there.
 * Plain pixel arithmetic on RGB buffers; sharp only encodes the PNG.
 */
import sharp from 'sharp';
import { PathembedError } from '../errors.js';

const RGB = 3;
/** Tissue is tinted toward this colour by TISSUE_TINT_ALPHA; its outline is drawn in OUTLINE_RGB. */
const TISSUE_TINT_RGB = [40, 170, 60] as const;
const TISSUE_TINT_ALPHA = 0.18;
const OUTLINE_RGB = [20, 60, 200] as const;
/** Patch colours are laid over the slide at this opacity so the tissue stays visible beneath. */
const PATCH_ALPHA = 0.6;
const PATCH_BORDER_RGB = [30, 30, 30] as const;

export interface OverviewImage {
  readonly width: number;
  readonly height: number;
  /** RGB, row-major. */
  readonly data: Uint8Array;
  /** Micrometres per pixel of this image. */
  readonly pixelSpacingUm: number;
}

export interface OverviewMask {
  readonly widthPx: number;
  readonly heightPx: number;
  readonly pixelSpacingUm: number;
  /** 1 where tissue. */
  readonly data: Uint8Array;
}

export interface OverviewPatch {
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
  readonly rgb: readonly [number, number, number];
}

export interface OverviewInput {
  readonly thumbnail: OverviewImage;
  readonly mask?: OverviewMask;
  /** Rectangles in a grid of `gridSpacingUm` with the thumbnail's origin (the target grid). */
  readonly patches: readonly OverviewPatch[];
  readonly gridSpacingUm: number;
}

function blend(out: Uint8Array, i: number, rgb: readonly number[], alpha: number): void {
  for (let c = 0; c < RGB; c++) out[i + c] = Math.round(out[i + c]! * (1 - alpha) + rgb[c]! * alpha);
}

function set(out: Uint8Array, i: number, rgb: readonly number[]): void {
  out[i] = rgb[0]!;
  out[i + 1] = rgb[1]!;
  out[i + 2] = rgb[2]!;
}

function drawMask(out: Uint8Array, thumb: OverviewImage, mask: OverviewMask): void {
  const k = thumb.pixelSpacingUm / mask.pixelSpacingUm;
  const at = (x: number, y: number): number => {
    const mx = Math.floor((x + 0.5) * k);
    const my = Math.floor((y + 0.5) * k);
    return mx < 0 || my < 0 || mx >= mask.widthPx || my >= mask.heightPx
      ? 0
      : mask.data[my * mask.widthPx + mx]!;
  };
  for (let y = 0; y < thumb.height; y++) {
    for (let x = 0; x < thumb.width; x++) {
      const m = at(x, y);
      if (!m) continue;
      const i = (y * thumb.width + x) * RGB;
      const edge = !at(x - 1, y) || !at(x + 1, y) || !at(x, y - 1) || !at(x, y + 1);
      if (edge) set(out, i, OUTLINE_RGB);
      else blend(out, i, TISSUE_TINT_RGB, TISSUE_TINT_ALPHA);
    }
  }
}

function drawPatch(out: Uint8Array, thumb: OverviewImage, p: OverviewPatch, k: number): void {
  const x0 = Math.max(0, Math.round(p.x * k));
  const y0 = Math.max(0, Math.round(p.y * k));
  const x1 = Math.min(thumb.width, Math.round((p.x + p.width) * k));
  const y1 = Math.min(thumb.height, Math.round((p.y + p.height) * k));
  for (let y = y0; y < y1; y++) {
    for (let x = x0; x < x1; x++) {
      const i = (y * thumb.width + x) * RGB;
      const border = x === x0 || y === y0 || x === x1 - 1 || y === y1 - 1;
      if (border) blend(out, i, PATCH_BORDER_RGB, PATCH_ALPHA);
      else blend(out, i, p.rgb, PATCH_ALPHA);
    }
  }
}

/** The overview as RGB pixels. */
export function renderOverview(input: OverviewInput): OverviewImage {
  const { thumbnail } = input;
  if (thumbnail.data.length !== thumbnail.width * thumbnail.height * RGB) {
    throw new PathembedError('INVALID_ARGUMENT', 'renderOverview: thumbnail data is not width x height RGB', {
      argument: 'thumbnail',
    });
  }
  if (!(input.gridSpacingUm > 0)) {
    throw new PathembedError('INVALID_ARGUMENT', 'renderOverview: gridSpacingUm must be positive', {
      argument: 'gridSpacingUm',
    });
  }
  const out = Uint8Array.from(thumbnail.data);
  if (input.mask) drawMask(out, thumbnail, input.mask);
  const k = input.gridSpacingUm / thumbnail.pixelSpacingUm;
  for (const p of input.patches) drawPatch(out, thumbnail, p, k);
  return { ...thumbnail, data: out };
}

/** The overview encoded as PNG. */
export async function renderOverviewPng(input: OverviewInput): Promise<Buffer> {
  const image = renderOverview(input);
  return sharp(Buffer.from(image.data.buffer, image.data.byteOffset, image.data.byteLength), {
    raw: { width: image.width, height: image.height, channels: RGB },
  })
    .png()
    .toBuffer();
}
