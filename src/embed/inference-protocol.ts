/** Messages between an engine and its inference worker thread (worker-engine.ts, inference-worker.ts). */
import type { EngineOptions } from './engine-options.js';
import type { ModelManifest } from './model-manifest.js';

export interface InferenceInit {
  readonly type: 'init';
  readonly options: EngineOptions;
  readonly logLevel: string;
}

export interface InferenceRequest {
  readonly type: 'embed';
  readonly id: number;
  readonly patches: Uint8Array[];
}

export interface InferenceClose {
  readonly type: 'close';
}

export type ToWorker = InferenceInit | InferenceRequest | InferenceClose;

export interface SerializedError {
  readonly code: string | undefined;
  readonly message: string;
  readonly details: Record<string, unknown>;
}

export type FromWorker =
  | {
      readonly type: 'ready';
      readonly manifest: ModelManifest;
      readonly provider: string;
      readonly patchSize: number;
      readonly embeddingWidth: number;
      readonly batchSize: number;
    }
  | { readonly type: 'init-failed'; readonly error: SerializedError }
  | {
      readonly type: 'embedded';
      readonly id: number;
      readonly embeddings: Float32Array[];
      /** Seconds of each ORT run since the previous message (EmbeddingEngine.takeBatchSeconds). */
      readonly batchSeconds: number[];
    }
  | { readonly type: 'embed-failed'; readonly id: number; readonly error: SerializedError }
  | { readonly type: 'closed' };
