/**
 * Pipeline benchmark (`npm run bench:pipeline`): how much of the model's speed a whole job keeps.
 *
 * In one run, on the synthetic H&E sample slide served by a private Orthanc over DICOMweb:
 * - **end to end**: `embedPlan` over every tissue patch (frames fetched over HTTP, decoded, cut,
 *   batched, embedded), and `runEmbeddingJob` (planning and the JSON result included);
 * - **model alone**: the same patches, read into memory beforehand, through the same engine in
 *   the same batches;
 * - their ratio (goal on CPU >= 0.9: slide reading hidden behind inference), for the engine in its
 *   worker thread (what the CLI uses) and in the main thread (where ONNX Runtime blocks reading);
 * - peak resident memory of a whole job (a child process each) on the slide and on one ten times
 *   its area, which bounded read-ahead should keep about equal.
 *
 *   npm run bench:pipeline                   # prints the markdown section
 *   npm run bench:pipeline -- --write-docs   # also replaces "## Pipeline" in docs/benchmarks.md
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs, promisify } from 'node:util';
import { ensureDefaultModel } from '../models/default-model.js';
import { startOrthanc, uploadFolder } from '../scripts/dev-services/orthanc.js';
import { type Config, loadConfig } from '../src/config.js';
import { engineOptions, pipelineDeps } from '../src/domain-options.js';
import { EmbeddingEngine, WorkerEmbeddingEngine } from '../src/embed/index.js';
import { createLogger } from '../src/log.js';
import {
  embedPlan,
  openReadingSession,
  type PipelineDeps,
  type PipelineEngine,
  planSlide,
  runEmbeddingJob,
  type SlidePlan,
  type SlideSourceSpec,
} from '../src/pipeline/index.js';
import { writeSampleSlide } from '../src/sample/sample-slide.js';

const run = promisify(execFile);
/** The benchmark slide: the demo's size, about 200 tissue patches at 0.5 um/px. */
const SLIDE = { widthPx: 6144, heightPx: 4096, seed: 'pathembed-bench' } as const;
/** The memory run's large slide has this many times the area. */
const AREA_FACTOR = 10;
const ROUNDS = 3;
/** A frame-cache budget ample for a row-major grid (two tile rows of a 40k px wide slide). */
const SMALL_CACHE_BYTES = 64 * 1024 * 1024;
const SECTION_HEADING = '## Pipeline';
const DOCS_PATH = 'docs/benchmarks.md';
const MS_PER_S = 1000;
const KIB = 1024;
const MEMORY_SAMPLE_MS = 100;

interface Timing {
  patches: number;
  ms: number;
}

const rate = (t: Timing) => (t.patches * MS_PER_S) / t.ms;

/** Other work on the machine can only slow a run down, so the fastest round is the figure. */
function best(values: number[]): number {
  return Math.max(...values);
}

function cpuModel(): string {
  if (!existsSync('/proc/cpuinfo')) return os.cpus()[0]?.model ?? 'unknown';
  const line = readFileSync('/proc/cpuinfo', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('model name'));
  return line?.split(':')[1]?.trim() ?? 'unknown';
}

async function seriesOf(orthancUrl: string, instanceId: string): Promise<{ study: string; series: string }> {
  const tags = (await (
    await fetch(`${orthancUrl}/instances/${instanceId}/simplified-tags`)
  ).json()) as Record<string, string>;
  return { study: tags.StudyInstanceUID, series: tags.SeriesInstanceUID };
}

/** Every planned patch's pixels, read once, for the model-alone runs. */
async function readAllPatches(plan: SlidePlan, deps: PipelineDeps): Promise<Uint8Array[]> {
  const session = await openReadingSession(deps, plan.source, {});
  try {
    const choice = { level: plan.level, scale: plan.downsample };
    return await Promise.all(
      plan.patches.map(async (p) => {
        const rgb = await session.reader.readScaled(choice, {
          x: p.x,
          y: p.y,
          width: p.width,
          height: p.height,
        });
        return rgb.data;
      }),
    );
  } finally {
    await session.close();
  }
}

