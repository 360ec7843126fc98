/**
 * `pathembed embed <series|folder>`: one embedding job in this process (no Redis, no server):
 * plan the slide, embed its tissue patches (or the patches of `--patches file.json`), write the
 * JSON result (`-o`), and optionally the HDF5 (`--hdf5 out.h5`) and Parquet (`--parquet out.parquet`)
 * files for machine-learning tools, the DICOM bulk annotations (`--ann out.dcm`, with every
 * embedding component under `--ann-embedding`), the DICOM SR (`--sr out.dcm`) and their STOW-RS
 * upload (`--stow [URL]`: the URL, else PATHEMBED_SR_DESTINATION, else the source store). Progress goes
 * to stderr (a bar on a terminal, one line per batch otherwise); a JSON summary goes to stdout.
 * Ctrl-C cancels within one batch and leaves no partial result. A failed upload exits 1 after
 * the summary, with the JSON result kept.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import { ensureDefaultModel } from '../../models/default-model.js';
import { type Config, loadConfig } from '../config.js';
import { engineOptions, pipelineDeps } from '../domain-options.js';
import { WorkerEmbeddingEngine } from '../embed/index.js';
import { PathembedError } from '../errors.js';
import { createLogger, type Logger } from '../log.js';
import {
  type EmbedOptions,
  FRAME_ERROR_POLICIES,
  type FrameErrorPolicy,
  type JobOutcome,
  type JobProgress,
  type PipelineDeps,
  runEmbeddingJob,
} from '../pipeline/index.js';
import { EMBEDDING_ENCODINGS, type EmbeddingEncoding } from '../results/index.js';
import {
  addSourceOptions,
  commandSlideOpener,
  type SourceArgumentOptions,
  sourceSpecFromArgument,
} from './open-source.js';

interface EmbedCommandOptions extends SourceArgumentOptions {
  readonly output: string;
  readonly pixelSpacing?: string;
  readonly stride?: string;
  readonly minTissue?: string;
  readonly patches?: string;
  readonly sr?: string;
  readonly ann?: string;
  readonly annEmbedding?: boolean;
  readonly hdf5?: string;
  readonly parquet?: string;
  readonly stow?: boolean | string;
  readonly embeddingEncoding?: string;
  readonly frameErrors?: string;
}

/** Seconds between plain progress lines when stderr is not a terminal. */
const PLAIN_PROGRESS_INTERVAL_MS = 2000;

function number(option: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n)) {
    throw new PathembedError('INVALID_ARGUMENT', `--${option} must be a number, got "${value}"`, { option });
  }
  return n;
}

/** Reads `--patches`: a JSON array of {x, y} (target-grid pixels), or {"patches": [...]}. */
export async function readPatchesFile(file: string): Promise<EmbedOptions['patches']> {
  let json: unknown;
  try {
    json = JSON.parse(await fs.readFile(file, 'utf8'));
  } catch (err) {
    throw new PathembedError('INVALID_ARGUMENT', `--patches ${file}: ${(err as Error).message}`, {
      option: 'patches',
    });
  }
  const list = Array.isArray(json) ? json : (json as { patches?: unknown })?.patches;
  if (!Array.isArray(list)) {
    throw new PathembedError(
      'INVALID_ARGUMENT',
      `--patches ${file} must hold an array of {"x", "y"} or {"patches": [...]}`,
      {
        option: 'patches',
      },
    );
  }
  return list.map((p, i) => {
    const { x, y } = (p ?? {}) as { x?: unknown; y?: unknown };
    if (typeof x !== 'number' || typeof y !== 'number') {
      throw new PathembedError('INVALID_ARGUMENT', `--patches ${file}: entry ${i} has no numeric x and y`, {
        option: 'patches',
        index: i,
      });
    }
    return { x, y };
  });
}

export interface ProgressReporter {
  update(progress: JobProgress): void;
  stop(): void;
}

