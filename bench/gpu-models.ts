/**
 * The GPU machine check's measurements (bench/gpu-check.sh runs it there; it runs on the CPU too):
 *
 * 1. The model alone: each build (fp32, fp16, uint8-fp16) at batch 1, 32, 128, 256 and 512 on the
 *    configured provider: patches/s (median of timed runs after a warm-up) and the GPU memory the
 *    process holds (nvidia-smi), plus each build's agreement with fp32 on the same patches.
 * 2. End to end: a synthetic H&E slide in a local folder embedded by the real pipeline (frame
 *    reads, JPEG decoding, resampling, inference thread): patches/s and the share of the wall time
 *    the device was not running a batch (the GPU waiting for patches).
 *
 *   npx tsx bench/gpu-models.ts --out results.json [--batches 1,32] [--variants fp32,fp16]
 *        [--slide-px 16384x12288] [--min-seconds 3]
 *
 * Configuration (provider, device, threads) comes from the environment as for a worker.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs, promisify } from 'node:util';
import { variantModelPath, writeSyntheticModel } from '../models/build-vit.js';
import { type Agreement, agreement } from '../models/variant-agreement.js';
import { type Config, loadConfig } from '../src/config.js';
import { engineOptions, pipelineDeps } from '../src/domain-options.js';
import {
  EmbeddingEngine,
  type ModelVariant,
  PATCH_BYTES,
  WorkerEmbeddingEngine,
} from '../src/embed/index.js';
import { createLogger } from '../src/log.js';
import { runEmbeddingJob } from '../src/pipeline/index.js';
import { writeSampleSlide } from '../src/sample/sample-slide.js';

const run = promisify(execFile);
const DEFAULT_BATCHES = [1, 32, 128, 256, 512];
const DEFAULT_VARIANTS: ModelVariant[] = ['fp32', 'fp16', 'uint8-fp16'];
const DEFAULT_MIN_SECONDS = 3;
const MIN_RUNS = 3;
const MS_PER_S = 1000;
/** Patches the builds are compared on: distinct noise-over-gradient patches. */
const AGREEMENT_PATCHES = 32;
const DEFAULT_SLIDE = { widthPx: 16_384, heightPx: 12_288 };
const E2E_BATCH = 256;

