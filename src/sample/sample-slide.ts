/**
 * The demo slide: a synthetic H&E-like whole-slide image (pink tissue with purple nuclei on white
 * glass, with empty glass between tissue pieces) written as a DICOM WSI series, so `pathembed demo`
 * and the benchmarks run without downloading a real slide.
 */
import { hematoxylinEosinPattern } from './pixel-patterns.js';
import { type SyntheticWsi, type SyntheticWsiOptions, writeSyntheticWsi } from './synthetic-wsi-writer.js';

export interface SampleSlideOptions
  extends Partial<Omit<SyntheticWsiOptions, 'pixel' | 'widthPx' | 'heightPx'>> {
  /** Level-0 size; default 3072 x 2048 px (1.5 x 1 mm at 0.5 um/px). */
  readonly widthPx?: number;
  readonly heightPx?: number;
}

/**
 * Writes the sample slide into `dir`: by default 3072 x 2048 px at 0.5 um/px, levels 1x/4x/16x,
 * 256 px JPEG (quality 90) tiles, TILED_FULL, with a THUMBNAIL and a LABEL.
 */
export function writeSampleSlide(dir: string, options: SampleSlideOptions = {}): Promise<SyntheticWsi> {
  const widthPx = options.widthPx ?? 3072;
  const heightPx = options.heightPx ?? 2048;
  const seed = options.seed ?? 'pathembed-sample';
  return writeSyntheticWsi(dir, {
    downsamples: [1, 4, 16],
    transferSyntax: 'jpeg-baseline',
    jpegQuality: 90,
    associatedImages: ['THUMBNAIL', 'LABEL'],
    seriesDescription: 'pathembed synthetic H&E sample',
    filePrefix: 'sample',
    ...options,
    widthPx,
    heightPx,
    seed,
    pixel: hematoxylinEosinPattern({ widthPx, heightPx, seed }),
  });
}
