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
 *   npm run bench:wsi [-- --runs 5] [-- --no-j2k]
 */
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import { ensureFixture, FIXTURES } from '../scripts/dev-services/fixtures.js';
import { startOrthanc, uploadFolder } from '../scripts/dev-services/orthanc.js';
import type { RgbFrame } from '../src/codecs/index.js';
import { FrameDecoder } from '../src/codecs/index.js';
import { type Config, loadConfig } from '../src/config.js';
import { DicomWebClient, StoreLimiters } from '../src/dicomweb/index.js';
import { retryPolicy } from '../src/domain-options.js';
import { PATCH_SIZE_PX } from '../src/embed/model-contract.js';
import { DicomWebFrameSource } from '../src/wsi/dicomweb-frame-source.js';
import { FrameCache, type FrameProvider } from '../src/wsi/frame-cache.js';
import type { FrameSource } from '../src/wsi/frame-source.js';
import { PatchReader } from '../src/wsi/patch-reader.js';
import type { RectPx } from '../src/wsi/region.js';
import { openSlide } from '../src/wsi/slide.js';
import type { SlideLevel, TileFrame } from '../src/wsi/slide-level.js';

const DEFAULT_RUNS = 3;
const STRIDES_PX = [PATCH_SIZE_PX, PATCH_SIZE_PX / 2];

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

function gridRects(level: SlideLevel, stridePx: number): RectPx[] {
  const rects: RectPx[] = [];
  for (let y = 0; y + PATCH_SIZE_PX <= level.heightPx; y += stridePx)
    for (let x = 0; x + PATCH_SIZE_PX <= level.widthPx; x += stridePx)
      rects.push({ x: x, y: y, width: PATCH_SIZE_PX, height: PATCH_SIZE_PX });
  return rects;
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
): Promise<RunResult> {
  // A fresh limiter registry per run, so no run waits on another's queue.
  const limiters = new StoreLimiters(config.PATHEMBED_STORE_CONCURRENCY);
  const framesPerRequest = mode === 'pathembed' ? config.PATHEMBED_FRAMES_PER_REQUEST : 1;
  const source = new DicomWebFrameSource(client(config, framesPerRequest, limiters), seriesUrl);
  const slide = await openSlide(source);
  const level = slide.level(0);
  const rects = gridRects(level, stridePx);
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

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const runsArg = args.indexOf('--runs');
  const runs = runsArg >= 0 ? Number(args[runsArg + 1]) : DEFAULT_RUNS;
  const fixtures = args.includes('--no-j2k') ? ['cmu-jpeg'] : ['cmu-jpeg', 'cmu-jpeg2000'];
  const config = loadConfig();
  const orthanc = await startOrthanc();
  const decoder = new FrameDecoder({ decodeThreads: config.PATHEMBED_DECODE_THREADS });
  const rows: Row[] = [];
  try {
    for (const name of fixtures) {
      const recipe = FIXTURES.find((f) => f.name === name);
      if (!recipe) throw new Error(`No fixture ${name}`);
      const ids = await uploadFolder(orthanc.url, await ensureFixture(recipe));
      const tags = (await (
        await fetch(`${orthanc.url}/instances/${ids[0]}/simplified-tags`)
      ).json()) as Record<string, string>;
      const seriesUrl = `${orthanc.dicomWebUrl}/studies/${tags.StudyInstanceUID}/series/${tags.SeriesInstanceUID}`;
      // Warm Orthanc (its file cache and DICOMweb plugin) so the first measured mode is not penalised.
      await readGrid('pathembed', seriesUrl, PATCH_SIZE_PX, config, decoder);
      for (const stridePx of STRIDES_PX) {
        const results: Record<Row['mode'], RunResult[]> = { pathembed: [], baseline: [] };
        for (let r = 0; r < runs; r++) {
          for (const mode of ['pathembed', 'baseline'] as const) {
            results[mode].push(await readGrid(mode, seriesUrl, stridePx, config, decoder));
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
  } finally {
    await decoder.close();
    await orthanc.stop();
  }

  const machine = `${os.cpus().length} cores, ${cpuModel()}, Node ${process.version}, ${os.platform()} ${os.release()}`;
  const lines = [
    `Machine: ${machine}. Orthanc ${'(private, loopback)'}; level 0 of each slide (2220 x 2967 px, 240 px JPEG / JPEG 2000 tiles); ` +
      `${config.PATHEMBED_BATCH_SIZE} patches in flight, ${config.PATHEMBED_FRAMES_PER_REQUEST} frames per request, ` +
      `${config.PATHEMBED_STORE_CONCURRENCY} concurrent requests, ${config.PATHEMBED_DECODE_THREADS} decode threads; median of ${runs} runs.`,
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
  for (const name of fixtures) {
    for (const stridePx of STRIDES_PX) {
      const a = rows.find((r) => r.fixture === name && r.stridePx === stridePx && r.mode === 'pathembed')!;
      const b = rows.find((r) => r.fixture === name && r.stridePx === stridePx && r.mode === 'baseline')!;
      lines.push(
        `| ${name} | ${stridePx} | ${fmt(a.patchesPerSecond / b.patchesPerSecond, 2)}x | ${fmt(b.requestsPer1000 / a.requestsPer1000, 1)}x | ${fmt(b.framesPer1000 / a.framesPer1000, 1)}x |`,
      );
    }
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  process.stdout.write(`\n${JSON.stringify({ machine, runs, rows })}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(
    `bench:wsi failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exitCode = 1;
});
