/**
 * The inference worker's entry: opens the EmbeddingEngine in this thread and runs the batches the
 * pipeline sends. See worker-engine.ts for why inference runs here rather than on the main thread.
 */
import { parentPort } from 'node:worker_threads';
import { isPathembedError } from '../errors.js';
import { createLogger } from '../log.js';
import { EmbeddingEngine } from './embedding-engine.js';
import type { FromWorker, SerializedError, ToWorker } from './inference-protocol.js';

function serialize(err: unknown): SerializedError {
  if (isPathembedError(err)) return { code: err.code, message: err.message, details: { ...err.details } };
  return { code: undefined, message: err instanceof Error ? err.message : String(err), details: {} };
}

const port = parentPort;
if (!port) throw new Error('inference-worker.ts runs only as a worker thread');
let engine: EmbeddingEngine | undefined;

const send = (message: FromWorker, transfer: ArrayBuffer[] = []) => port.postMessage(message, transfer);

port.on('message', async (message: ToWorker) => {
  switch (message.type) {
    case 'init':
      try {
        engine = await EmbeddingEngine.open(message.options, createLogger(message.logLevel));
        send({
          type: 'ready',
          manifest: engine.manifest,
          provider: engine.provider,
          patchSize: engine.patchSize,
          embeddingWidth: engine.embeddingWidth,
          batchSize: engine.batchSize,
        });
      } catch (err) {
        send({ type: 'init-failed', error: serialize(err) });
      }
      return;
    case 'embed':
      try {
        if (!engine) throw new Error('the inference worker has no engine yet');
        const embeddings = await engine.embed(message.patches);
        send(
          { type: 'embedded', id: message.id, embeddings, batchSeconds: engine.takeBatchSeconds() },
          embeddings.map((e) => e.buffer as ArrayBuffer),
        );
      } catch (err) {
        send({ type: 'embed-failed', id: message.id, error: serialize(err) });
      }
      return;
    case 'close':
      await engine?.close();
      send({ type: 'closed' });
      port.close();
      return;
  }
});
