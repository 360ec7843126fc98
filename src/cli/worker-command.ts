/**
 * `pathembed worker`: a queue worker process. Loads the model once, announces it in Redis, and
 * embeds slide chunks and predict requests from the queue until SIGTERM/SIGINT, when it finishes
 * the batch in hand, hands its unfinished chunks back to the queue and exits 0.
 *
 *   pathembed worker [--concurrency N] [--execution-provider auto|cpu|cuda|tensorrt] [--device-id N]
 */
import type { Command } from 'commander';
import sharp from 'sharp';
import { ensureDefaultModel } from '../../models/default-model.js';
import { CONFIG_VARIABLES, type Config, type ConfigValues, loadConfig } from '../config.js';
import { engineOptions } from '../domain-options.js';
import { WorkerEmbeddingEngine } from '../embed/index.js';
import { PathembedError } from '../errors.js';
import { createLogger, type Logger } from '../log.js';
import { InferenceMetrics } from '../queue/inference-metrics.js';
import { createPipelinePort } from '../queue/pipeline-adapter.js';
import { FrameFetchRecorder } from '../queue/service-metrics.js';
import { WorkerRuntime } from '../queue/worker-runtime.js';

/** Exit status after a clean stop, and after a second signal forced the exit. */
const EXIT_OK = 0;
const EXIT_FORCED = 130;

/** The config with some variables replaced by command-line values, validated like the environment. */
export function configWithOverrides(
  config: Config,
  overrides: Partial<Record<keyof ConfigValues, string | undefined>>,
): Config {
  const out: Record<string, unknown> = { ...config };
  for (const [name, raw] of Object.entries(overrides)) {
    if (raw === undefined) continue;
    const spec = CONFIG_VARIABLES[name as keyof ConfigValues];
    const parsed = spec.schema.safeParse(raw);
    if (!parsed.success) {
      throw new PathembedError(
        'CONFIG_INVALID',
        `Invalid command-line value for ${name}: ${JSON.stringify(raw)}: ${parsed.error.issues.map((i) => i.message).join('; ')}`,
        { variable: name },
      );
    }
    out[name] = parsed.data;
  }
  return Object.freeze(out) as unknown as Config;
}

/**
 * Resolves on the first SIGTERM/SIGINT; a second one exits at once (an operator who means it),
 * so a stuck shutdown never needs kill -9.
 */
export function untilStopSignal(logger: Logger): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    let received = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (received) {
        logger.warn({ signal }, 'second stop signal: exiting now');
        process.exit(EXIT_FORCED);
      }
      received = true;
      logger.info({ signal }, 'stop signal received');
      resolve(signal);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}

interface WorkerCommandOptions {
  concurrency?: string;
  executionProvider?: string;
  deviceId?: string;
  decodeThreads?: string;
  sharpThreads?: string;
  heartbeatFile?: string;
}

export function registerWorkerCommand(program: Command): void {
  program
    .command('worker')
    .description('run a queue worker: embeds slide chunks and /v1/predict requests from Redis (BullMQ)')
    .option('--concurrency <n>', 'jobs this process runs at once (default PATHEMBED_WORKER_CONCURRENCY)')
    .option('--execution-provider <ep>', 'auto, cpu, cuda or tensorrt (default PATHEMBED_EXECUTION_PROVIDER)')
    .option('--device-id <n>', 'GPU device id (default PATHEMBED_DEVICE_ID)')
    .option('--decode-threads <n>', 'WASM decoder threads (default PATHEMBED_DECODE_THREADS)')
    .option('--sharp-threads <n>', 'libvips threads for JPEG decoding (default PATHEMBED_SHARP_THREADS)')
    .option('--heartbeat-file <path>', 'touch this file on every heartbeat (for a container liveness probe)')
    .action(async (opts: WorkerCommandOptions) => {
      const config = configWithOverrides(loadConfig(), {
        PATHEMBED_WORKER_CONCURRENCY: opts.concurrency,
        PATHEMBED_EXECUTION_PROVIDER: opts.executionProvider,
        PATHEMBED_DEVICE_ID: opts.deviceId,
        PATHEMBED_DECODE_THREADS: opts.decodeThreads,
        PATHEMBED_SHARP_THREADS: opts.sharpThreads,
      });
      // Several GPU workers on one machine share its cores: each gets its share for decoding,
      // rather than every libvips pool taking one thread per core (deploy/gpu-install.md).
      if (config.PATHEMBED_SHARP_THREADS > 0) sharp.concurrency(config.PATHEMBED_SHARP_THREADS);
      const logger = createLogger(config.LOG_LEVEL, 'pathembed-worker');
      await ensureDefaultModel(engineOptions(config), logger);
      // Inference in a worker thread: ONNX Runtime's binding blocks the event loop for a whole batch,
      // which would stall frame read-ahead and BullMQ's lock renewal.
      const engine = await WorkerEmbeddingEngine.open(engineOptions(config), config.LOG_LEVEL);
      const frames = new FrameFetchRecorder();
      const inference = new InferenceMetrics();
      engine.observeBatches((seconds) => {
        for (const s of seconds) inference.batch.observe(s);
      });
      const pipeline = createPipelinePort(config, logger, engine, { frames });
      const runtime = await WorkerRuntime.start(
        { config, logger, pipeline, frames, inference },
        opts.heartbeatFile ? { heartbeatFile: opts.heartbeatFile } : {},
      );
      await untilStopSignal(logger);
      await runtime.close();
      logger.flush();
      process.exitCode = EXIT_OK;
    });
}
