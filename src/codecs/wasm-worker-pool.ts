/**
 * A small pool of worker threads for the synchronous, CPU-heavy decoders (OpenJPEG and CharLS as
 * WASM, jpeg-lossless-decoder-js), so a decode never blocks the event loop. Workers start on first
 * use, take one frame at a time, and hand samples back as transferred buffers. An idle worker does
 * not keep the process alive; a worker that crashes is replaced on the next request.
 *
 * The worker entry is `wasm-worker.ts` beside this file. Compiled by tsc it is `wasm-worker.js`
 * and plain node runs it. From TypeScript sources (vitest, tsx) a worker thread gets no loader
 * from its parent, and Node 20 does not apply `--import` hooks to a worker's entry, so the worker
 * is started from a one-line bootstrap that registers tsx's loader and then imports the .ts entry.
 */
import { Worker } from 'node:worker_threads';
import { PathembedError } from '../errors.js';
import type { WasmCodec, WasmDecodedSamples, WasmDecodeReply, WasmDecodeRequest } from './wasm-protocol.js';

const SOURCE_EXTENSION = '.ts';
const WORKER_BASENAME = 'wasm-worker';

interface Task {
  codec: WasmCodec;
  encoded: Uint8Array;
  resolve: (samples: WasmDecodedSamples) => void;
  reject: (err: Error) => void;
}

interface Slot {
  worker: Worker;
  task: Task | undefined;
  taskId: number;
}

/** Starts one decode worker, from compiled JavaScript or from TypeScript sources; it compiles `preload`'s decoder first. */
function startWorker(preload: WasmCodec | undefined): Worker {
  const here = import.meta.url;
  const workerData = { preload };
  if (!here.endsWith(SOURCE_EXTENSION)) {
    return new Worker(new URL(`./${WORKER_BASENAME}.js`, here), { workerData });
  }
  const entry = new URL(`./${WORKER_BASENAME}${SOURCE_EXTENSION}`, here).href;
  const tsxApi = import.meta.resolve('tsx/esm/api');
  const bootstrap = `import(${JSON.stringify(tsxApi)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry)}); });`;
  // The parent's own flags (tsx's --import, or an --eval) have no business in the worker.
  return new Worker(bootstrap, { eval: true, execArgv: [], workerData });
}

export class WasmWorkerPool {
  readonly #size: number;
  readonly #slots: Slot[] = [];
  readonly #queue: Task[] = [];
  #nextId = 1;
  #closed = false;

  constructor(size: number) {
    if (!Number.isInteger(size) || size < 1) {
      throw new PathembedError(
        'INVALID_ARGUMENT',
        `Decode worker count must be a positive integer, got ${size}`,
      );
    }
    this.#size = size;
  }

  /** Workers currently started (for tests and metrics). */
  get workerCount(): number {
    return this.#slots.length;
  }

  /**
   * Decodes one codestream in a worker. The bytes are copied once into a buffer of their own and
   * that buffer is transferred: `encoded` may be a view into a larger response buffer, which must
   * neither be detached nor cloned whole.
   */
  decode(codec: WasmCodec, encoded: Uint8Array): Promise<WasmDecodedSamples> {
    if (this.#closed) {
      return Promise.reject(new PathembedError('INTERNAL', 'The frame decoder is closed'));
    }
    return new Promise((resolve, reject) => {
      this.#queue.push({ codec, encoded: encoded.slice(), resolve, reject });
      this.#pump();
    });
  }

  /**
   * Starts every worker now instead of on first use, so that their start (module load, WASM
   * compile of `codec`'s decoder, default JPEG) overlaps whatever the caller does next, e.g.
   * reading a slide's metadata or fetching its frames. Workers already running are left alone.
   */
  warmUp(codec?: WasmCodec): void {
    if (this.#closed) return;
    while (this.#slots.length < this.#size) this.#spawn(codec);
  }

  /** Stops every worker; requests still queued or running are rejected. */
  async close(): Promise<void> {
    this.#closed = true;
    const closedError = () => new PathembedError('INTERNAL', 'The frame decoder was closed during a decode');
    for (const task of this.#queue.splice(0)) task.reject(closedError());
    const slots = this.#slots.splice(0);
    for (const slot of slots) slot.task?.reject(closedError());
    await Promise.all(slots.map((slot) => slot.worker.terminate()));
  }

  #pump(): void {
    while (this.#queue.length > 0) {
      let slot = this.#slots.find((s) => s.task === undefined);
      if (!slot) {
        if (this.#slots.length >= this.#size) return;
        slot = this.#spawn(this.#queue[0]?.codec);
      }
      const task = this.#queue.shift()!;
      slot.task = task;
      slot.taskId = this.#nextId++;
      // A busy worker must keep the process alive until its answer arrives.
      slot.worker.ref();
      const request: WasmDecodeRequest = { id: slot.taskId, codec: task.codec, encoded: task.encoded };
      slot.worker.postMessage(request, [task.encoded.buffer as ArrayBuffer]);
    }
  }

  #spawn(preload?: WasmCodec): Slot {
    const slot: Slot = { worker: startWorker(preload), task: undefined, taskId: 0 };
    slot.worker.on('message', (reply: WasmDecodeReply) => this.#onReply(slot, reply));
    slot.worker.on('error', (err: Error) => this.#onLost(slot, `decode worker failed: ${err.message}`, err));
    slot.worker.on('exit', (code: number) => this.#onLost(slot, `decode worker exited with code ${code}`));
    slot.worker.unref();
    this.#slots.push(slot);
    return slot;
  }

  #onReply(slot: Slot, reply: WasmDecodeReply): void {
    const task = slot.task;
    if (!task || reply.id !== slot.taskId) return;
    slot.task = undefined;
    slot.worker.unref();
    if (reply.ok) {
      const { id: _id, ok: _ok, ...samples } = reply;
      task.resolve(samples);
    } else {
      task.reject(new PathembedError(reply.code, reply.message, { codec: task.codec }));
      if (reply.fatal) this.#retire(slot);
    }
    this.#pump();
  }

  /** A worker died (uncaught error or exit): its frame fails and the slot is freed for a new one. */
  #onLost(slot: Slot, message: string, cause?: Error): void {
    const index = this.#slots.indexOf(slot);
    if (index < 0) return;
    this.#slots.splice(index, 1);
    slot.task?.reject(new PathembedError('INTERNAL', message, { codec: slot.task.codec }, { cause }));
    slot.task = undefined;
    void slot.worker.terminate();
    this.#pump();
  }

  #retire(slot: Slot): void {
    const index = this.#slots.indexOf(slot);
    if (index >= 0) this.#slots.splice(index, 1);
    void slot.worker.terminate();
  }
}