/** A cli-progress bar on a terminal; otherwise a plain line every few seconds and at the end. */
export function progressReporter(stream: NodeJS.WriteStream = process.stderr): ProgressReporter {
  if (stream.isTTY) {
    const bar = new cliProgress.SingleBar(
      {
        stream,
        format: 'embedding [{bar}] {value}/{total} patches | {rate} patches/s | ETA {eta_formatted}',
        hideCursor: true,
      },
      cliProgress.Presets.shades_classic,
    );
    let started = false;
    return {
      update(p) {
        if (!started) {
          bar.start(p.planned, 0, { rate: '0.0' });
          started = true;
        }
        bar.update(p.done, { rate: p.patchesPerSecond.toFixed(1) });
      },
      stop() {
        if (started) bar.stop();
      },
    };
  }
  let lastMs = 0;
  return {
    update(p) {
      const now = Date.now();
      if (p.done < p.planned && now - lastMs < PLAIN_PROGRESS_INTERVAL_MS) return;
      lastMs = now;
      stream.write(`embedded ${p.done}/${p.planned} patches (${p.patchesPerSecond.toFixed(1)} patches/s)\n`);
    },
    stop() {},
  };
}

/** The summary printed at the end of a job (JSON). */
export function jobSummary(outcome: JobOutcome, model: PipelineDeps['engine']['manifest']) {
  return {
    result: outcome.jsonPath,
    jobKey: outcome.jobKey,
    model: { name: model.name, version: model.version, sha256: model.sha256, synthetic: model.synthetic },
    level: outcome.plan.level.index,
    downsample: outcome.plan.downsample,
    pixelSpacingUm: outcome.plan.pixelSpacingUm,
    plannedPatches: outcome.summary.plannedPatchCount,
    patches: outcome.summary.patchCount,
    failedPatches: outcome.summary.failedPatchCount ?? 0,
    tissueFraction: outcome.plan.tissue?.fraction ?? null,
    patchesPerSecond: outcome.summary.patchesPerSecond,
    timingsMs: outcome.timings,
    ...(outcome.ann ? { ann: outcome.ann } : {}),
    ...(outcome.files ? { files: outcome.files } : {}),
    ...(outcome.sr ? { sr: outcome.sr } : {}),
    ...(outcome.srSkipped ? { srSkipped: outcome.srSkipped } : {}),
  };
}

/**
 * Opens the engine in a worker thread (so inference does not stall slide reading, see
 * pipeline/worker-engine.ts), building the default synthetic model on first use.
 */
export async function openEngine(config: Config, logger: Logger): Promise<WorkerEmbeddingEngine> {
  await ensureDefaultModel(engineOptions(config), logger);
  return WorkerEmbeddingEngine.open(engineOptions(config), config.LOG_LEVEL);
}

function frameErrorPolicy(value: string): FrameErrorPolicy {
  if ((FRAME_ERROR_POLICIES as readonly string[]).includes(value)) return value as FrameErrorPolicy;
  throw new PathembedError(
    'INVALID_ARGUMENT',
    `--frame-errors must be one of ${FRAME_ERROR_POLICIES.join(', ')}, got "${value}"`,
    { option: 'frame-errors' },
  );
}

