/**
 * Output formats benchmark (`npm run bench:outputs`): result bytes per patch, write time and peak
 * memory of each format pathembed writes.
 *
 * - **Synthetic**: 10,000 and 100,000 patches of pseudo-random 384-float embeddings through each
 *   writer (JSON as number arrays and as base64, HDF5, Parquet), each run in its own child process
 *   so its peak resident memory (getrusage maxrss) is its own. Peak memory must not grow with N:
 *   the run fails when the 100,000-patch peak exceeds the 10,000-patch peak by more than
 *   MAX_PEAK_GROWTH_MB (the writers hold a bounded block, never the patches).
 * - **Real job**: the sample slide (the demo's H&E-like synthetic slide) embedded in one process
 *   into every format, SR included (whose size only a real job gives: it carries the source's
 *   patient, study and specimen modules and per-patch regions up to PATHEMBED_SR_MAX_PATCHES).
 *
 *   npm run bench:outputs                    # prints the markdown section
 *   npm run bench:outputs -- --write-docs    # also replaces "## Output formats" in docs/benchmarks.md
 */
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { Hdf5ResultWriter } from '../src/results/hdf5-writer.js';
import { ParquetResultWriter } from '../src/results/parquet-writer.js';
import { resultSource } from '../src/results/result-source.js';
import { type ResultHeaderInput, ResultWriter } from '../src/results/result-writer.js';

const run = promisify(execFile);
const DIM = 384;
const SIZES = [10_000, 100_000] as const;
/**
 * Allowed rise of peak RSS from 10,000 to 100,000 patches. The 90,000 more embeddings take 132 MB
 * as float32, so a writer that kept them would exceed this; a bounded one rises only while its
 * buffers and allocators reach their working size (a Parquet row group, GC headroom).
 */
const MAX_PEAK_GROWTH_MB = 80;
const FORMATS = ['json (float32-array)', 'json (float32-base64)', 'hdf5', 'parquet'] as const;
type Format = (typeof FORMATS)[number];
const MB = 1024 * 1024;
const SECTION = '## Output formats';
const SAMPLE_SLIDE = { widthPx: 6144, heightPx: 4096, seed: 'pathembed-bench' } as const;

function header(encoding: 'float32-array' | 'float32-base64'): ResultHeaderInput {
  return {
    jobKey: 'bench',
    source: resultSource(
      { kind: 'dicomweb', baseUrl: 'http://store/dicom-web', studyUid: '1.2.3', seriesUid: '1.2.3.4' },
      { instanceUids: ['1.2.3.4.5'] },
    ),
    model: { name: 'path-foundation', version: '1', sha256: 'a'.repeat(64) },
    parameters: {
      pixelSpacingUm: 0.5,
      stridePx: 224,
      minTissue: 0.5,
      patchSizePx: 224,
      patchSelection: 'tissue-grid',
      requirePatchesInside: false,
      batchSize: 32,
    },
    range: null,
    level: {
      index: 1,
      widthPx: 100_000,
      heightPx: 100_000,
      pixelSpacingUm: { x: 0.5, y: 0.5 },
      scaleFromGrid: 1,
    },
    baseLevel: { widthPx: 200_000, heightPx: 200_000, pixelSpacingUm: { x: 0.25, y: 0.25 } },
    grid: {
      coordinates: 'target-grid',
      description: '',
      pixelSpacingUm: 0.5,
      widthPx: 100_000,
      heightPx: 100_000,
    },
    tissue: { method: 'otsu', spacingUm: 8, fraction: 0.5 },
    embeddingDimension: DIM,
    embeddingEncoding: encoding,
  };
}

