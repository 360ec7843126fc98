/**
 * Slide-reading commands: `patch` (one region as PNG), `tissue` (the tissue mask as PNG) and
 * `grid` (the patches a job would embed, as JSON). `<series>` is a DICOMweb series reference or a
 * local folder (open-source.ts). PNG commands write the image to `-o` and print a JSON summary on
 * stdout; `grid` prints the grid JSON on stdout, or writes it to `-o` and prints a summary.
 *
 *   pathembed patch <series> --x X --y Y [--width W] [--height H] (--level N | --pixel-spacing UM) -o out.png [--require-inside]
 *   pathembed tissue <series> -o mask.png [--spacing UM]
 *   pathembed grid <series> [--pixel-spacing UM] [--stride PX] [--min-tissue F] [-o grid.json]
 *
 * With `--pixel-spacing`, X/Y/W/H are pixels of the target grid at that spacing (patch-reader.ts);
 * with `--level`, pixels of that level.
 */
import fs from 'node:fs/promises';
import type { Command } from 'commander';
import sharp from 'sharp';
import type { RgbFrame } from '../codecs/index.js';
import { type Config, loadConfig } from '../config.js';
import { pipelineOptions } from '../domain-options.js';
import { PATCH_SIZE_PX } from '../embed/model-contract.js';
import { PathembedError } from '../errors.js';
import { createLogger } from '../log.js';
import { planSlide } from '../pipeline/index.js';
import type { PatchGrid } from '../wsi/patch-grid.js';
import { RGB_CHANNELS } from '../wsi/resample.js';
import type { OpenSlideReader } from '../wsi/slide-opener.js';
import { computeTissueMask } from '../wsi/tissue-mask.js';
import {
  addSourceOptions,
  commandAccess,
  commandSlideOpener,
  openSlideReader,
  type SourceArgumentOptions,
  sourceSpecFromArgument,
} from './open-source.js';

function parseNumber(name: string, integer: boolean, min?: number, max?: number) {
  return (raw: string): number => {
    const n = Number(raw);
    const ok =
      raw.trim() !== '' &&
      Number.isFinite(n) &&
      (!integer || Number.isSafeInteger(n)) &&
      (min === undefined || n >= min) &&
      (max === undefined || n <= max);
    if (!ok) {
      const range = `${min !== undefined ? ` >= ${min}` : ''}${max !== undefined ? ` <= ${max}` : ''}`;
      throw new PathembedError(
        'INVALID_ARGUMENT',
        `--${name} must be ${integer ? 'an integer' : 'a number'}${range}, got ${JSON.stringify(raw)}`,
        { option: name, value: raw },
      );
    }
    return n;
  };
}

async function writePng(image: RgbFrame, file: string): Promise<void> {
  const png = await sharp(image.data, {
    raw: { width: image.width, height: image.height, channels: RGB_CHANNELS },
  })
    .png()
    .toBuffer();
  await fs.writeFile(file, png);
}

function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Opens the series, runs `fn`, and always closes the source and decoder. */
async function withSlide<T>(
  series: string,
  options: SourceArgumentOptions,
  fn: (session: OpenSlideReader, config: Config) => Promise<T>,
): Promise<T> {
  const config = loadConfig();
  const session = await openSlideReader(series, config, { token: options.token, allow: options.allow });
  try {
    return await fn(session, config);
  } finally {
    await session.close();
  }
}

interface PatchOptions extends SourceArgumentOptions {
  x: number;
  y: number;
  width: number;
  height: number;
  level?: number;
  pixelSpacing?: number;
  output: string;
  requireInside?: boolean;
}

async function patchCommand(series: string, options: PatchOptions): Promise<void> {
  if (options.level !== undefined && options.pixelSpacing !== undefined) {
    throw new PathembedError('INVALID_ARGUMENT', 'Give --level or --pixel-spacing, not both', {});
  }
  await withSlide(series, options, async ({ slide, reader, cache }, config) => {
    const rect = { x: options.x, y: options.y, width: options.width, height: options.height };
    const readOptions = { requireInside: options.requireInside ?? false };
    let choice: { level: number; scale: number; pixelSpacingUm?: number };
    let image: RgbFrame;
    if (options.level !== undefined) {
      const level = slide.level(options.level);
      image = await reader.readRegion(level, rect.x, rect.y, rect.width, rect.height, readOptions);
      choice = { level: level.index, scale: 1 };
    } else {
      const pixelSpacingUm = options.pixelSpacing ?? pipelineOptions(config).defaults.pixelSpacingUm;
      const levelScale = reader.chooseLevel(slide.pyramid.levels, pixelSpacingUm);
      image = await reader.readScaled(levelScale, rect, readOptions);
      choice = { level: levelScale.level.index, scale: levelScale.scale, pixelSpacingUm };
    }
    await writePng(image, options.output);
    printJson({
      output: options.output,
      ...choice,
      x: rect.x,
      y: rect.y,
      width: rect.width,
      height: rect.height,
      frames: cache.stats(),
    });
  });
}

interface TissueOptions extends SourceArgumentOptions {
  output: string;
  spacing?: number;
}

