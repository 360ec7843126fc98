/**
 * The embedding engine: an ONNX Runtime session on a model meeting the Path Foundation contract,
 * turning 224x224 RGB uint8 patches into 384-float embeddings. It owns the preprocessing (uint8 to
 * float32 /255, NHWC, no normalisation), batching (PATHEMBED_BATCH_SIZE) and the order of results.
 * One engine runs one batch at a time: calls to `embed` queue behind each other, because the input
 * buffer is reused and ONNX Runtime already spreads a batch over every intra-op thread.
 *
 * A model with a uint8 input (the GPU variants, model-contract.ts) is fed the patches' bytes as they
 * are: the /255 happens inside the graph, on the device. Full batches are run into a preallocated
 * output tensor, so ORT writes the embeddings into memory the engine already holds.
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { type InferenceSession, Tensor } from 'onnxruntime-node';
import { PathembedError } from '../errors.js';
import type { Logger } from '../log.js';
import { writeBatchInput } from './batch-input.js';
import { modelNotFound } from './default-model.js';
import type { EngineOptions } from './engine-options.js';
import { type ExecutionProvider, openSession } from './execution-provider.js';
import {
  assertModelContract,
  DEFAULT_MODEL_VARIANT,
  EMBEDDING_WIDTH,
  MODEL_INPUT_NAME,
  MODEL_OUTPUT_NAME,
  MODEL_VARIANTS,
  type ModelInputType,
  type ModelVariant,
  PATCH_BYTES,
  PATCH_CHANNELS,
  PATCH_SIZE_PX,
} from './model-contract.js';
import { loadManifest, type ModelManifest } from './model-manifest.js';

const MS_PER_S = 1000;
/** PATHEMBED_INTRA_OP_THREADS=0 means one thread per core the process may use. */
const ONE_PER_CORE = 0;

export class EmbeddingEngine {
  /** Side of the square patches `embed` takes, in pixels. */
  readonly patchSize = PATCH_SIZE_PX;
  /** Floats per embedding. */
  readonly embeddingWidth = EMBEDDING_WIDTH;
  readonly #session: InferenceSession;
  // One buffer of a full batch, filled in place for every batch: a 32-patch float32 batch is
  // 19 MB, which allocating per call would hand to the garbage collector many times a second.
  readonly #input: Float32Array | Uint8Array;
  // ORT writes full batches' embeddings here (a preallocated output); partial batches get ORT's own.
  readonly #output: Float32Array;
  /** Which build of the model is loaded: from its manifest, or for a model without one, its input type. */
  readonly variant: ModelVariant;
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;
  /** Seconds each ORT run took since the last takeBatchSeconds(): the device time of a batch. */
  #batchSeconds: number[] = [];

  private constructor(
    session: InferenceSession,
    readonly modelPath: string,
    readonly manifest: ModelManifest,
    /** The provider the session runs on (`auto` resolved). */
    readonly provider: ExecutionProvider,
    /** Most patches per ONNX Runtime run (PATHEMBED_BATCH_SIZE). */
    readonly batchSize: number,
    /** Element type of the model's input: float32 (pixel/255 here) or uint8 (scaled in the graph). */
    readonly inputType: ModelInputType,
  ) {
    this.#session = session;
    this.#input =
      inputType === 'uint8'
        ? new Uint8Array(batchSize * PATCH_BYTES)
        : new Float32Array(batchSize * PATCH_BYTES);
    this.#output = new Float32Array(batchSize * EMBEDDING_WIDTH);
    this.variant = manifest.variant ?? (inputType === 'uint8' ? 'uint8-fp32' : DEFAULT_MODEL_VARIANT);
  }

  /**
   * Opens the model on the chosen provider and checks it against the contract.
   * Throws MODEL_NOT_FOUND, MODEL_CONTRACT_MISMATCH or EXECUTION_PROVIDER_UNAVAILABLE.
   */
  static async open(options: EngineOptions, logger: Logger): Promise<EmbeddingEngine> {
    const { modelPath } = options;
    if (!existsSync(modelPath)) throw modelNotFound(modelPath, options.defaultModelPath);
    const threads = options.intraOpThreads;
    const { session, provider } = await openSession(
      modelPath,
      {
        setting: options.executionProvider,
        deviceId: options.deviceId,
        sessionOptions: {
          graphOptimizationLevel: 'all',
          executionMode: 'sequential',
          // ONNX Runtime's own default counts physical cores, which on a 2-vCPU VM is one thread: half
          // the throughput (12 against 23 patches/s at batch 8, docs/benchmarks.md "Pipeline").
          intraOpNumThreads: threads === ONE_PER_CORE ? availableParallelism() : threads,
        },
      },
      logger,
    );
    try {
      // The contract is checked before the manifest so that a wrong model is refused without
      // deriving and saving a manifest that would describe it as a Path Foundation model.
      const inputType = assertModelContract(session, modelPath);
      const manifest = await loadManifest(modelPath, logger);
      if (manifest.variant && MODEL_VARIANTS[manifest.variant].inputType !== inputType) {
        throw new PathembedError(
          'MODEL_CONTRACT_MISMATCH',
          `${modelPath} takes ${inputType} input but its manifest says variant ${manifest.variant}; rebuild the model or delete its manifest`,
          { modelPath, inputType, variant: manifest.variant },
        );
      }
      logger.info(
        {
          model: manifest.name,
          version: manifest.version,
          sha256: manifest.sha256,
          synthetic: manifest.synthetic,
          provider,
          batchSize: options.batchSize,
          variant: manifest.variant ?? (inputType === 'uint8' ? 'uint8-fp32' : DEFAULT_MODEL_VARIANT),
          inputType,
        },
        manifest.synthetic
          ? 'embedding model loaded (SYNTHETIC weights: embeddings carry no pathology meaning)'
          : 'embedding model loaded',
      );
      return new EmbeddingEngine(session, modelPath, manifest, provider, options.batchSize, inputType);
    } catch (err) {
      await session.release();
      throw err;
    }
  }