/** One child run: N patches through one writer; prints {bytes, ms, peakRssMb}. */
async function child(format: Format, n: number, file: string): Promise<void> {
  const embedding = new Float32Array(DIM);
  let seed = 1;
  const open = async () => {
    if (format === 'hdf5') return Hdf5ResultWriter.open(file, header('float32-array'));
    if (format === 'parquet') return ParquetResultWriter.open(file, header('float32-array'));
    return ResultWriter.create(file, header(format.includes('base64') ? 'float32-base64' : 'float32-array'));
  };
  const t0 = performance.now();
  const writer = await open();
  const columns = 400;
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < DIM; k++) {
      // xorshift: embeddings that do not compress, like real ones.
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      embedding[k] = (seed >>> 0) / 2 ** 32 - 0.5;
    }
    await writer.writePatch({
      index: i,
      x: (i % columns) * 224,
      y: Math.floor(i / columns) * 224,
      width: 224,
      height: 224,
      tissueFraction: 0.75,
      embedding,
    });
  }
  if (writer instanceof ResultWriter) {
    await writer.finish({
      plannedPatchCount: n,
      timings: { planMs: 0, fetchMs: 0, decodeMs: 0, inferMs: 0, totalMs: 1 },
    });
  } else {
    await writer.finish();
  }
  const ms = performance.now() - t0;
  const bytes = (await stat(file)).size;
  // maxRSS is in kilobytes.
  const peakRssMb = (process.resourceUsage().maxRSS * 1024) / MB;
  process.stdout.write(`${JSON.stringify({ bytes, ms, peakRssMb })}\n`);
}

interface Measured {
  readonly bytes: number;
  readonly ms: number;
  readonly peakRssMb: number;
}

async function measure(format: Format, n: number, dir: string): Promise<Measured> {
  const file = path.join(dir, `${format.replace(/\W+/g, '-')}-${n}`);
  const self = fileURLToPath(import.meta.url);
  const { stdout } = await run(
    process.execPath,
    ['--import', 'tsx', self, '--child', format, '--n', String(n), '--file', file],
    { maxBuffer: MB },
  );
  await rm(file, { force: true });
  return JSON.parse(stdout.trim().split('\n').pop()!) as Measured;
}

