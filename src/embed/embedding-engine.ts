/**
 * The embedding engine: an ONNX Runtime session on a model meeting the Path Foundation contract,
 * turning 224x224 RGB uint8 patches into 384-float embeddings. It owns the preprocessing (uint8 to
 * float32 /255, NHWC, no normalisation), batching (PATHEMBED_BATCH_SIZE) and the order of results.
 * One engine runs one batch at a time: calls to `embed` queue behind each other, because the input
 * buffer is reused and ONNX Runtime already spreads a batch over every intra-op thread.
 */
import { existsSync } from 'node:fs';
import { type InferenceSession, Tensor } from 'onnxruntime-node';
import { PathembedError } from '../errors.js';
import type { Logger } from '../log.js';
import { modelNotFound } from './default-model.js';
import type { EngineOptions } from './engine-options.js';
import { type ExecutionProvider, openSession } from './execution-provider.js';
import {
  assertModelContract,
  EMBEDDING_WIDTH,
  MODEL_INPUT_NAME,
  MODEL_OUTPUT_NAME,
  PATCH_BYTES,
  PATCH_CHANNELS,
  PATCH_SIZE_PX,
  PIXEL_SCALE,
} from './model-contract.js';
import { loadManifest, type ModelManifest } from './model-manifest.js';

/** PATHEMBED_INTRA_OP_THREADS=0 means "let ONNX Runtime choose" (one thread per core). */
const ORT_CHOOSES_THREADS = 0;

export class EmbeddingEngine {
  /** Side of the square patches `embed` takes, in pixels. */
  readonly patchSize = PATCH_SIZE_PX;
  /** Floats per embedding. */
  readonly embeddingWidth = EMBEDDING_WIDTH;
  readonly #session: InferenceSession;
  // One float32 buffer of a full batch, filled in place for every batch: a 32-patch batch is
  // 19 MB, which allocating per call would hand to the garbage collector many times a second.
  readonly #input: Float32Array;
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;

  private constructor(
    session: InferenceSession,
    readonly modelPath: string,
    readonly manifest: ModelManifest,
    /** The provider the session runs on (`auto` resolved). */
    readonly provider: ExecutionProvider,
    /** Most patches per ONNX Runtime run (PATHEMBED_BATCH_SIZE). */
    readonly batchSize: number,
  ) {
    this.#session = session;
    this.#input = new Float32Array(batchSize * PATCH_BYTES);
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
          ...(threads === ORT_CHOOSES_THREADS ? {} : { intraOpNumThreads: threads }),
        },
      },
      logger,
    );
    try {
      // The contract is checked before the manifest so that a wrong model is refused without
      // deriving and saving a manifest that would describe it as a Path Foundation model.
      assertModelContract(session, modelPath);
      const manifest = await loadManifest(modelPath, logger);
      logger.info(
        {
          model: manifest.name,
          version: manifest.version,
          sha256: manifest.sha256,
          synthetic: manifest.synthetic,
          provider,
          batchSize: options.batchSize,
        },
        manifest.synthetic
          ? 'embedding model loaded (SYNTHETIC weights: embeddings carry no pathology meaning)'
          : 'embedding model loaded',
      );
      return new EmbeddingEngine(session, modelPath, manifest, provider, options.batchSize);
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
    batch.forEach((patch, b) => {
      const offset = b * PATCH_BYTES;
      // Division, not multiplication by 1/255: it rounds exactly as the reference `x / 255.0` does.
      for (let i = 0; i < PATCH_BYTES; i++) input[offset + i] = patch[i]! / PIXEL_SCALE;
    });
    const n = batch.length;
    const tensor = new Tensor('float32', input.subarray(0, n * PATCH_BYTES), [
      n,
      PATCH_SIZE_PX,
      PATCH_SIZE_PX,
      PATCH_CHANNELS,
    ]);
    let output: Float32Array;
    try {
      const results = await this.#session.run({ [MODEL_INPUT_NAME]: tensor }, [MODEL_OUTPUT_NAME]);
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
