/**
 * Slide-reading benchmark (`npm run bench:wsi`): how fast patches come out of a DICOMweb store,
 * fetched and decoded, without the model, with pathembed's reader against the naive baseline.
 *
 * - pathembed: frames batched up to PATHEMBED_FRAMES_PER_REQUEST per WADO-RS request, the
 *   decoded-frame cache (PATHEMBED_FRAME_CACHE_BYTES) with in-flight de-duplication and a
 *   prefetch of the grid's frames in row order.
 * - baseline: one frame per request and no cache, i.e. EZ-WSI without its frame cache: every
 *   patch fetches and decodes every frame it overlaps.
 *
 * Both read the same grids (level 0 of cmu-jpeg and cmu-jpeg2000, 224 px patches, stride 224 and
 * the overlapping stride 112) from a private Orthanc, with the same number of patches in flight
 * (PATHEMBED_BATCH_SIZE, as the pipeline reads them). Orthanc is warmed first, and each figure is
 * the median of RUNS runs with a fresh reader. Prints a Markdown table for docs/benchmarks.md.
 *
 * Then, when EZ-WSI is installed (PATHEMBED_EZWSI_PYTHON: a Python with its dependencies;
 * PATHEMBED_EZWSI_SRC: its source checkout; docs/benchmarks.md says how), pathembed against
 * EZ-WSI DICOMweb itself (bench/ezwsi_read.py), each in child processes, on the same Orthanc and
 * grids: round 1 of a process is the fresh-process figure, later rounds the warm one, and every
 * patch's sha256 is compared. pathembed runs compiled (dist/, built first), as it ships.
 *
 * `--feed` instead measures how many patches one worker process can feed a GPU: fetch, decode,
 * cut and batch into the model's input tensor with no model, per decode-thread count from 1 to
 * the cores available, with the CPU time it took. The batch is what the GPU builds of the model
 * take (uint8 pixels, scaled inside the graph); one more row batches into the fp32 build's float
 * input (pixel / 255 on the CPU), with the embedding engine's own `writeBatchInput`.
 *
 * `--predict` instead reads a /v1/predict instance's patches (16 and 100, scattered over level 0)
 * one by one and as one list (`readPatchList`), with the same bytes.
 *
 * The run starts with the JPEG decoders side by side (bench/jpeg-decoders.ts; alone: `--decoders`).
 *
 * `--slide PATH` (repeatable) reads the user's own slides instead of the fixtures, and every grid
 * is at most `--max-patches` patches, a centred window on a larger level (bench-slides.ts).
 *
 *   npm run bench:wsi [-- --runs 5] [-- --no-j2k] [-- --no-ezwsi | --only-ezwsi] [-- --feed | --decoders]
 *                     [-- --slide PATH ...] [-- --max-patches N] [-- --predict]
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  CMU,
  CMU_SVS,
  ensureFixture,
  FIXTURES,
  type FixtureRecipe,
  REPO_ROOT,
} from '../scripts/dev-services/fixtures.js';
import { startOrthanc, uploadFolder } from '../scripts/dev-services/orthanc.js';
import type { RgbFrame } from '../src/codecs/index.js';
import { decodeThreadCount, FrameDecoder, type JpegDecoderChoice } from '../src/codecs/index.js';
import { transferSyntaxName } from '../src/codecs/transfer-syntax.js';
import { type Config, loadConfig } from '../src/config.js';
import { DicomWebClient, StoreLimiters } from '../src/dicomweb/index.js';
import { frameDecoderOptions, retryPolicy } from '../src/domain-options.js';
import { writeBatchInput } from '../src/embed/batch-input.js';
import { type ModelInputType, PATCH_BYTES, PATCH_SIZE_PX } from '../src/embed/model-contract.js';
import { withMallocTunables } from '../src/process-memory.js';
import { DicomWebFrameSource } from '../src/wsi/dicomweb-frame-source.js';
import { FrameCache, type FrameProvider } from '../src/wsi/frame-cache.js';
import type { FrameSource } from '../src/wsi/frame-source.js';
import { readPatchList } from '../src/wsi/patch-list.js';
import { PatchReader } from '../src/wsi/patch-reader.js';
import { openSlide } from '../src/wsi/slide.js';
import type { SlideLevel, TileFrame } from '../src/wsi/slide-level.js';
import {
  describeSlide,
  gridRects,
  gridRegion,
  JPEG_TRANSFER_SYNTAXES,
  maxPatchesArg,
  regionArg,
  slideFacts,
  type UserSlide,
  uploadSlide,
  userSlides,
} from './bench-slides.js';
import { frames512, framesOfLevel0, jpegDecoderTable } from './jpeg-decoders.js';
import { pageFaultLine } from './page-faults.js';

const DEFAULT_RUNS = 3;
const STRIDES_PX = [PATCH_SIZE_PX, PATCH_SIZE_PX / 2];
/** Grids read in one child process: round 1 is the fresh process, the rest are warm. */
const ROUNDS_PER_PROCESS = 3;
/** Grid passes per decode-thread count in --feed (each with a cold cache). */
const FEED_PASSES = { 'cmu-jpeg': 6, 'cmu-jpeg2000': 2 } as Record<string, number>;
/** Other slides (`--slide`): passes enough for this many patches a row, and at least FEED_MIN_PASSES. */
const FEED_MIN_PATCHES = 600;
const FEED_MIN_PASSES = 2;