interface BatchResult {
  batchSize: number;
  runs: number;
  medianBatchMs: number;
  patchesPerSecond: number;
  gpuMemoryMiB?: number;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Patches with structure (gradient) and texture (seeded noise), different for every index. */
function testPatches(count: number, seed = 1): Uint8Array[] {
  let state = seed >>> 0;
  return Array.from({ length: count }, (_, p) => {
    const patch = new Uint8Array(PATCH_BYTES);
    for (let i = 0; i < PATCH_BYTES; i++) {
      state = (Math.imul(state, 1_664_525) + 1_013_904_223) >>> 0;
      const pixel = Math.floor(i / 3);
      patch[i] = ((pixel % 224) * (p + 1) + (state >>> 26)) & 0xff;
    }
    return patch;
  });
}

/** GPU memory this process holds, from nvidia-smi; undefined without one. */
async function gpuMemoryMiB(): Promise<number | undefined> {
  try {
    const { stdout } = await run('nvidia-smi', [
      '--query-compute-apps=pid,used_memory',
      '--format=csv,noheader,nounits',
    ]);
    const mine = stdout
      .split('\n')
      .map((l) => l.split(',').map((f) => f.trim()))
      .filter(([pid]) => Number(pid) === process.pid);
    // Some containers hide pids: then the whole device's use is the best figure there is.
    if (mine.length > 0) return mine.reduce((s, [, mib]) => s + Number(mib), 0);
    const { stdout: total } = await run('nvidia-smi', [
      '--query-gpu=memory.used',
      '--format=csv,noheader,nounits',
    ]);
    return Number(total.trim().split('\n')[0]);
  } catch {
    return undefined;
  }
}

async function ensureVariant(config: Config, variant: ModelVariant): Promise<string> {
  const modelPath = variantModelPath(config.projectRoot, variant);
  if (!existsSync(modelPath)) await writeSyntheticModel(modelPath, { variant });
  return modelPath;
}

async function measureVariant(
  config: Config,
  variant: ModelVariant,
  batches: number[],
  minSeconds: number,
): Promise<{ provider: string; results: BatchResult[]; embeddings: Float32Array[] }> {
  const logger = createLogger('warn');
  const modelPath = await ensureVariant(config, variant);
  const engine = await EmbeddingEngine.open(
    { ...engineOptions(config), modelPath, batchSize: Math.max(...batches) },
    logger,
  );
  try {
    const embeddings = await engine.embed(testPatches(AGREEMENT_PATCHES));
    const results: BatchResult[] = [];
    for (const batchSize of batches) {
      const patches = testPatches(batchSize, batchSize);
      await engine.embed(patches); // warm-up: ORT sizes its arena and picks kernels per shape
      const times: number[] = [];
      const started = performance.now();
      while (times.length < MIN_RUNS || performance.now() - started < minSeconds * MS_PER_S) {
        const t0 = performance.now();
        await engine.embed(patches);
        times.push(performance.now() - t0);
      }
      const medianBatchMs = median(times);
      const r: BatchResult = {
        batchSize,
        runs: times.length,
        medianBatchMs,
        patchesPerSecond: (batchSize * MS_PER_S) / medianBatchMs,
        gpuMemoryMiB: await gpuMemoryMiB(),
      };
      process.stderr.write(
        `${variant} batch ${batchSize}: ${r.patchesPerSecond.toFixed(1)} patches/s, GPU memory ${r.gpuMemoryMiB ?? '-'} MiB\n`,
      );
      results.push(r);
    }
    return { provider: engine.provider, results, embeddings };
  } finally {
    await engine.close();
  }
}

interface EndToEnd {
  slide: { widthPx: number; heightPx: number };
  variant: ModelVariant;
  batchSize: number;
  patches: number;
  wallSeconds: number;
  patchesPerSecond: number;
  deviceBusySeconds: number;
  /** 1 - device busy / wall: the share of the run the device had no batch to work on. */
  gpuWaitShare: number;
  cores: number;
  decodeThreads: number;
}

async function endToEnd(
  config: Config,
  variant: ModelVariant,
  slide: { widthPx: number; heightPx: number },
): Promise<EndToEnd> {
  const logger = createLogger('warn');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pathembed-gpu-e2e-'));
  try {
    const slideDir = path.join(dir, 'slide');
    await mkdir(slideDir);
    await writeSampleSlide(slideDir, { ...slide, seed: 'pathembed-gpu-check' });
    const modelPath = await ensureVariant(config, variant);
    const jobConfig: Config = { ...config, PATHEMBED_MODEL_PATH: modelPath, PATHEMBED_BATCH_SIZE: E2E_BATCH };
    const engine = await WorkerEmbeddingEngine.open(engineOptions(jobConfig), 'warn');
    let busy = 0;
    engine.observeBatches((seconds) => {
      for (const s of seconds) busy += s;
    });
    try {
      await engine.embed(testPatches(1)); // model warm-up outside the timed run
      busy = 0;
      const started = performance.now();
      const outcome = await runEmbeddingJob(
        { kind: 'local', folder: slideDir },
        {},
        { jsonPath: path.join(dir, 'result.json') },
        pipelineDeps(jobConfig, logger, engine),
      );
      const wallSeconds = (performance.now() - started) / MS_PER_S;
      const patches = outcome.summary.patchCount;
      return {
        slide,
        variant,
        batchSize: E2E_BATCH,
        patches,
        wallSeconds,
        patchesPerSecond: patches / wallSeconds,
        deviceBusySeconds: busy,
        gpuWaitShare: Math.max(0, 1 - busy / wallSeconds),
        cores: os.availableParallelism(),
        decodeThreads: config.PATHEMBED_DECODE_THREADS,
      };
    } finally {
      await engine.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      out: { type: 'string' },
      batches: { type: 'string' },
      variants: { type: 'string' },
      'slide-px': { type: 'string' },
      'min-seconds': { type: 'string' },
      'skip-e2e': { type: 'boolean', default: false },
    },
  });
  const config = loadConfig();
  const batches = values.batches ? values.batches.split(',').map(Number) : DEFAULT_BATCHES;
  const variants = (values.variants ? values.variants.split(',') : DEFAULT_VARIANTS) as ModelVariant[];
  const minSeconds = Number(values['min-seconds'] ?? DEFAULT_MIN_SECONDS);
  const [w, h] = (values['slide-px'] ?? `${DEFAULT_SLIDE.widthPx}x${DEFAULT_SLIDE.heightPx}`)
    .split('x')
    .map(Number);

  const report: Record<string, unknown> = {
    executionProvider: config.PATHEMBED_EXECUTION_PROVIDER,
    deviceId: config.PATHEMBED_DEVICE_ID,
    cores: os.availableParallelism(),
    node: process.version,
    models: {} as Record<string, unknown>,
  };
  const write = async () => {
    if (values.out) await writeFile(values.out, `${JSON.stringify(report, null, 2)}\n`);
  };
  let reference: Float32Array[] | undefined;
  for (const variant of variants) {
    const m = await measureVariant(config, variant, batches, minSeconds);
    reference ??= m.embeddings;
    const versusFirst: Agreement = agreement(reference, m.embeddings);
    (report.models as Record<string, unknown>)[variant] = {
      provider: m.provider,
      batches: m.results,
      [`agreementWith_${variants[0]}`]: versusFirst,
    };
    await write(); // partial figures survive a later failure
  }
  if (!values['skip-e2e']) {
    const variant = variants.includes('uint8-fp16') ? 'uint8-fp16' : variants[0];
    report.endToEnd = await endToEnd(config, variant, { widthPx: w, heightPx: h });
    process.stderr.write(`end to end: ${JSON.stringify(report.endToEnd)}\n`);
  }
  await write();
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
}

await main();