async function modelAlone(
  engine: PipelineEngine,
  pixels: readonly Uint8Array[],
  batchSize: number,
): Promise<Timing> {
  // Fresh copies: the worker engine takes ownership of (transfers) what it is given.
  const batches: Uint8Array[][] = [];
  for (let i = 0; i < pixels.length; i += batchSize)
    batches.push(pixels.slice(i, i + batchSize).map((p) => p.slice()));
  const t0 = performance.now();
  for (const batch of batches) await engine.embed(batch);
  return { patches: pixels.length, ms: performance.now() - t0 };
}

async function endToEnd(plan: SlidePlan, deps: PipelineDeps): Promise<Timing> {
  const t0 = performance.now();
  let patches = 0;
  for await (const _ of embedPlan(plan, undefined, deps)) patches++;
  return { patches, ms: performance.now() - t0 };
}

async function wholeJob(
  spec: SlideSourceSpec,
  deps: PipelineDeps,
  dir: string,
): Promise<Timing & { fetchMs: number; decodeMs: number; inferMs: number }> {
  const t0 = performance.now();
  const outcome = await runEmbeddingJob(spec, {}, { jsonPath: path.join(dir, 'bench.json') }, deps);
  return {
    patches: outcome.summary.patchCount,
    ms: performance.now() - t0,
    fetchMs: outcome.timings.fetchMs,
    decodeMs: outcome.timings.decodeMs,
    inferMs: outcome.timings.inferMs,
  };
}

interface EngineFigures {
  alone: number;
  endToEnd: number;
  job: number;
  stages: { fetchMs: number; decodeMs: number; inferMs: number; totalMs: number };
}

async function measureEngine(
  engine: PipelineEngine,
  spec: SlideSourceSpec,
  plan: SlidePlan,
  pixels: readonly Uint8Array[],
  config: Config,
  dir: string,
  label: string,
  rounds: number,
): Promise<EngineFigures> {
  const logger = createLogger('warn');
  const deps: PipelineDeps = pipelineDeps(config, logger, engine);
  await engine.embed(pixels.slice(0, config.PATHEMBED_BATCH_SIZE).map((p) => p.slice()));
  const alone: number[] = [];
  const e2e: number[] = [];
  const job: number[] = [];
  let stages = { fetchMs: 0, decodeMs: 0, inferMs: 0, totalMs: 0 };
  // Interleaved rounds, so load from other work on the machine affects every figure alike.
  for (let r = 0; r < rounds; r++) {
    alone.push(rate(await modelAlone(engine, pixels, config.PATHEMBED_BATCH_SIZE)));
    e2e.push(rate(await endToEnd(plan, deps)));
    const j = await wholeJob(spec, deps, dir);
    job.push(rate(j));
    stages = { fetchMs: j.fetchMs, decodeMs: j.decodeMs, inferMs: j.inferMs, totalMs: j.ms };
    process.stderr.write(
      `${label} round ${r + 1}: model alone ${alone.at(-1)!.toFixed(2)}, end to end ${e2e.at(-1)!.toFixed(2)}, whole job ${job.at(-1)!.toFixed(2)} patches/s\n`,
    );
  }
  return { alone: best(alone), endToEnd: best(e2e), job: best(job), stages };
}

