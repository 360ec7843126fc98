/**
 * `pathembed demo` (`npm run demo`): the whole job on built-in defaults with nothing else installed
 * or running. Builds the synthetic model if needed, writes the synthetic H&E sample slide as a
 * DICOM WSI folder, embeds it on CPU through the local source, and writes into demo-output/:
 *
 *   slide/          the sample slide (DICOM Part 10 files), reused by later runs
 *   result.json     the JSON result
 *   result-ann.dcm  the DICOM Microscopy Bulk Simple Annotations: every patch as a rectangle on
 *                   level 0 with its tissue fraction and principal component scores (docs/ann.md)
 *   result-sr.dcm   the DICOM Comprehensive SR, referring to the annotations
 *   overview.png    the thumbnail with the tissue mask tinted and outlined, and every embedded
 *                   patch coloured by the first three principal components of its embedding
 *
 * With `--serve`, it then shows its own result in the web page with no Redis (the local viewer:
 * the slide from slide/, the patch overlay, nearest patches) and prints the /ui link.
 *
 * The slide is 6144 x 4096 px at 0.5 um/px (about 250 tissue patches), sized so the demo takes
 * about a minute on 2 CPU cores.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { type Config, loadConfig } from '../config.js';
import { pipelineDeps, pipelineOptions, slideOpener } from '../domain-options.js';
import { createLogger, type Logger } from '../log.js';
import { meanGridSpacingUm, runEmbeddingJob, type SlidePlan } from '../pipeline/index.js';
import { CovarianceAccumulator, pcaColours, principalComponents } from '../results/embedding-pca.js';
import { streamResult, writeBytesAtomic } from '../results/index.js';
import { renderOverviewPng } from '../results/overview-image.js';
import { writeSampleSlide } from '../sample/sample-slide.js';
import { chooseLevel } from '../wsi/level-choice.js';
import { targetGridSize } from '../wsi/patch-reader.js';
import { meanPixelSpacingUm } from '../wsi/pixel-spacing.js';
import { computeTissueMask } from '../wsi/tissue-mask.js';
import { jobSummary, openEngine, progressReporter } from './embed-command.js';
import { DEFAULT_VIEW_HOST, DEFAULT_VIEW_PORT, serveLocalResult } from './view-command.js';

export const DEMO_SLIDE = { widthPx: 6144, heightPx: 4096, seed: 'pathembed-demo' } as const;
/** Longest side of overview.png. */
const OVERVIEW_MAX_PX = 1024;
const PCA_COMPONENTS = 3;
const THUMBNAIL_CACHE_BYTES = 64 * 1024 * 1024;
const STAMP_FILE = '.complete';

interface DemoOptions {
  readonly outputDir: string;
  readonly serve?: boolean;
  readonly host: string;
  readonly port: string;
}

/** Writes the sample slide unless an identical one is already there (its recipe is stamped). */
async function ensureSampleSlide(dir: string, logger: Logger): Promise<void> {
  const stamp = createHash('sha256').update(JSON.stringify(DEMO_SLIDE)).digest('hex');
  const stampPath = path.join(dir, STAMP_FILE);
  if ((await fs.readFile(stampPath, 'utf8').catch(() => '')) === stamp) return;
  logger.info({ dir, ...DEMO_SLIDE }, 'writing the synthetic H&E sample slide');
  await fs.rm(dir, { recursive: true, force: true });
  await fs.mkdir(dir, { recursive: true });
  await writeSampleSlide(dir, DEMO_SLIDE);
  await fs.writeFile(stampPath, stamp);
}