/** A real job on the sample slide into every format; bytes per patch of each file. */
async function realJob(dir: string): Promise<{ patches: number; bytes: Record<string, number> }> {
  // Imported here, not at the top: the child runs measure the writers, not ONNX Runtime and sharp.
  const { ensureDefaultModel } = await import('../models/default-model.js');
  const { loadConfig } = await import('../src/config.js');
  const { engineOptions, pipelineDeps } = await import('../src/domain-options.js');
  const { WorkerEmbeddingEngine } = await import('../src/embed/index.js');
  const { createLogger } = await import('../src/log.js');
  const { runEmbeddingJob } = await import('../src/pipeline/index.js');
  const { writeSampleSlide } = await import('../src/sample/sample-slide.js');
  const slideDir = path.join(dir, 'slide');
  await writeSampleSlide(slideDir, SAMPLE_SLIDE);
  const config = loadConfig({ LOG_LEVEL: 'silent', PATHEMBED_RESULTS_DIR: dir });
  const logger = createLogger('silent');
  await ensureDefaultModel(engineOptions(config), logger);
  const engine = await WorkerEmbeddingEngine.open(engineOptions(config), 'silent');
  const files = {
    'json (float32-array)': path.join(dir, 'job.json'),
    hdf5: path.join(dir, 'job.h5'),
    parquet: path.join(dir, 'job.parquet'),
    'dicom-sr': path.join(dir, 'job.dcm'),
    'json (float32-base64)': path.join(dir, 'job-b64.json'),
  };
  try {
    const deps = pipelineDeps(config, logger, engine);
    const spec = { kind: 'local', folder: slideDir } as const;
    const outcome = await runEmbeddingJob(
      spec,
      {},
      {
        jsonPath: files['json (float32-array)'],
        hdf5Path: files.hdf5,
        parquetPath: files.parquet,
        srPath: files['dicom-sr'],
      },
      deps,
    );
    await runEmbeddingJob(
      spec,
      {},
      { jsonPath: files['json (float32-base64)'], embeddingEncoding: 'float32-base64' },
      deps,
    );
    const bytes: Record<string, number> = {};
    for (const [k, f] of Object.entries(files)) bytes[k] = (await stat(f)).size;
    return { patches: outcome.summary.patchCount, bytes };
  } finally {
    await engine.close();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      child: { type: 'string' },
      n: { type: 'string' },
      file: { type: 'string' },
      'write-docs': { type: 'boolean', default: false },
    },
  });
  if (values.child) return child(values.child as Format, Number(values.n), values.file!);

  const dir = await mkdtemp(path.join(os.tmpdir(), 'pathembed-bench-outputs-'));
  const failures: string[] = [];
  const lines: string[] = [];
  try {
    const rows: string[] = [];
    for (const format of FORMATS) {
      const [small, large] = [await measure(format, SIZES[0], dir), await measure(format, SIZES[1], dir)];
      const growth = large.peakRssMb - small.peakRssMb;
      if (growth > MAX_PEAK_GROWTH_MB) {
        failures.push(`${format}: peak RSS grew by ${growth.toFixed(0)} MB from 10k to 100k patches`);
      }
      rows.push(
        `| ${format} | ${(large.bytes / SIZES[1]).toFixed(0)} | ${((large.ms / SIZES[1]) * 1000).toFixed(1)} | ${small.peakRssMb.toFixed(0)} | ${large.peakRssMb.toFixed(0)} | ${(large.bytes / MB).toFixed(1)} |`,
      );
      process.stderr.write(`${rows.at(-1)}\n`);
    }
    const job = await realJob(dir);
    lines.push(
      SECTION,
      '',
      `\`npm run bench:outputs\` (bench/outputs.ts), ${new Date().toISOString().slice(0, 10)}, ${os.cpus().length} vCPU, Node ${process.version}.`,
      '',
      'Synthetic patches (pseudo-random float32 embeddings, 384 wide) written through each writer, each run in',
      'its own process; peak RSS is the whole Node process (runtime, tsx and the WebAssembly modules included). Peak',
      `memory must not grow with N: the bench fails if the 100,000-patch peak exceeds the 10,000-patch peak by more than ${MAX_PEAK_GROWTH_MB} MB.`,
      '',
      '| format | bytes/patch | µs/patch (write) | peak RSS 10k patches (MB) | peak RSS 100k patches (MB) | file at 100k (MB) |',
      '|---|---:|---:|---:|---:|---:|',
      ...rows,
      '',
      `A real job: the sample slide (${SAMPLE_SLIDE.widthPx}×${SAMPLE_SLIDE.heightPx} px, the demo's), ${job.patches} patches, every output of \`pathembed embed\`:`,
      '',
      '| output | bytes | bytes/patch |',
      '|---|---:|---:|',
      ...Object.entries(job.bytes).map(([k, b]) => `| ${k} | ${b} | ${(b / job.patches).toFixed(0)} |`),
      '',
      'The SR carries per-patch regions and embeddings only up to PATHEMBED_SR_MAX_PATCHES patches; beyond',
      'that it holds the mean embedding alone, so its size per patch falls towards zero on large slides.',
      'Float32 embeddings do not compress: HDF5 and Parquet stay near the 1,536 bytes of 384 raw floats.',
      '',
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const section = lines.join('\n');
  process.stdout.write(`${section}\n`);
  if (values['write-docs']) {
    const docs = fileURLToPath(new URL('../docs/benchmarks.md', import.meta.url));
    const text = readFileSync(docs, 'utf8');
    const start = text.indexOf(SECTION);
    if (start < 0) writeFileSync(docs, `${text.trimEnd()}\n\n${section}`);
    else {
      const next = text.indexOf('\n## ', start + SECTION.length);
      writeFileSync(docs, `${text.slice(0, start)}${section}${next < 0 ? '' : text.slice(next)}`);
    }
  }
  if (failures.length > 0) {
    process.stderr.write(`bench:outputs: memory grew with N:\n${failures.join('\n')}\n`);
    process.exitCode = 1;
  }
}

await main();
