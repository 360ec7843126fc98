/**
 * Execution provider choice with the real onnxruntime-node of this install. On a machine without
 * the CUDA build (CI, laptops, this repository's test machine) `auto` must run on the CPU with
 * exactly one warning, and an explicit GPU provider must fail with EXECUTION_PROVIDER_UNAVAILABLE
 * rather than quietly running on the CPU.
 */
import { Writable } from 'node:stream';
import { InferenceSession } from 'onnxruntime-node';
import { pino } from 'pino';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ensureDefaultModel } from '../../models/default-model.js';
import { loadConfig } from '../../src/config.js';
import { engineOptions } from '../../src/domain-options.js';
import {
  cudaProviderInstalled,
  EmbeddingEngine,
  executionProvidersFor,
  isProviderFailure,
} from '../../src/embed/index.js';
import { isPathembedError } from '../../src/errors.js';
import type { Logger } from '../../src/log.js';

const PINO_WARN = 40;
const env = { PATHEMBED_INTRA_OP_THREADS: '2', LOG_LEVEL: 'silent' };

function capturingLogger(): { logger: Logger; lines: Array<{ level: number; msg: string }> } {
  const lines: Array<{ level: number; msg: string }> = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, sink), lines };
}

const opened: EmbeddingEngine[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((e) => e.close()));
});

beforeAll(async () => {
  await ensureDefaultModel(engineOptions(loadConfig(env)));
});

describe('executionProvidersFor', () => {
  it('maps settings to ORT provider lists, TensorRT falling back to CUDA', () => {
    expect(executionProvidersFor('cpu', 0)).toEqual(['cpu']);
    expect(executionProvidersFor('cuda', 1)).toEqual([{ name: 'cuda', deviceId: 1 }]);
    expect(executionProvidersFor('tensorrt', 2)).toEqual([
      { name: 'tensorrt', deviceId: 2 },
      { name: 'cuda', deviceId: 2 },
    ]);
  });
});

// Which build of onnxruntime-node is installed decides what is observable, so each install runs
// the tests that describe it: nothing is skipped.
const CUDA_BUILD = cudaProviderInstalled();

if (CUDA_BUILD) {
  describe('with the CUDA build of onnxruntime-node', () => {
    it('auto runs on CUDA when a GPU answers, else on the CPU with exactly one warning', async () => {
      const { logger, lines } = capturingLogger();
      const engine = await EmbeddingEngine.open(
        engineOptions(loadConfig({ ...env, PATHEMBED_EXECUTION_PROVIDER: 'auto' })),
        logger,
      );
      opened.push(engine);
      const [embedding] = await engine.embed([new Uint8Array(224 * 224 * 3)]);
      expect(embedding?.length).toBe(384);
      const warnings = lines.filter((l) => l.level === PINO_WARN);
      expect(warnings).toHaveLength(engine.provider === 'cpu' ? 1 : 0);
    });
  });
}

if (!CUDA_BUILD)
  describe('without the CUDA build of onnxruntime-node', () => {
    it('auto runs on the CPU and warns exactly once, saying why and where to look', async () => {
      const { logger, lines } = capturingLogger();
      const engine = await EmbeddingEngine.open(
        engineOptions(loadConfig({ ...env, PATHEMBED_EXECUTION_PROVIDER: 'auto' })),
        logger,
      );
      opened.push(engine);
      expect(engine.provider).toBe('cpu');
      await engine.embed([new Uint8Array(224 * 224 * 3)]);
      const warnings = lines.filter((l) => l.level === PINO_WARN);
      expect(warnings).toHaveLength(1);
      expect(warnings[0].msg).toMatch(/CUDA.*CPU.*deploy\/gpu-install\.md/);
    });

    it('cpu runs on the CPU without any warning', async () => {
      const { logger, lines } = capturingLogger();
      const engine = await EmbeddingEngine.open(
        engineOptions(loadConfig({ ...env, PATHEMBED_EXECUTION_PROVIDER: 'cpu' })),
        logger,
      );
      opened.push(engine);
      expect(engine.provider).toBe('cpu');
      expect(lines.filter((l) => l.level >= PINO_WARN)).toEqual([]);
    });

    it("recognises ORT's own provider-load failure, which auto would also fall back from", async () => {
      // The engine checks for the provider libraries first; this pins that ORT itself throws, and
      // in words the classifier knows, when asked for CUDA without them.
      const modelPath = loadConfig(env).PATHEMBED_MODEL_PATH;
      const err = await InferenceSession.create(modelPath, {
        executionProviders: [{ name: 'cuda', deviceId: 0 }],
        logSeverityLevel: 4,
      }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(Error);
      expect(isProviderFailure(err)).toBe(true);
      expect(isProviderFailure(new Error('Load model from x failed: Protobuf parsing failed.'))).toBe(false);
    });

    for (const provider of ['cuda', 'tensorrt'] as const) {
      it(`explicit ${provider} fails with EXECUTION_PROVIDER_UNAVAILABLE naming what to install`, async () => {
        const { logger } = capturingLogger();
        await expect(
          EmbeddingEngine.open(
            engineOptions(loadConfig({ ...env, PATHEMBED_EXECUTION_PROVIDER: provider })),
            logger,
          ),
        ).rejects.toSatisfy(
          (err) =>
            isPathembedError(err, 'EXECUTION_PROVIDER_UNAVAILABLE') &&
            err.message.includes(`PATHEMBED_EXECUTION_PROVIDER=${provider}`) &&
            err.message.includes('ONNXRUNTIME_NODE_INSTALL=cuda12') &&
            err.message.includes('deploy/gpu-install.md'),
        );
      });
    }
  });