async function embedAction(series: string, opts: EmbedCommandOptions): Promise<void> {
  const config = loadConfig();
  const encoding = opts.embeddingEncoding ?? 'float32-array';
  if (!(EMBEDDING_ENCODINGS as readonly string[]).includes(encoding)) {
    throw new PathembedError(
      'INVALID_ARGUMENT',
      `--embedding-encoding must be one of ${EMBEDDING_ENCODINGS.join(', ')}, got "${encoding}"`,
      { option: 'embedding-encoding' },
    );
  }
  if (opts.annEmbedding && !opts.ann) {
    throw new PathembedError(
      'INVALID_ARGUMENT',
      '--ann-embedding puts the embeddings into the bulk annotations: give --ann <file> too',
      { option: 'ann-embedding' },
    );
  }
  const options: EmbedOptions = {
    ...(opts.pixelSpacing !== undefined
      ? { pixelSpacingUm: number('pixel-spacing', opts.pixelSpacing) }
      : {}),
    ...(opts.stride !== undefined ? { stridePx: number('stride', opts.stride) } : {}),
    ...(opts.minTissue !== undefined ? { minTissue: number('min-tissue', opts.minTissue) } : {}),
    ...(opts.patches !== undefined ? { patches: await readPatchesFile(opts.patches) } : {}),
    ...(opts.frameErrors !== undefined ? { frameErrors: frameErrorPolicy(opts.frameErrors) } : {}),
  };
  const spec = await sourceSpecFromArgument(series);
  const logger = createLogger(config.LOG_LEVEL);
  const engine = await openEngine(config, logger);
  const token = opts.token ?? config.PATHEMBED_BEARER_TOKEN;
  const controller = new AbortController();
  const onSigint = () => controller.abort();
  process.once('SIGINT', onSigint);
  const progress = progressReporter();
  try {
    const outcome = await runEmbeddingJob(
      spec,
      options,
      {
        jsonPath: path.resolve(opts.output),
        embeddingEncoding: encoding as EmbeddingEncoding,
        ...(opts.hdf5 ? { hdf5Path: path.resolve(opts.hdf5) } : {}),
        ...(opts.parquet ? { parquetPath: path.resolve(opts.parquet) } : {}),
        ...(opts.sr ? { srPath: path.resolve(opts.sr) } : {}),
        ...(opts.ann ? { annPath: path.resolve(opts.ann), annEmbedding: opts.annEmbedding === true } : {}),
        ...(opts.stow !== undefined ? { stow: opts.stow } : {}),
      },
      pipelineDeps(config, logger, engine, commandSlideOpener(config, opts, logger)),
      { ...(token ? { token } : {}), signal: controller.signal, onProgress: (p) => progress.update(p) },
    );
    progress.stop();
    process.stdout.write(`${JSON.stringify(jobSummary(outcome, engine.manifest), null, 2)}\n`);
    for (const [what, stow] of [
      ['the bulk annotations', outcome.ann?.stow],
      ['the SR', outcome.sr?.stow],
    ] as const) {
      if (!stow || stow.ok) continue;
      process.stderr.write(
        `pathembed: ${stow.error.code}: storing ${what} failed: ${stow.error.message} (the JSON result is at ${outcome.jsonPath})\n`,
      );
      process.exitCode = 1;
    }
  } finally {
    progress.stop();
    process.off('SIGINT', onSigint);
    await engine.close();
  }
}

export function registerEmbedCommand(program: Command): void {
  addSourceOptions(
    program
      .command('embed')
      .description('Embed the tissue patches of a slide into a JSON result (and a DICOM SR), in this process')
      .argument(
        '<series>',
        'DICOMweb series URL, Google Healthcare series path, or a local folder of DICOM files',
      )
      .requiredOption('-o, --output <file>', 'JSON result file (written atomically)')
      .option(
        '--pixel-spacing <um>',
        'target pixel spacing in um/px (default PATHEMBED_PIXEL_SPACING_UM, 0.5)',
      )
      .option('--stride <px>', 'grid stride in target pixels (default PATHEMBED_STRIDE_PX, 224)')
      .option(
        '--min-tissue <fraction>',
        'least tissue fraction of a grid patch (default PATHEMBED_MIN_TISSUE, 0.5)',
      )
      .option(
        '--patches <file>',
        'embed these patches instead of the tissue grid: JSON [{"x":..,"y":..}] in target pixels',
      )
      .option(
        '--hdf5 <file>',
        'also write an HDF5 file: features float32 [N,384], level-0 coords [N,2] (CLAM/TRIDENT layout)',
      )
      .option('--parquet <file>', 'also write a Parquet file: one row per patch, embedding as float32[384]')
      .option('--sr <file>', 'also write the DICOM Comprehensive SR here')
      .option(
        '--ann <file>',
        'also write the DICOM Microscopy Bulk Simple Annotations here (patches, tissue fraction, PCA scores)',
      )
      .option('--ann-embedding', 'put every embedding component into the bulk annotations too')
      .option(
        '--stow [url]',
        'also store the SR (and the bulk annotations) with STOW-RS (default: PATHEMBED_SR_DESTINATION, else the source store)',
      )
      .option(
        '--frame-errors <policy>',
        'a corrupt frame: fail the job, or skip the patches that need it and list them in the result (default PATHEMBED_FRAME_ERRORS, fail)',
      )
      .option(
        '--embedding-encoding <encoding>',
        `embeddings in the JSON: ${EMBEDDING_ENCODINGS.join(' or ')}`,
      ),
  ).action(embedAction);
}
