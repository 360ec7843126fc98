/**
 * `pathembed model build [--variant V] [--output PATH]`: writes the synthetic ViT-S/16 stand-in for
 * Path Foundation (and its manifest), by default at PATHEMBED_MODEL_PATH's default location; the
 * GPU variants (fp16, uint8-fp32, uint8-fp16) beside it with the variant in the file name.
 * `pathembed model info`: loads PATHEMBED_MODEL_PATH as the workers would (the default model built
 * on first use, provider choice, contract check) and prints its manifest and the provider actually used, as JSON on stdout.
 */
import path from 'node:path';
import type { Command } from 'commander';
import { parseVariant, variantModelPath, writeSyntheticModel } from '../../models/build-vit.js';
import { ensureDefaultModel } from '../../models/default-model.js';
import { loadConfig } from '../config.js';
import { engineOptions } from '../domain-options.js';
import { EmbeddingEngine, MODEL_VARIANTS } from '../embed/index.js';
import { PathembedError } from '../errors.js';
import { createLogger } from '../log.js';

const JSON_INDENT = 2;

function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, JSON_INDENT)}\n`);
}

export function registerModelCommands(program: Command): void {
  const model = program.command('model').description('Build or inspect the ONNX embedding model');

  model
    .command('build')
    .description(
      'Write the synthetic ViT-S/16 model (Path Foundation contract, synthetic weights) and its manifest',
    )
    .option('--output <path>', 'model file to write (default: the default PATHEMBED_MODEL_PATH)')
    .option(
      '--variant <variant>',
      `${Object.keys(MODEL_VARIANTS).join(', ')}: fp16 computes in float16 (LayerNorm and Softmax in float32), uint8 takes raw pixels and scales them in the graph`,
      'fp32',
    )
    .action(async (opts: { output?: string; variant: string }) => {
      const config = loadConfig();
      let variant: ReturnType<typeof parseVariant>;
      try {
        variant = parseVariant(opts.variant);
      } catch (err) {
        throw new PathembedError('INVALID_ARGUMENT', (err as Error).message, { variant: opts.variant });
      }
      // Never the configured PATHEMBED_MODEL_PATH by default: it may be a user's real model.
      const output = path.resolve(opts.output ?? variantModelPath(config.projectRoot, variant));
      const manifest = await writeSyntheticModel(output, { variant });
      printJson({ path: output, manifest });
    });

  model
    .command('info')
    .description(
      'Load PATHEMBED_MODEL_PATH, check the contract and print its manifest and execution provider (JSON)',
    )
    .action(async () => {
      const config = loadConfig();
      const logger = createLogger(config.LOG_LEVEL);
      // As a worker would: the default (synthetic) model is built on first use, any other path must exist.
      await ensureDefaultModel(engineOptions(config), logger);
      const engine = await EmbeddingEngine.open(engineOptions(config), logger);
      try {
        printJson({
          path: engine.modelPath,
          provider: engine.provider,
          executionProviderSetting: config.PATHEMBED_EXECUTION_PROVIDER,
          deviceId: config.PATHEMBED_DEVICE_ID,
          batchSize: engine.batchSize,
          variant: engine.variant,
          inputType: engine.inputType,
          manifest: engine.manifest,
        });
      } finally {
        await engine.close();
      }
    });
}
