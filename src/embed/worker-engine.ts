/**
 * The embedding engine in a worker thread. ONNX Runtime's Node binding runs a session on the
 * calling thread and returns only when the batch is done: measured on 2 cores, a 32-patch batch
 * held the event loop for 3.6 s without a single timer tick. In the main thread that would stall
 * every frame fetch and decode the pipeline reads ahead, so nothing would overlap inference. Here
 * the session runs in its own thread, patches and embeddings cross as transferred buffers (no
 * copies), and the main thread keeps reading the next batches meanwhile.
 *
 * The worker entry is inference-worker.ts beside this file, started like the codecs' workers: the
 * compiled .js directly, or the .ts sources through tsx's loader.
 */
import { Worker } from 'node:worker_threads';
import { ERROR_CODES, type ErrorCode, PathembedError } from '../errors.js';
import type { EngineOptions } from './engine-options.js';
import type { FromWorker, SerializedError, ToWorker } from './inference-protocol.js';
import type { ModelManifest } from './model-manifest.js';

const SOURCE_EXTENSION = '.ts';
const WORKER_BASENAME = 'inference-worker';

function startWorker(): Worker {
  const here = import.meta.url;
  if (!here.endsWith(SOURCE_EXTENSION)) return new Worker(new URL(`./${WORKER_BASENAME}.js`, here));
  const entry = new URL(`./${WORKER_BASENAME}${SOURCE_EXTENSION}`, here).href;
  const tsxApi = import.meta.resolve('tsx/esm/api');
  const bootstrap = `import(${JSON.stringify(tsxApi)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry)}); });`;
  return new Worker(bootstrap, { eval: true, execArgv: [] });
}

function revive(error: SerializedError): PathembedError {
  const code: ErrorCode =
    error.code !== undefined && error.code in ERROR_CODES ? (error.code as ErrorCode) : 'INTERNAL';
  return new PathembedError(code, error.message, error.details);
}

interface Pending {
  resolve(embeddings: Float32Array[]): void;
  reject(err: unknown): void;
}

export class WorkerEmbeddingEngine {
  readonly #worker: Worker;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #closed = false;
  #failure: Error | undefined;
  #batchObserver: ((seconds: readonly number[]) => void) | undefined;

  private constructor(
    worker: Worker,
    readonly manifest: ModelManifest,
    readonly provider: string,
    readonly patchSize: number,
    readonly embeddingWidth: number,
    readonly batchSize: number,
  ) {
    this.#worker = worker;
    worker.on('message', (m: FromWorker) => this.#onMessage(m));
    worker.on('error', (err) => this.#fail(err));
    worker.on('exit', (code) => {
      if (!this.#closed) this.#fail(new Error(`the inference worker exited with code ${code}`));
    });
  }

  /** Starts the worker and opens the model there (MODEL_NOT_FOUND etc. as EmbeddingEngine.open). */
  static async open(options: EngineOptions, logLevel: string): Promise<WorkerEmbeddingEngine> {
    const worker = startWorker();
    const ready = await new Promise<Extract<FromWorker, { type: 'ready' }>>((resolve, reject) => {
      const onMessage = (m: FromWorker) => {
        cleanup();
        if (m.type === 'ready') resolve(m);
        else if (m.type === 'init-failed') reject(revive(m.error));
        else reject(new PathembedError('INTERNAL', `The inference worker answered ${m.type} to init`));
      };
      const onError = (err: Error) => {
        cleanup();
        reject(
          new PathembedError(
            'INTERNAL',
            `The inference worker failed to start: ${err.message}`,
            {},
            { cause: err },
          ),
        );
      };
      const cleanup = () => {
        worker.off('message', onMessage);
        worker.off('error', onError);
      };
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.postMessage({ type: 'init', options, logLevel } satisfies ToWorker);
    }).catch(async (err) => {
      await worker.terminate();
      throw err;
    });
    return new WorkerEmbeddingEngine(
      worker,
      ready.manifest,
      ready.provider,
      ready.patchSize,
      ready.embeddingWidth,
      ready.batchSize,
    );
  }

  /**
   * Embeds patches in the worker. The patches' buffers are transferred to it: the caller must not
   * use them afterwards (the pipeline never does; it reads every batch afresh).
   */
  embed(patches: readonly Uint8Array[]): Promise<Float32Array[]> {
    if (this.#closed) return Promise.reject(new PathembedError('INTERNAL', 'The inference worker is closed'));
    if (this.#failure) return Promise.reject(this.#failure);
    const id = this.#nextId++;
    // A patch that is a view of a larger buffer is copied, so transferring never detaches more than it.
    const sendable = patches.map((p) =>
      p.byteOffset === 0 && p.byteLength === p.buffer.byteLength ? p : Uint8Array.from(p),
    );
    return new Promise<Float32Array[]>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage(
        { type: 'embed', id, patches: sendable } satisfies ToWorker,
        sendable.map((p) => p.buffer as ArrayBuffer),
      );
    });
  }

  /** Calls `observer` with the device time of the batches behind every answer (for /metrics). */
  observeBatches(observer: (seconds: readonly number[]) => void): void {
    this.#batchObserver = observer;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const exited = new Promise<void>((resolve) => this.#worker.once('exit', () => resolve()));
    this.#worker.postMessage({ type: 'close' } satisfies ToWorker);
    await exited;
  }

  #onMessage(m: FromWorker): void {
    if (m.type !== 'embedded' && m.type !== 'embed-failed') return;
    const pending = this.#pending.get(m.id);
    if (!pending) return;
    this.#pending.delete(m.id);
    if (m.type === 'embedded') {
      this.#batchObserver?.(m.batchSeconds);
      pending.resolve(m.embeddings);
    } else pending.reject(revive(m.error));
  }

  #fail(err: Error): void {
    this.#failure = new PathembedError(
      'INFERENCE_FAILED',
      `The inference worker failed: ${err.message}`,
      {},
      { cause: err },
    );
    for (const p of this.#pending.values()) p.reject(this.#failure);
    this.#pending.clear();
  }
}