/**
 * CMU-1-Small-Region with 256 px JPEG tiles: the dicomizer only re-tiles by divisors of the
 * source's 240 px, so vips first writes the region as a TIFF tiled at 256 px (JPEG q95).
 */
async function buildCmu256(dir: string): Promise<void> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'pathembed-cmu256-'));
  try {
    const rgb = path.join(tmp, 'rgb.v');
    const tiff = path.join(tmp, 'cmu256.tif');
    execFileSync('vips', ['extract_band', CMU_SVS, rgb, '0', '--n', '3']);
    execFileSync('vips', [
      'tiffsave',
      rgb,
      tiff,
      '--tile',
      '--tile-width',
      '256',
      '--tile-height',
      '256',
      '--compression',
      'jpeg',
      '--Q',
      '95',
    ]);
    execFileSync(
      'OrthancWSIDicomizer',
      [
        `--folder=${dir}`,
        '--threads=2',
        '--pyramid=1',
        '--levels=4',
        '--smooth=1',
        '--compression=jpeg',
        '--jpeg-quality=90',
        '--reencode=1',
        '--max-size=0',
        `--imaged-width=${(CMU.widthPx * CMU.mppUm) / 1000}`,
        `--imaged-height=${(CMU.heightPx * CMU.mppUm) / 1000}`,
        tiff,
      ],
      { stdio: 'pipe' },
    );
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/**
 * The slides of the EZ-WSI comparison without `--slide`: the CMU region as JPEG with 240 and
 * 256 px tiles, and as JPEG 2000. Their codec and tiles are read from the files.
 */
const EZWSI_SLIDES: { recipe: FixtureRecipe }[] = [
  { recipe: FIXTURES.find((f) => f.name === 'cmu-jpeg')! },
  {
    recipe: {
      name: 'cmu-jpeg-256',
      recipe: ['vips tiled tiff 256 q95', 'jpeg', 90, 'reencode', 0],
      build: buildCmu256,
    },
  },
  { recipe: FIXTURES.find((f) => f.name === 'cmu-jpeg2000')! },
];

/** The baseline's frame provider: every frame fetched (alone) and decoded each time it is asked for. */
class UncachedFrames implements FrameProvider {
  constructor(
    private readonly source: FrameSource,
    private readonly decoder: FrameDecoder,
  ) {}

  async getFrames(level: SlideLevel, tiles: readonly TileFrame[], signal?: AbortSignal): Promise<RgbFrame[]> {
    return Promise.all(
      tiles.map(async (tile) => {
        const [frame] = await this.source.fetchFrames(tile.instanceUid, [tile.frameIndex], signal);
        return this.decoder.decode(frame.data, frame.transferSyntaxUid, level.frame);
      }),
    );
  }
}

interface RunResult {
  patches: number;
  seconds: number;
  requests: number;
  frames: number;
  hitRatio: number | null;
}

interface Row {
  fixture: string;
  stridePx: number;
  mode: 'pathembed' | 'baseline';
  patches: number;
  patchesPerSecond: number;
  requestsPer1000: number;
  framesPer1000: number;
  hitRatio: number | null;
}

/** A slide the benchmark reads: a fixture, or the user's own (`--slide`). */
interface BenchSlide {
  readonly name: string;
  /** Stores it in the benchmark's Orthanc; its series' DICOMweb URL. */
  stage(): Promise<string>;
}

/** Who decodes frames of `uid` in the decode workers, as the tables name it. */
function codecLabel(uid: string): string {
  if (uid.startsWith('1.2.840.10008.1.2.4.9') || uid.startsWith('1.2.840.10008.1.2.4.20'))
    return 'OpenJPEG WASM';
  if (uid === '1.2.840.10008.1.2.4.80' || uid === '1.2.840.10008.1.2.4.81') return 'CharLS WASM';
  return `${transferSyntaxName(uid) ?? uid} decoder`;
}

/** The series read as a job reads it: the configured frames per request, a limiter of its own. */
function seriesSource(config: Config, seriesUrl: string): DicomWebFrameSource {
  const limiters = new StoreLimiters(config.PATHEMBED_STORE_CONCURRENCY);
  return new DicomWebFrameSource(client(config, config.PATHEMBED_FRAMES_PER_REQUEST, limiters), seriesUrl);
}

/** `use` applied to level 0 of a stored series, the slide closed after. */
async function withLevel0<T>(
  config: Config,
  seriesUrl: string,
  use: (level: SlideLevel, source: DicomWebFrameSource) => Promise<T> | T,
): Promise<T> {
  const source = seriesSource(config, seriesUrl);
  const slide = await openSlide(source);
  try {
    return await use(slide.level(0), source);
  } finally {
    await slide.close();
  }
}

/** Level 0 of a stored series, described for a table's heading. */
async function describeSeries(config: Config, seriesUrl: string): Promise<string> {
  return withLevel0(config, seriesUrl, async (level, source) =>
    describeSlide(await slideFacts(source, level)),
  );
}

/** Level 0's grid at `stridePx`, limited to a centred window of `maxPatches` (bench-slides.ts). */
function levelGrid(level: SlideLevel, stridePx: number, maxPatches: number) {
  return gridRects(gridRegion(level, PATCH_SIZE_PX, stridePx, maxPatches), PATCH_SIZE_PX, stridePx);
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function client(config: Config, framesPerRequest: number, limiters: StoreLimiters): DicomWebClient {
  return new DicomWebClient({
    allowedStores: config.PATHEMBED_ALLOWED_STORES,
    retry: retryPolicy(config),
    framesPerRequest,
    storeConcurrency: config.PATHEMBED_STORE_CONCURRENCY,
    limiters,
  });
}

/** Reads every patch of the grid, `inFlight` at a time, in row order; returns counts and time. */
async function readGrid(
  mode: Row['mode'],
  seriesUrl: string,
  stridePx: number,
  config: Config,
  decoder: FrameDecoder,
  maxPatches: number,
): Promise<RunResult> {
  // A fresh limiter registry per run, so no run waits on another's queue.
  const limiters = new StoreLimiters(config.PATHEMBED_STORE_CONCURRENCY);
  const framesPerRequest = mode === 'pathembed' ? config.PATHEMBED_FRAMES_PER_REQUEST : 1;
  const source = new DicomWebFrameSource(client(config, framesPerRequest, limiters), seriesUrl);
  const slide = await openSlide(source);
  const level = slide.level(0);
  const rects = levelGrid(level, stridePx, maxPatches);
  const cache =
    mode === 'pathembed'
      ? new FrameCache(source, decoder, { maxBytes: config.PATHEMBED_FRAME_CACHE_BYTES })
      : null;
  const reader = new PatchReader(cache ?? new UncachedFrames(source, decoder), {
    levelTolerance: config.PATHEMBED_LEVEL_TOLERANCE,
  });
  const inFlight = config.PATHEMBED_BATCH_SIZE;
  const requestsBefore = source.stats.requests;
  const t0 = performance.now();
  // As a job does: each frame goes back to the decoder after the last patch that reads it.
  reader.expectPatches({ level, scale: 1 }, rects);
  // Not awaited before reading: patches start as soon as their frames arrive.
  const prefetch = reader.prefetchPatches({ level, scale: 1 }, rects);
  let checksum = 0;
  for (let i = 0; i < rects.length; i += inFlight) {
    const batch = rects.slice(i, i + inFlight);
    const patches = await Promise.all(
      batch.map((r) => reader.readRegion(level, r.x, r.y, r.width, r.height)),
    );
    for (const p of patches) checksum += p.data[p.data.length >> 1];
  }
  await prefetch;
  const seconds = (performance.now() - t0) / 1000;
  if (!Number.isFinite(checksum)) throw new Error('unreachable');
  const result: RunResult = {
    patches: rects.length,
    seconds,
    requests: source.stats.requests - requestsBefore,
    frames: source.stats.frames,
    hitRatio: cache ? cache.stats().hitRatio : null,
  };
  await slide.close();
  return result;
}

function cpuModel(): string {
  try {
    const line = execFileSync('lscpu', { encoding: 'utf8' })
      .split('\n')
      .find((l) => l.startsWith('Model name:'));
    if (line) return line.replace('Model name:', '').trim();
  } catch {
    // lscpu missing: fall back to Node's view
  }
  return os.cpus()[0]?.model ?? 'unknown';
}

function fmt(n: number, digits = 1): string {
  return n.toFixed(digits);
}

interface GridRun {
  importSeconds: number;
  seconds: number[];
  patches: number;
  sha256: string[];
}

/** Runs one child reader; returns its JSON answer and the whole process's wall time (start to exit). */
function runChild(
  command: string,
  argv: string[],
  env: NodeJS.ProcessEnv,
): GridRun & { processSeconds: number } {
  const t0 = performance.now();
  const out = spawnSync(command, argv, {
    cwd: REPO_ROOT,
    env,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  const processSeconds = (performance.now() - t0) / 1000;
  if (out.status !== 0) throw new Error(`${command} ${argv.join(' ')} failed (${out.status}): ${out.stderr}`);
  const line = out.stdout.trim().split('\n').pop() ?? '';
  return { ...(JSON.parse(line) as GridRun), processSeconds };
}

/** The part of level 0 both readers' grids cover, and whether that is the whole level. */
async function comparisonRegion(config: Config, seriesUrl: string, maxPatches: number) {
  return withLevel0(config, seriesUrl, (level) => {
    const region = gridRegion(level, PATCH_SIZE_PX, PATCH_SIZE_PX, maxPatches);
    return { region, whole: region.width === level.widthPx && region.height === level.heightPx };
  });
}

/**
 * pathembed against EZ-WSI DICOMweb on the same Orthanc, slides and grids, both in child
 * processes (module doc). Returns the Markdown lines, or one line saying why it was skipped.
 */
async function ezwsiComparison(
  config: Config,
  orthancUrl: string,
  dicomWebUrl: string,
  runs: number,
  user: readonly UserSlide[],
  maxPatches: number,
): Promise<string[]> {
  const python = process.env.PATHEMBED_EZWSI_PYTHON;
  if (!python) {
    const line =
      'EZ-WSI comparison skipped: PATHEMBED_EZWSI_PYTHON is not set (docs/benchmarks.md says how to install EZ-WSI).';
    process.stderr.write(`${line}\n`);
    return [line];
  }
  process.stderr.write('building dist/ (pathembed runs compiled in the comparison, as it ships)\n');
  execFileSync(path.join(REPO_ROOT, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.json'], {
    cwd: REPO_ROOT,
    stdio: 'inherit',
  });
  const script = path.join(REPO_ROOT, 'bench', 'ezwsi_read.py');
  const child = path.join(REPO_ROOT, 'dist', 'bench', 'wsi-grid.js');
  // Both children start as bin/pathembed and the images start pathembed: with glibc's malloc
  // on huge pages (src/process-memory.ts). EZ-WSI gets the same environment, so the comparison
  // stays like for like (its figures do not move with it: docs/benchmarks.md).
  const env = withMallocTunables(process.env);
  const lines = [
    `EZ-WSI DICOMweb (${python}, source ${process.env.PATHEMBED_EZWSI_SRC ?? 'on its sys.path'}) against pathembed, level 0, ` +
      `224 px patches at stride 224, ${runs} child processes each, alternating; round 1 of a process is *fresh*, ` +
      `rounds 2-${ROUNDS_PER_PROCESS} *warm* (slide opened anew each round, imports excluded); *process* is spawn to exit. ` +
      `Both with GLIBC_TUNABLES=${env.GLIBC_TUNABLES ?? ''}. ` +
      `Seconds are medians; ratio = EZ-WSI time / pathembed time (> 1: pathembed faster). ` +
      `1-minute load average ${os.loadavg()[0].toFixed(2)} at the start.`,
    '',
    pageFaultLine(),
    '',
    '| slide | patches | EZ-WSI fresh (s) | pathembed fresh (s) | ratio fresh | EZ-WSI warm (s) | pathembed warm (s) | ratio warm | EZ-WSI process (s) | pathembed process (s) | identical patches |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
  ];
  const slides =
    user.length > 0
      ? user.map((u) => ({ name: u.name, source: async () => u.path }))
      : EZWSI_SLIDES.map((f) => ({ name: f.recipe.name, source: () => ensureFixture(f.recipe) }));
  for (const slide of slides) {
    const prepared = path.join(REPO_ROOT, '.cache', 'bench-ezwsi', slide.name);
    fs.rmSync(prepared, { recursive: true, force: true });
    // The layout EZ-WSI reads (bench/ezwsi_read.py prepare); a slide it cannot read gets a line saying why.
    const preparing = spawnSync(python, [script, 'prepare', await slide.source(), prepared], {
      encoding: 'utf8',
    });
    if (preparing.status !== 0) {
      lines.push(`| ${slide.name} | EZ-WSI cannot read it: ${preparing.stderr.trim().split('\n').pop()} |`);
      continue;
    }
    const layout = JSON.parse(preparing.stdout.trim().split('\n').pop() ?? '{}') as {
      transferSyntax: string;
      tileWidth: number;
    };
    // The copies keep the slide's UIDs: replace any original this Orthanc already stores.
    for (const id of await uploadFolder(orthancUrl, prepared)) {
      await fetch(`${orthancUrl}/instances/${id}`, { method: 'DELETE' });
    }
    const seriesUrl = await uploadSlide(orthancUrl, dicomWebUrl, prepared);
    const { region, whole: wholeLevel } = await comparisonRegion(config, seriesUrl, maxPatches);
    const grid = ['224', '224', String(ROUNDS_PER_PROCESS), ...(wholeLevel ? [] : [regionArg(region)])];
    // Warm Orthanc's caches for this series before either reader is timed.
    runChild(process.execPath, [child, seriesUrl, ...grid], env);
    const pe: ReturnType<typeof runChild>[] = [];
    const ez: ReturnType<typeof runChild>[] = [];
    for (let r = 0; r < runs; r++) {
      pe.push(runChild(process.execPath, [child, seriesUrl, ...grid], env));
      ez.push(
        runChild(
          python,
          [
            '-W',
            'ignore',
            script,
            'read',
            '--series',
            seriesUrl,
            '--transfer-syntax',
            layout.transferSyntax,
            '--patch',
            '224',
            '--stride',
            '224',
            '--rounds',
            String(ROUNDS_PER_PROCESS),
            ...(wholeLevel ? [] : ['--region', regionArg(region)]),
          ],
          env,
        ),
      );
      process.stderr.write(
        `${slide.name} process ${r + 1}: EZ-WSI ${ez[r].seconds.map((x) => fmt(x, 2)).join(' ')} s, pathembed ${pe[r].seconds.map((x) => fmt(x, 2)).join(' ')} s\n`,
      );
    }
    const fresh = (list: GridRun[]) => median(list.map((x) => x.seconds[0]));
    const warm = (list: GridRun[]) => median(list.flatMap((x) => x.seconds.slice(1)));
    const whole = (list: { processSeconds: number }[]) => median(list.map((x) => x.processSeconds));
    let identical = 0;
    let compared = 0;
    for (let r = 0; r < runs; r++) {
      compared += pe[r].sha256.length;
      identical += pe[r].sha256.filter((h, i) => h === ez[r].sha256[i]).length;
      if (pe[r].sha256.length !== ez[r].sha256.length) identical = Number.NaN;
    }
    lines.push(
      `| ${slide.name} (${layout.tileWidth} px ${transferSyntaxName(layout.transferSyntax) ?? layout.transferSyntax} tiles${wholeLevel ? '' : `, window ${regionArg(region)}`}) | ${pe[0].patches} | ${fmt(fresh(ez), 3)} | ${fmt(fresh(pe), 3)} | **${fmt(fresh(ez) / fresh(pe), 2)}** | ` +
        `${fmt(warm(ez), 3)} | ${fmt(warm(pe), 3)} | **${fmt(warm(ez) / warm(pe), 2)}** | ${fmt(whole(ez), 2)} | ${fmt(whole(pe), 2)} | ${identical} of ${compared} |`,
    );
  }
  lines.push('', `1-minute load average ${os.loadavg()[0].toFixed(2)} at the end.`);
  return lines;
}

interface FeedRow {
  fixture: string;
  /** Who decodes: the native JPEG decoder (reading thread and workers), or the WASM workers. */
  decoder: string;
  threads: number;
  /** The model input the batch is written into: uint8 (the GPU builds) or float32 (the fp32 build). */
  input: ModelInputType;
  patches: number;
  patchesPerSecond: number;
  cpuMsPerPatch: number;
}

/**
 * `--feed`: patches/s one process feeds a no-op model (module doc). JPEG with the native decoder
 * (pathembed's default: the reading thread and its workers share the frames) per worker count from
 * 1 to the cores, then with the WASM decoder alike; JPEG 2000 per WASM worker count.
 */
async function feedMain(config: Config, slides: readonly BenchSlide[], maxPatches: number): Promise<void> {
  const cores = os.availableParallelism();
  const batchSize = config.PATHEMBED_BATCH_SIZE;
  const rows: FeedRow[] = [];
  const described: string[] = [];
  const loadStart = os.loadavg()[0];
  for (const { name, stage } of slides) {
    const seriesUrl = await stage();
    const source = seriesSource(config, seriesUrl);
    const slide = await openSlide(source);
    const level = slide.level(0);
    const rects = levelGrid(level, PATCH_SIZE_PX, maxPatches);
    const facts = await slideFacts(source, level);
    described.push(`${name}: ${describeSlide(facts)}, ${rects.length} patches a pass`);
    const jpeg = JPEG_TRANSFER_SYNTAXES.includes(facts.transferSyntaxUid);
    const inputs = {
      uint8: new Uint8Array(batchSize * PATCH_BYTES),
      float32: new Float32Array(batchSize * PATCH_BYTES),
    };
    const setups: {
      decoder: string;
      threads: number;
      jpegDecoder: JpegDecoderChoice;
      input: ModelInputType;
    }[] = [];
    if (jpeg) {
      // The native decoder runs on the reading thread and, once ready, in the workers as well.
      for (let threads = 1; threads <= cores; threads++) {
        setups.push({
          decoder: `libjpeg-turbo native, reading thread + ${threads} worker${threads > 1 ? 's' : ''}`,
          threads,
          jpegDecoder: 'native',
          input: 'uint8',
        });
      }
      // The fp32 build's input: the float conversion on the CPU, for a GPU that runs that build.
      setups.push({ ...setups[setups.length - 1]!, input: 'float32' });
    }
    const workers = jpeg ? 'libjpeg-turbo WASM' : codecLabel(facts.transferSyntaxUid);
    for (let threads = 1; threads <= cores; threads++) {
      setups.push({
        decoder: `${workers}, ${threads} worker${threads > 1 ? 's' : ''}`,
        threads,
        jpegDecoder: 'wasm',
        input: 'uint8',
      });
    }
    for (const { decoder: decoderName, threads, jpegDecoder, input } of setups) {
      // As the queue worker builds it: frames handed back are decoded into again.
      const decoder = new FrameDecoder({
        decodeThreads: threads,
        jpegDecoder,
        reuseBytes: config.PATHEMBED_FRAME_CACHE_BYTES,
      });
      decoder.warmUp();
      await decoder.ready();
      const pass = async () => {
        // A cold cache each pass: every frame is fetched and decoded again.
        const cache = new FrameCache(source, decoder, { maxBytes: config.PATHEMBED_FRAME_CACHE_BYTES });
        const reader = new PatchReader(cache, { levelTolerance: config.PATHEMBED_LEVEL_TOLERANCE });
        // As a job does: each frame goes back to the decoder after the last patch that reads it.
        reader.expectPatches({ level, scale: 1 }, rects);
        const prefetch = reader.prefetchPatches({ level, scale: 1 }, rects);
        for (let i = 0; i < rects.length; i += batchSize) {
          const patches = await Promise.all(
            rects.slice(i, i + batchSize).map((r) => reader.readRegion(level, r.x, r.y, r.width, r.height)),
          );
          writeBatchInput(
            inputs[input],
            patches.map((p) => p.data),
          );
        }
        await prefetch;
        // As a job's reader closes.
        cache.clear();
      };
      await pass(); // warm-up: workers started, code compiled
      const passes =
        FEED_PASSES[name] ?? Math.max(FEED_MIN_PASSES, Math.ceil(FEED_MIN_PATCHES / rects.length));
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      for (let p = 0; p < passes; p++) await pass();
      const seconds = (performance.now() - t0) / 1000;
      const cpu = process.cpuUsage(cpu0);
      const patches = rects.length * passes;
      rows.push({
        fixture: name,
        decoder: decoderName,
        threads,
        input,
        patches,
        patchesPerSecond: patches / seconds,
        cpuMsPerPatch: (cpu.user + cpu.system) / 1000 / patches,
      });
      process.stderr.write(`${name} ${decoderName}, ${input} input: ${fmt(patches / seconds)} patches/s\n`);
      await decoder.close();
    }
    await slide.close();
  }
  const machine = `${cores} cores, ${cpuModel()}, Node ${process.version}`;
  const lines = [
    `Machine: ${machine}; level 0 of each slide (${described.join('; ')}), 224 px patches at stride 224 (${rows
      .map((r) => `${r.fixture}: ${r.patches}`)
      .filter((v, i, a) => a.indexOf(v) === i)
      .join(', ')} patches a row, over several cold passes), ` +
      `${batchSize} patches a batch, cold frame cache each pass, Orthanc on the same cores; ` +
      `GLIBC_TUNABLES=${process.env.GLIBC_TUNABLES || '(none)'}; ` +
      `1-minute load average ${loadStart.toFixed(2)} at the start, ${os.loadavg()[0].toFixed(2)} at the end.`,
    '',
    pageFaultLine(),
    '',
    '| slide | decoder | model input | patches/s | CPU ms per patch (all threads) | patches per CPU-second |',
    '| --- | --- | --- | ---: | ---: | ---: |',
    ...rows.map(
      (r) =>
        `| ${r.fixture} | ${r.decoder} | ${r.input === 'uint8' ? 'uint8 (GPU builds)' : 'float32 (fp32 build)'} | ${fmt(r.patchesPerSecond)} | ${fmt(r.cpuMsPerPatch, 2)} | ${fmt(1000 / r.cpuMsPerPatch)} |`,
    ),
  ];
  process.stdout.write(`${lines.join('\n')}\n\n${JSON.stringify({ machine, rows })}\n`);
}

/** Patches of one /v1/predict instance in `--predict`: Path Foundation's clients send up to about 100. */
const PREDICT_PATCHES = [16, 100];

/**
 * `--predict`: a /v1/predict instance's patches, scattered over level 0, read one by one (as the
 * worker did before) and as one list (`readPatchList`: frames announced and fetched ahead), each
 * run with a new reader and a cold cache; the same patches both ways, the bytes compared.
 */
async function predictMain(config: Config, slides: readonly BenchSlide[], runs: number): Promise<void> {
  const decoder = new FrameDecoder(frameDecoderOptions(config));
  decoder.warmUp();
  await decoder.ready();
  const lines = [
    `Machine: ${os.cpus().length} cores, ${cpuModel()}, Node ${process.version}; 224 px patches at pseudo-random places on level 0 ` +
      `(a fixed sequence), a new reader and cold cache each run, median of ${runs} runs; ${config.PATHEMBED_FRAMES_PER_REQUEST} frames per request.`,
    '',
    '| slide | patches | one by one (ms) | requests | as a list (ms) | requests | speed-up | same bytes |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
  ];
  try {
    for (const { name, stage } of slides) {
      const seriesUrl = await stage();
      for (const count of PREDICT_PATCHES) {
        const timings: Record<'one' | 'list', { ms: number[]; requests: number; data: Uint8Array[] }> = {
          one: { ms: [], requests: 0, data: [] },
          list: { ms: [], requests: 0, data: [] },
        };
        for (let r = 0; r < runs; r++) {
          for (const mode of ['one', 'list'] as const) {
            const source = seriesSource(config, seriesUrl);
            const slide = await openSlide(source);
            const level = slide.level(0);
            const patches = Array.from({ length: count }, (_, i) => ({
              x: (i * 613) % Math.max(1, level.widthPx - PATCH_SIZE_PX),
              y: (i * 1237) % Math.max(1, level.heightPx - PATCH_SIZE_PX),
              width: PATCH_SIZE_PX,
              height: PATCH_SIZE_PX,
            }));
            const cache = new FrameCache(source, decoder, { maxBytes: config.PATHEMBED_FRAME_CACHE_BYTES });
            const reader = new PatchReader(cache, { levelTolerance: config.PATHEMBED_LEVEL_TOLERANCE });
            const requests = source.stats.requests;
            const t0 = performance.now();
            let data: Uint8Array[] = [];
            if (mode === 'one') {
              for (const p of patches)
                data.push((await reader.readRegion(level, p.x, p.y, p.width, p.height)).data);
            } else {
              data = await readPatchList(reader, level, patches);
            }
            timings[mode].ms.push(performance.now() - t0);
            timings[mode].requests = source.stats.requests - requests;
            timings[mode].data = data;
            cache.clear();
            await slide.close();
          }
        }
        const same = timings.one.data.every((d, i) => Buffer.compare(d, timings.list.data[i]!) === 0);
        const one = median(timings.one.ms);
        const list = median(timings.list.ms);
        lines.push(
          `| ${name} | ${count} | ${fmt(one)} | ${timings.one.requests} | ${fmt(list)} | ${timings.list.requests} | **${fmt(one / list, 2)}x** | ${same ? 'yes' : 'NO'} |`,
        );
        process.stderr.write(
          `${name} ${count} patches: one by one ${fmt(one)} ms, as a list ${fmt(list)} ms\n`,
        );
      }
    }
  } finally {
    await decoder.close();
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const runsArg = args.indexOf('--runs');
  const runs = runsArg >= 0 ? Number(args[runsArg + 1]) : DEFAULT_RUNS;
  const user = userSlides(args);
  const maxPatches = maxPatchesArg(args);
  const fixtureNames = args.includes('--no-j2k') ? ['cmu-jpeg'] : ['cmu-jpeg', 'cmu-jpeg2000'];
  const config = loadConfig();
  let decoderLines: string[] = [];
  // The decoders side by side measure the fixtures' frames: not run for the user's own slides.
  if (!args.includes('--feed') && !args.includes('--only-ezwsi') && user.length === 0) {
    decoderLines = await jpegDecoderTable([
      await framesOfLevel0(
        '240 px (cmu-jpeg)',
        await ensureFixture(FIXTURES.find((f) => f.name === 'cmu-jpeg')!),
      ),
      await framesOfLevel0('256 px (cmu-jpeg-256)', await ensureFixture(EZWSI_SLIDES[1].recipe)),
      await frames512(CMU_SVS),
    ]);
    if (args.includes('--decoders')) {
      process.stdout.write(`${decoderLines.join('\n')}\n`);
      return;
    }
  }
  const orthanc = await startOrthanc();
  const decodeThreads = decodeThreadCount(config.PATHEMBED_DECODE_THREADS);
  const slides: BenchSlide[] =
    user.length > 0
      ? user.map((u) => ({
          name: u.name,
          stage: () => uploadSlide(orthanc.url, orthanc.dicomWebUrl, u.path),
        }))
      : fixtureNames.map((name) => ({
          name,
          stage: async () =>
            uploadSlide(
              orthanc.url,
              orthanc.dicomWebUrl,
              await ensureFixture(FIXTURES.find((f) => f.name === name)!),
            ),
        }));
  if (args.includes('--feed')) {
    await feedMain(config, slides, maxPatches).finally(() => orthanc.stop());
    return;
  }
  if (args.includes('--predict')) {
    await predictMain(config, slides, runs).finally(() => orthanc.stop());
    return;
  }
  const decoder = new FrameDecoder(frameDecoderOptions(config));
  const rows: Row[] = [];
  const described: string[] = [];
  let ezwsiLines: string[] = [];
  try {
    for (const { name, stage } of args.includes('--only-ezwsi') ? [] : slides) {
      const seriesUrl = await stage();
      described.push(`${name}: ${await describeSeries(config, seriesUrl)}`);
      // Warm Orthanc (its file cache and DICOMweb plugin) so the first measured mode is not penalised.
      await readGrid('pathembed', seriesUrl, PATCH_SIZE_PX, config, decoder, maxPatches);
      for (const stridePx of STRIDES_PX) {
        const results: Record<Row['mode'], RunResult[]> = { pathembed: [], baseline: [] };
        for (let r = 0; r < runs; r++) {
          for (const mode of ['pathembed', 'baseline'] as const) {
            results[mode].push(await readGrid(mode, seriesUrl, stridePx, config, decoder, maxPatches));
          }
        }
        for (const mode of ['pathembed', 'baseline'] as const) {
          const list = results[mode];
          const patches = list[0].patches;
          rows.push({
            fixture: name,
            stridePx,
            mode,
            patches,
            patchesPerSecond: median(list.map((x) => x.patches / x.seconds)),
            requestsPer1000: (median(list.map((x) => x.requests)) / patches) * 1000,
            framesPer1000: (median(list.map((x) => x.frames)) / patches) * 1000,
            hitRatio: list[0].hitRatio,
          });
          process.stderr.write(
            `${name} stride ${stridePx} ${mode}: ${fmt(rows[rows.length - 1].patchesPerSecond)} patches/s\n`,
          );
        }
      }
    }
    if (!args.includes('--no-ezwsi'))
      ezwsiLines = await ezwsiComparison(config, orthanc.url, orthanc.dicomWebUrl, runs, user, maxPatches);
  } finally {
    await decoder.close();
    await orthanc.stop();
  }

  const machine = `${os.cpus().length} cores, ${cpuModel()}, Node ${process.version}, ${os.platform()} ${os.release()}`;
  const lines = [
    `Machine: ${machine}. Orthanc ${'(private, loopback)'}; level 0 of each slide (${described.join('; ')}; at most ${maxPatches} patches a grid, centred); ` +
      `${config.PATHEMBED_BATCH_SIZE} patches in flight, ${config.PATHEMBED_FRAMES_PER_REQUEST} frames per request, ` +
      `${config.PATHEMBED_STORE_CONCURRENCY} concurrent requests, ${decodeThreads} decode threads; median of ${runs} runs; ` +
      `1-minute load average ${os.loadavg()[0].toFixed(2)} at the end.`,
    '',
    '| slide | stride | reader | patches | patches/s | HTTP requests / 1000 patches | frames / 1000 patches | cache hit ratio |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map(
      (r) =>
        `| ${r.fixture} | ${r.stridePx} | ${r.mode} | ${r.patches} | ${fmt(r.patchesPerSecond)} | ${fmt(r.requestsPer1000, 0)} | ${fmt(r.framesPer1000, 0)} | ${r.hitRatio === null ? '-' : fmt(r.hitRatio, 3)} |`,
    ),
    '',
    '| slide | stride | speed-up (patches/s) | fewer requests | fewer frames fetched |',
    '| --- | --- | --- | --- | --- |',
  ];
  for (const name of [...new Set(rows.map((r) => r.fixture))]) {
    for (const stridePx of STRIDES_PX) {
      const a = rows.find((r) => r.fixture === name && r.stridePx === stridePx && r.mode === 'pathembed')!;
      const b = rows.find((r) => r.fixture === name && r.stridePx === stridePx && r.mode === 'baseline')!;
      lines.push(
        `| ${name} | ${stridePx} | ${fmt(a.patchesPerSecond / b.patchesPerSecond, 2)}x | ${fmt(b.requestsPer1000 / a.requestsPer1000, 1)}x | ${fmt(b.framesPer1000 / a.framesPer1000, 1)}x |`,
      );
    }
  }
  if (decoderLines.length > 0) process.stdout.write(`${decoderLines.join('\n')}\n\n`);
  // --only-ezwsi reads no grid against the baseline: no empty tables.
  if (rows.length > 0) process.stdout.write(`${lines.join('\n')}\n`);
  if (ezwsiLines.length > 0) process.stdout.write(`\n${ezwsiLines.join('\n')}\n`);
  process.stdout.write(`\n${JSON.stringify({ machine, runs, rows })}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(
    `bench:wsi failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exitCode = 1;
});