  /**
   * Embeds patches (each RGB uint8 interleaved, 224*224*3 bytes, row-major) and returns one
   * 384-float embedding per patch, in the order given. Throws INVALID_ARGUMENT for a patch of the
   * wrong size, INFERENCE_FAILED when ONNX Runtime fails.
   */
  async embed(patches: readonly Uint8Array[]): Promise<Float32Array[]> {
    this.#assertOpen();
    patches.forEach((patch, index) => {
      if (!(patch instanceof Uint8Array) || patch.byteLength !== PATCH_BYTES) {
        const got = patch instanceof Uint8Array ? `${patch.byteLength} bytes` : typeof patch;
        throw new PathembedError(
          'INVALID_ARGUMENT',
          `patch ${index} has ${got}; a patch is ${PATCH_SIZE_PX}x${PATCH_SIZE_PX} RGB uint8 interleaved, ${PATCH_BYTES} bytes`,
          { index, expectedBytes: PATCH_BYTES },
        );
      }
    });
    const run = this.#queue.then(() => this.#embedAll(patches));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /** Durations (seconds) of the ORT runs since the previous call, for latency metrics; clears them. */
  takeBatchSeconds(): number[] {
    const taken = this.#batchSeconds;
    this.#batchSeconds = [];
    return taken;
  }

  /** Runs one patch so the first real batch does not pay for ORT's allocations and kernel setup. */
  async warmup(): Promise<void> {
    await this.embed([new Uint8Array(PATCH_BYTES)]);
  }

  /** Waits for queued batches, then frees the session; `embed` afterwards throws. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#queue;
    await this.#session.release();
  }

  #assertOpen(): void {
    if (this.#closed) throw new PathembedError('INTERNAL', `EmbeddingEngine for ${this.modelPath} is closed`);
  }

  async #embedAll(patches: readonly Uint8Array[]): Promise<Float32Array[]> {
    const embeddings: Float32Array[] = [];
    for (let start = 0; start < patches.length; start += this.batchSize) {
      const batch = patches.slice(start, start + this.batchSize);
      embeddings.push(...(await this.#runBatch(batch, start)));
    }
    return embeddings;
  }

  async #runBatch(batch: readonly Uint8Array[], firstIndex: number): Promise<Float32Array[]> {
    const input = this.#input;
    const n = batch.length;
    const dims = [n, PATCH_SIZE_PX, PATCH_SIZE_PX, PATCH_CHANNELS];
    writeBatchInput(input, batch);
    const filled = input.subarray(0, n * PATCH_BYTES);
    const tensor =
      filled instanceof Uint8Array ? new Tensor('uint8', filled, dims) : new Tensor('float32', filled, dims);
    const fetches =
      n === this.batchSize
        ? { [MODEL_OUTPUT_NAME]: new Tensor('float32', this.#output, [n, EMBEDDING_WIDTH]) }
        : [MODEL_OUTPUT_NAME];
    let output: Float32Array;
    const started = performance.now();
    try {
      const results = await this.#session.run({ [MODEL_INPUT_NAME]: tensor }, fetches);
      this.#batchSeconds.push((performance.now() - started) / MS_PER_S);
      const result = results[MODEL_OUTPUT_NAME] as Tensor;
      if (result.type !== 'float32' || result.size !== n * EMBEDDING_WIDTH) {
        throw new Error(`output ${MODEL_OUTPUT_NAME} is ${result.type} [${result.dims.join(',')}]`);
      }
      output = result.data as Float32Array;
    } catch (err) {
      throw new PathembedError(
        'INFERENCE_FAILED',
        `ONNX Runtime failed on patches ${firstIndex}..${firstIndex + n - 1} (${this.provider}): ${(err as Error).message}`,
        { firstIndex, batchSize: n, provider: this.provider },
        { cause: err },
      );
    }
    // Copies, so each embedding owns its memory rather than pinning the whole batch output.
    return batch.map((_, b) => output.slice(b * EMBEDDING_WIDTH, (b + 1) * EMBEDDING_WIDTH));
  }
}