/** Child-process mode: one whole job on `series`, reporting peak RSS (the process's own, all threads). */
async function memoryRun(seriesUrl: string): Promise<void> {
  const config = loadConfig();
  const logger = createLogger('warn');
  const engine = await WorkerEmbeddingEngine.open(engineOptions(config), config.LOG_LEVEL);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pathembed-bench-mem-'));
  try {
    const [baseUrl, rest] = seriesUrl.split('/studies/');
    const [study, , series] = rest.split('/');
    const spec: SlideSourceSpec = { kind: 'dicomweb', baseUrl, studyUid: study, seriesUid: series };
    const t0 = performance.now();
    // V8-tracked memory (this thread's heap and buffers) sampled during the job: what the pipeline
    // itself holds, as opposed to native memory (ONNX Runtime, decoder libraries) that RSS adds.
    let trackedPeak = 0;
    const sample = () => {
      const m = process.memoryUsage();
      trackedPeak = Math.max(trackedPeak, m.heapUsed + m.external);
    };
    const sampler = setInterval(sample, MEMORY_SAMPLE_MS);
    let outcome: Awaited<ReturnType<typeof runEmbeddingJob>>;
    try {
      outcome = await runEmbeddingJob(
        spec,
        {},
        { jsonPath: path.join(dir, 'mem.json') },
        pipelineDeps(config, logger, engine),
      );
    } finally {
      clearInterval(sampler);
    }
    sample();
    process.stdout.write(
      `${JSON.stringify({
        patches: outcome.summary.patchCount,
        seconds: (performance.now() - t0) / MS_PER_S,
        maxRssMiB: process.resourceUsage().maxRSS / KIB,
        trackedPeakMiB: trackedPeak / KIB / KIB,
      })}\n`,
    );
  } finally {
    await engine.close();
    await rm(dir, { recursive: true, force: true });
  }
}

interface MemoryFigure {
  label: string;
  cacheMiB: number;
  widthPx: number;
  heightPx: number;
  patches: number;
  seconds: number;
  maxRssMiB: number;
  trackedPeakMiB: number;
}

async function measureMemory(
  seriesUrl: string,
  label: string,
  size: { widthPx: number; heightPx: number },
  cacheBytes: number,
): Promise<MemoryFigure> {
  const script = new URL(import.meta.url).pathname;
  const { stdout } = await run(process.execPath, ['--import', 'tsx', script, '--memory-run', seriesUrl], {
    maxBuffer: 1 << 20,
    env: { ...process.env, PATHEMBED_FRAME_CACHE_BYTES: String(cacheBytes) },
  });
  const r = JSON.parse(stdout.trim().split('\n').at(-1)!) as {
    patches: number;
    seconds: number;
    maxRssMiB: number;
    trackedPeakMiB: number;
  };
  const cacheMiB = cacheBytes / KIB / KIB;
  process.stderr.write(
    `memory ${label}, cache ${cacheMiB} MiB: ${r.patches} patches, peak RSS ${r.maxRssMiB.toFixed(0)} MiB\n`,
  );
  return { label, cacheMiB, ...size, ...r };
}