async function tissueCommand(series: string, options: TissueOptions): Promise<void> {
  await withSlide(series, options, async ({ slide, reader, cache }, config) => {
    const mask = await computeTissueMask(reader, slide.pyramid.levels, {
      spacingUm: options.spacing ?? pipelineOptions(config).tissueSpacingUm,
    });
    await fs.writeFile(options.output, await mask.toPng());
    printJson({ output: options.output, ...mask.toJSON(), frames: cache.stats() });
  });
}

interface GridOptions extends SourceArgumentOptions {
  pixelSpacing?: number;
  stride?: number;
  minTissue?: number;
  output?: string;
}

/**
 * The patch grid a job would embed, from the planner itself: the same option validation, level
 * choice, tissue mask and patch cap as `embed` and the service, without loading a model.
 */
async function gridCommand(series: string, options: GridOptions): Promise<void> {
  const config = loadConfig();
  const spec = await sourceSpecFromArgument(series);
  const plan = await planSlide(
    spec,
    {
      ...(options.pixelSpacing !== undefined ? { pixelSpacingUm: options.pixelSpacing } : {}),
      ...(options.stride !== undefined ? { stridePx: options.stride } : {}),
      ...(options.minTissue !== undefined ? { minTissue: options.minTissue } : {}),
    },
    {
      options: pipelineOptions(config),
      slides: commandSlideOpener(config, options),
      logger: createLogger('warn'),
      engine: { patchSize: PATCH_SIZE_PX },
    },
    commandAccess(config, options),
  );
  const grid: PatchGrid = {
    pixelSpacingUm: plan.pixelSpacingUm,
    level: plan.level.index,
    downsample: plan.downsample,
    widthPx: plan.widthPx,
    heightPx: plan.heightPx,
    patchSizePx: plan.patchSizePx,
    stridePx: plan.stridePx,
    minTissue: plan.minTissue,
    candidates: plan.candidates,
    tissue: plan.tissue,
    patches: plan.patches,
  };
  if (options.output === undefined) {
    printJson(grid);
    return;
  }
  await fs.writeFile(options.output, `${JSON.stringify(grid)}\n`);
  const { patches, ...summary } = grid;
  printJson({ output: options.output, ...summary, patchCount: patches.length });
}

/** Adds `patch`, `tissue` and `grid` to the program. */
export function registerPatchCommands(program: Command): void {
  addSourceOptions(
    program
      .command('patch')
      .description('Read one region of a slide and write it as PNG')
      .argument('<series>', 'DICOMweb series URL or a folder of DICOM files')
      .requiredOption('--x <px>', 'left edge (pixels of the level or target grid)', parseNumber('x', true))
      .requiredOption('--y <px>', 'top edge (pixels of the level or target grid)', parseNumber('y', true))
      .option('--width <px>', 'width in pixels', parseNumber('width', true, 1), PATCH_SIZE_PX)
      .option('--height <px>', 'height in pixels', parseNumber('height', true, 1), PATCH_SIZE_PX)
      .option(
        '--level <n>',
        'read this stored level (0 = finest); coordinates in its pixels',
        parseNumber('level', true, 0),
      )
      .option(
        '--pixel-spacing <um>',
        'read at this spacing in µm/px (default PATHEMBED_PIXEL_SPACING_UM); coordinates in its target grid',
        parseNumber('pixel-spacing', false, 0.01),
      )
      .requiredOption('-o, --output <file.png>', 'PNG file to write')
      .option('--require-inside', 'fail with PATCH_OUTSIDE_IMAGE instead of padding past the image edge'),
  ).action(patchCommand);

  addSourceOptions(
    program
      .command('tissue')
      .description('Compute the tissue mask of a slide and write it as PNG (white = tissue)')
      .argument('<series>', 'DICOMweb series URL or a folder of DICOM files')
      .requiredOption('-o, --output <file.png>', 'PNG file to write')
      .option(
        '--spacing <um>',
        'mask pixel spacing in µm/px (default PATHEMBED_TISSUE_SPACING_UM)',
        parseNumber('spacing', false, 0.01),
      ),
  ).action(tissueCommand);

  addSourceOptions(
    program
      .command('grid')
      .description('List the patches a job would embed: the stride grid filtered by the tissue mask, as JSON')
      .argument('<series>', 'DICOMweb series URL or a folder of DICOM files')
      .option(
        '--pixel-spacing <um>',
        'target spacing in µm/px (default PATHEMBED_PIXEL_SPACING_UM)',
        parseNumber('pixel-spacing', false, 0.01),
      )
      .option(
        '--stride <px>',
        'grid stride in target pixels (default PATHEMBED_STRIDE_PX)',
        parseNumber('stride', true, 1),
      )
      .option(
        '--min-tissue <fraction>',
        'least tissue fraction of a patch, 0-1 (default PATHEMBED_MIN_TISSUE)',
        parseNumber('min-tissue', false, 0, 1),
      )
      .option('-o, --output <file.json>', 'write the grid JSON here instead of stdout'),
  ).action(gridCommand);
}