/** Thumbnail, tissue mask and PCA-coloured patches of the finished job, as a PNG. */
async function writeOverview(
  slideDir: string,
  plan: SlidePlan,
  jsonPath: string,
  pngPath: string,
  config: Config,
): Promise<void> {
  const result = await streamResult(jsonPath);
  const acc = new CovarianceAccumulator(result.header.embeddingDimension);
  const patches: Array<{ x: number; y: number; width: number; height: number; embedding: Float32Array }> = [];
  for await (const p of result.patches()) {
    acc.add(p.embedding);
    patches.push(p);
  }
  const colours =
    patches.length > 0
      ? pcaColours(
          principalComponents(acc, Math.min(PCA_COMPONENTS, acc.dimension)),
          patches.map((p) => p.embedding),
        )
      : [];

  const { slide, reader, close } = await slideOpener({
    ...config,
    PATHEMBED_FRAME_CACHE_BYTES: THUMBNAIL_CACHE_BYTES,
  }).openSlideReader({ kind: 'local', folder: slideDir });
  try {
    const level0 = slide.level(0);
    const thumbSpacingUm =
      (Math.max(level0.widthPx, level0.heightPx) * meanPixelSpacingUm(level0)) / OVERVIEW_MAX_PX;
    const choice = chooseLevel(slide.pyramid.levels, thumbSpacingUm, {
      tolerance: config.PATHEMBED_LEVEL_TOLERANCE,
    });
    const size = targetGridSize({ level: choice.level, scale: choice.scale });
    const thumb = await reader.readScaled(
      { level: choice.level, scale: choice.scale },
      { x: 0, y: 0, width: size.widthPx, height: size.heightPx },
    );
    const mask = await computeTissueMask(reader, slide.pyramid.levels, {
      spacingUm: pipelineOptions(config).tissueSpacingUm,
    });
    const png = await renderOverviewPng({
      thumbnail: {
        width: thumb.width,
        height: thumb.height,
        data: thumb.data,
        pixelSpacingUm: choice.levelSpacingUm * choice.scale,
      },
      mask,
      gridSpacingUm: meanGridSpacingUm(plan),
      patches: patches.map((p, i) => ({
        x: p.x,
        y: p.y,
        width: p.width,
        height: p.height,
        rgb: colours[i]!,
      })),
    });
    await writeBytesAtomic(pngPath, png);
  } finally {
    await close();
  }
}

async function demoAction(opts: DemoOptions): Promise<void> {
  // The demo runs on the CPU whatever the machine has, so it behaves the same everywhere.
  const config: Config = { ...loadConfig(), PATHEMBED_EXECUTION_PROVIDER: 'cpu' };
  const logger = createLogger(config.LOG_LEVEL);
  const started = performance.now();
  const out = path.resolve(opts.outputDir);
  const slideDir = path.join(out, 'slide');
  const jsonPath = path.join(out, 'result.json');
  const srPath = path.join(out, 'result-sr.dcm');
  const annPath = path.join(out, 'result-ann.dcm');
  const pngPath = path.join(out, 'overview.png');
  process.stderr.write(`pathembed demo: writing into ${out}\n`);
  const engine = await openEngine(config, logger);
  try {
    await ensureSampleSlide(slideDir, logger);
    const progress = progressReporter();
    const outcome = await runEmbeddingJob(
      { kind: 'local', folder: slideDir },
      {},
      { jsonPath, srPath, annPath },
      pipelineDeps(config, logger, engine),
      { onProgress: (p) => progress.update(p) },
    );
    progress.stop();
    await writeOverview(slideDir, outcome.plan, jsonPath, pngPath, config);
    const summary = {
      ...jobSummary(outcome, engine.manifest),
      slide: slideDir,
      overview: pngPath,
      demoSeconds: Math.round((performance.now() - started) / 100) / 10,
    };
    process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
    process.stderr.write(
      [
        '',
        'pathembed demo finished:',
        `  slide (DICOM WSI)  ${slideDir}`,
        `  JSON result        ${jsonPath}`,
        `  DICOM annotations  ${annPath}`,
        `  DICOM SR           ${srPath}`,
        `  overview picture   ${pngPath}`,
        engine.manifest.synthetic
          ? '  (the model is the synthetic stand-in: its embeddings carry no pathology meaning)'
          : '',
        '',
      ].join('\n'),
    );
  } finally {
    await engine.close();
  }
  if (opts.serve) {
    await serveLocalResult(config, logger, {
      resultPath: jsonPath,
      slide: { kind: 'local', folder: slideDir },
      host: opts.host,
      port: Number(opts.port),
    });
  }
}

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description(
      'Run a whole job on a synthetic sample slide (CPU, nothing else needed): JSON, bulk annotations, SR and overview.png',
    )
    .option('--output-dir <dir>', 'where to write the slide and the results', 'demo-output')
    .option('--serve', 'then show the result in the web page (no Redis needed) and print its /ui link')
    .option('--host <address>', 'with --serve: address to listen on', DEFAULT_VIEW_HOST)
    .option('--port <n>', 'with --serve: port (0 picks a free one)', String(DEFAULT_VIEW_PORT))
    .action(demoAction);
}