function renderSection(o: {
  patches: number;
  worker: EngineFigures;
  inProcess: EngineFigures;
  memory: MemoryFigure[];
  config: Config;
  modelName: string;
  load: { start: number; end: number };
}): string {
  const row = (name: string, f: EngineFigures) =>
    `| ${name} | ${f.alone.toFixed(2)} | ${f.endToEnd.toFixed(2)} | **${(f.endToEnd / f.alone).toFixed(2)}** | ${f.job.toFixed(2)} | ${(f.job / f.alone).toFixed(2)} | ${f.stages.fetchMs.toFixed(0)} / ${f.stages.decodeMs.toFixed(0)} / ${f.stages.inferMs.toFixed(0)} / ${f.stages.totalMs.toFixed(0)} |`;
  const mem = o.memory.map(
    (m) =>
      `| ${m.label} | ${m.widthPx} x ${m.heightPx} | ${m.patches} | ${m.cacheMiB} | ${m.seconds.toFixed(1)} | ${m.maxRssMiB.toFixed(0)} | ${m.trackedPeakMiB.toFixed(0)} |`,
  );
  return `${SECTION_HEADING}

\`npm run bench:pipeline\` (bench/pipeline.ts): the synthetic H&E sample slide (${SLIDE.widthPx} x ${SLIDE.heightPx} px at 0.5 um/px,
256 px JPEG tiles, levels 1x/4x/16x) served by a private Orthanc over DICOMweb on loopback,
${o.patches} tissue patches at 0.5 um/px, model ${o.modelName}, batch ${o.config.PATHEMBED_BATCH_SIZE}, ONNX Runtime
${o.config.PATHEMBED_INTRA_OP_THREADS === 0 ? 'default threads (one per core)' : `${o.config.PATHEMBED_INTRA_OP_THREADS} intra-op threads`}, ${o.config.PATHEMBED_STORE_CONCURRENCY} concurrent requests, ${o.config.PATHEMBED_DECODE_THREADS} decode threads.

- *model alone*: the same patches, read into memory first, embedded in the same batches by the
  same engine;
- *end to end*: \`embedPlan\` over the plan (fetch over HTTP, decode, cut, batch, embed) with a
  cold frame cache; *whole job*: \`runEmbeddingJob\`, planning (metadata, tissue mask) and the
  JSON result included;
- ratio = end to end / model alone (goal on CPU >= 0.9); stage busy times of the last whole job
  (fetch / decode / infer / total, ms; fetch and decode overlap inference, so they do not add up);
- *worker thread*: the engine in its own thread (\`WorkerEmbeddingEngine\`, what the CLI and the
  demo use); *main thread*: \`EmbeddingEngine\` in the pipeline's thread, where ONNX Runtime's
  blocking run stalls the read-ahead.

Fastest of ${ROUNDS} interleaved rounds (other work on the machine can only slow a run down), patches/s:

| engine | model alone | end to end | ratio | whole job | ratio | fetch / decode / infer / total (ms) |
| --- | ---: | ---: | ---: | ---: | ---: | --- |
${row('worker thread', o.worker)}
${row('main thread', o.inProcess)}

Peak resident memory of a whole job (\`runEmbeddingJob\` with the worker engine, one child process
each, \`maxRSS\` of the process including the model and ONNX Runtime's arena; *V8-tracked*: the
main thread's heap and buffers, sampled every ${MEMORY_SAMPLE_MS} ms, which is what the pipeline itself holds:
the frame cache, the batches read ahead, the result writer's buffer). With a 64 MiB frame cache, peak RSS on the 10x slide is about what the sample needs: the
pipeline's memory is bounded by the cache budget and the read-ahead, not by the slide. With the
default 512 MiB budget it grows by the cache filling up. (An earlier run grew by a further
500-700 MiB: sharp 0.35's \`toUint8Array()\` never freed decoded JPEG frames; src/codecs/jpeg.ts
now uses \`toBuffer()\`.)

| slide | size (px) | patches | frame cache budget (MiB) | seconds | peak RSS (MiB) | peak V8-tracked (MiB) |
| --- | --- | ---: | ---: | ---: | ---: | ---: |
${mem.join('\n')}

Machine: ${os.availableParallelism()} cores, ${cpuModel()}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node ${process.version}, ${os.type()} ${os.release()};
1-minute load average ${o.load.start.toFixed(2)} at the start and ${o.load.end.toFixed(2)} at the end (above the core count means other work
shared the CPU; the ratios are measured in interleaved rounds so such load affects both sides).
`;
}

/** Replaces the "## Pipeline" section (up to the next "## ") or appends it. */
function replaceSection(document: string, section: string): string {
  const start = document.indexOf(`${SECTION_HEADING}\n`);
  if (start === -1) return `${document.trimEnd()}\n\n${section}`;
  const next = document.indexOf('\n## ', start + SECTION_HEADING.length);
  return `${document.slice(0, start)}${section}${next === -1 ? '' : document.slice(next)}`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'write-docs': { type: 'boolean', default: false },
      'memory-run': { type: 'string' },
      'skip-memory': { type: 'boolean', default: false },
    },
  });
  if (values['memory-run']) return memoryRun(values['memory-run']);

  const config = loadConfig();
  const logger = createLogger('warn');
  const load = { start: os.loadavg()[0], end: 0 };
  await ensureDefaultModel(engineOptions(config), logger);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pathembed-bench-pipeline-'));
  const orthanc = await startOrthanc();
  try {
    const slideDir = path.join(dir, 'slide');
    await writeSampleSlide(slideDir, SLIDE);
    const ids = await uploadFolder(orthanc.url, slideDir);
    const { study, series } = await seriesOf(orthanc.url, ids[0]);
    const spec: SlideSourceSpec = {
      kind: 'dicomweb',
      baseUrl: orthanc.dicomWebUrl,
      studyUid: study,
      seriesUid: series,
    };

    const worker = await WorkerEmbeddingEngine.open(engineOptions(config), 'warn');
    let workerFigures: EngineFigures;
    let plan: SlidePlan;
    let pixels: Uint8Array[];
    try {
      const deps: PipelineDeps = pipelineDeps(config, logger, worker);
      plan = await planSlide(spec, {}, deps);
      pixels = await readAllPatches(plan, deps);
      workerFigures = await measureEngine(worker, spec, plan, pixels, config, dir, 'worker thread', ROUNDS);
    } finally {
      await worker.close();
    }
    const inProcess = await EmbeddingEngine.open(engineOptions(config), logger);
    let inProcessFigures: EngineFigures;
    try {
      inProcessFigures = await measureEngine(
        inProcess,
        spec,
        plan,
        pixels,
        config,
        dir,
        'main thread',
        ROUNDS,
      );
    } finally {
      await inProcess.close();
    }

    const memory: MemoryFigure[] = [];
    if (!values['skip-memory']) {
      const seriesUrl = `${orthanc.dicomWebUrl}/studies/${study}/series/${series}`;
      const sample = { widthPx: SLIDE.widthPx, heightPx: SLIDE.heightPx };
      const side = Math.sqrt(AREA_FACTOR);
      const large = {
        widthPx: Math.round(SLIDE.widthPx * side),
        heightPx: Math.round(SLIDE.heightPx * side),
      };
      const largeDir = path.join(dir, 'large');
      process.stderr.write(`writing the ${AREA_FACTOR}x slide (${large.widthPx} x ${large.heightPx})\n`);
      await writeSampleSlide(largeDir, { ...large, seed: 'pathembed-bench-large' });
      const largeIds = await uploadFolder(orthanc.url, largeDir);
      const l = await seriesOf(orthanc.url, largeIds[0]);
      const largeUrl = `${orthanc.dicomWebUrl}/studies/${l.study}/series/${l.series}`;
      // The default frame-cache budget, then a small one: what grows with the slide is the cache
      // filling up to its budget, not the pipeline.
      for (const cacheBytes of [config.PATHEMBED_FRAME_CACHE_BYTES, SMALL_CACHE_BYTES]) {
        memory.push(await measureMemory(seriesUrl, 'sample', sample, cacheBytes));
        memory.push(await measureMemory(largeUrl, `${AREA_FACTOR}x area`, large, cacheBytes));
      }
    }
    load.end = os.loadavg()[0];
    const section = renderSection({
      patches: plan.patches.length,
      worker: workerFigures,
      inProcess: inProcessFigures,
      memory,
      config,
      modelName:
        path.resolve(config.PATHEMBED_MODEL_PATH) === path.resolve(engineOptions(config).defaultModelPath)
          ? 'the synthetic ViT-S/16 (Path Foundation architecture and cost)'
          : path.basename(config.PATHEMBED_MODEL_PATH),
      load,
    });
    process.stdout.write(section);
    if (values['write-docs']) {
      const docsPath = path.join(config.projectRoot, DOCS_PATH);
      await writeFile(docsPath, replaceSection(await readFile(docsPath, 'utf8'), section));
      process.stderr.write(`wrote the "${SECTION_HEADING.slice(3)}" section of ${DOCS_PATH}\n`);
    }
  } finally {
    await orthanc.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
