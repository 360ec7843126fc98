/**
 * A small pool of worker threads for the synchronous, CPU-heavy decoders (OpenJPEG and CharLS as
 * WASM, jpeg-lossless-decoder-js), so a decode never blocks the event loop, and for native JPEG
 * frames the main thread shares with them (`decodeNativeJpeg`). Workers start on first use or
 * `warmUp`, take one frame at a time (native JPEG: up to two queued, so a worker never waits for
 * the main thread between frames), and hand samples back as transferred buffers. An idle worker
 * does not keep the process alive (one starting does, until it is ready); a worker that crashes
 * is replaced on the next request.
 *
 * A worker that dies (an uncaught error, an exit, the thread killed) costs its frames nothing but
 * time: each goes to another worker once. A frame whose worker dies a second time is the likely
 * cause, and fails with FRAME_DECODE_ERROR, which a job's frameErrors policy can skip, instead of
 * taking the next worker down too. Native JPEG frames are not retried here: NativeJpegSharing
 * decodes a lost one on the main thread.
 *
 * A worker that dies before it says it is ready never ran a frame: its frames are not counted
 * against, and go to the next worker. When WORKER_START_FAILURES workers in a row stop before they
 * are ready, the decoder cannot start on this machine (a module that does not load, a thread
 * refused memory): the frames waiting fail with FRAME_DECODER_UNAVAILABLE, which names the
 * worker's fault and which no frameErrors policy skips, since it says nothing about the frames.
 *
 * The worker entry is `wasm-worker.ts` beside this file. Compiled by tsc it is `wasm-worker.js`
 * and plain node runs it. From TypeScript sources (vitest, tsx) a worker thread gets no loader
 * from its parent, and Node 20 does not apply `--import` hooks to a worker's entry, so the worker
 * is started from a one-line bootstrap that registers tsx's loader and then imports the .ts entry.
 */
import { Worker } from 'node:worker_threads';
import { PathembedError } from '../errors.js';
import { NativeJpegRefusal } from './native-jpeg-decoder.js';
import type {
  WasmCodec,
  WasmDecodedSamples,
  WasmDecodeReply,
  WasmDecodeRequest,
  WasmWorkerData,
  WasmWorkerReady,
} from './wasm-protocol.js';

const SOURCE_EXTENSION = '.ts';
const WORKER_BASENAME = 'wasm-worker';
/** Native JPEG frames one worker holds at once: the one it decodes and the next. */
const NATIVE_JPEG_DEPTH = 2;

/** Times a frame may be on a worker that dies before it is taken for the cause. */
const WORKER_LOSSES_PER_FRAME = 2;
/** Workers in a row that die before they are ready, after which the decoder is taken to be unable to start. */
const WORKER_START_FAILURES = 3;
/**
 * How long `close` waits for a starting worker to be ready before stopping it anyway. A start
 * takes 0.05-0.5 s; one still starting after this is hung, and waiting on would hang the caller.
 */
const WORKER_START_GRACE_MS = 30_000;

interface Task {
  codec: WasmCodec;
  /**
   * The frame's bytes, the pool's own copy (the caller's may be a view into a larger response
   * buffer, which must neither be detached nor cloned whole). Kept until the frame is answered,
   * and each send transfers a copy of it, so a frame whose worker died can go to another.
   * Native JPEG frames are not resent (module doc): theirs is transferred itself.
   */
  source: Uint8Array;
  /** Workers that died holding this frame. */
  losses: number;
  expected?: { width: number; height: number };
  target?: Uint8Array;
  /** Takes `target` back when the worker answers a failure without having kept it. */
  returnTarget?: (target: Uint8Array) => void;
  resolve: (samples: WasmDecodedSamples) => void;
  reject: (err: Error) => void;
}

interface Slot {
  worker: Worker;
  /** Requests sent and not answered yet, by id. */
  tasks: Map<number, Task>;
  /** The worker said it is ready (its preloaded decoder loaded). */
  ready: boolean;
  /** Native JPEG decodes in it. */
  nativeJpeg: boolean;
}

export interface WasmWorkerPoolOptions {
  /** Every worker loads the native JPEG decoder at start, to share JPEG frames. Default false. */
  readonly nativeJpeg?: boolean;
  /** The TurboJPEG library it loads (Config.PATHEMBED_LIBTURBOJPEG). */
  readonly libturbojpeg?: string;
  /**
   * A compiled worker entry to start instead of wasm-worker.js, speaking wasm-protocol.ts. For
   * tests of worker faults (a thread that exits on a given frame), which no real decoder does on
   * demand.
   */
  readonly workerEntry?: URL;
}

/** Starts one decode worker, from compiled JavaScript or from TypeScript sources. */
function startWorker(workerData: WasmWorkerData, customEntry?: URL): Worker {
  if (customEntry) return new Worker(customEntry, { workerData });
  const here = import.meta.url;
  if (!here.endsWith(SOURCE_EXTENSION)) {
    return new Worker(new URL(`./${WORKER_BASENAME}.js`, here), { workerData });
  }
  const entry = new URL(`./${WORKER_BASENAME}${SOURCE_EXTENSION}`, here).href;
  const tsxApi = import.meta.resolve('tsx/esm/api');
  const bootstrap = `import(${JSON.stringify(tsxApi)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry)}); });`;
  // The parent's own flags (tsx's --import, or an --eval) have no business in the worker.
  return new Worker(bootstrap, { eval: true, execArgv: [], workerData });
}

/** A ready worker with the native decoder, holding only native JPEG frames and room for one more. */
function takesNativeJpeg(slot: Slot): boolean {
  if (!slot.ready || !slot.nativeJpeg || slot.tasks.size >= NATIVE_JPEG_DEPTH) return false;
  for (const task of slot.tasks.values()) if (task.codec !== 'jpeg-native') return false;
  return true;
}

function isReady(message: WasmDecodeReply | WasmWorkerReady): message is WasmWorkerReady {
  return (message as WasmWorkerReady).ready === true;
}

/** Resolves when `worker` says it is ready, exits, or `graceMs` has passed, whichever is first. */
function startedOrGone(worker: Worker, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      worker.off('message', onMessage);
      worker.off('exit', done);
      resolve();
    };
    const onMessage = (message: WasmDecodeReply | WasmWorkerReady) => {
      if (isReady(message)) done();
    };
    const timer = setTimeout(done, graceMs);
    worker.on('message', onMessage);
    worker.on('exit', done);
  });
}

export class WasmWorkerPool {
  readonly #size: number;
  readonly #options: WasmWorkerPoolOptions;
  readonly #slots: Slot[] = [];
  readonly #queue: Task[] = [];
  readonly #readyWaiters: Array<() => void> = [];
  #nextId = 1;
  #closed = false;
  /** Workers in a row that died before they were ready; 0 again once one is. */
  #startFailures = 0;

  constructor(size: number, options: WasmWorkerPoolOptions = {}) {
    if (!Number.isInteger(size) || size < 1) {
      throw new PathembedError(
        'INVALID_ARGUMENT',
        `Decode worker count must be a positive integer, got ${size}`,
      );
    }
    this.#size = size;
    this.#options = options;
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
      this.#queue.push({ codec, source: encoded.slice(), losses: 0, resolve, reject });
      this.#pump();
    });
  }

  /**
   * How many more native JPEG frames ready workers can take now: 0 while none is ready, and while
   * other codecs' frames wait for a worker (the main thread then decodes JPEG alone, so a JPEG
   * burst never holds up a JPEG 2000 frame).
   */
  get nativeJpegCapacity(): number {
    if (this.#closed || this.#queue.length > 0) return 0;
    let free = 0;
    for (const slot of this.#slots) if (takesNativeJpeg(slot)) free += NATIVE_JPEG_DEPTH - slot.tasks.size;
    return free;
  }

  /**
   * Decodes one JPEG stream with a worker's native decoder, checking its size against `expected`
   * first; `target`, when given, is transferred and decoded into if it fits. Only while
   * `nativeJpegCapacity` > 0 (else rejects with INTERNAL). Rejects with NativeJpegRefusal when
   * the worker's decoder refuses the stream, as the main thread's would; a target the worker sends
   * back with a failure goes to `returnTarget` first.
   */
  decodeNativeJpeg(
    encoded: Uint8Array,
    expected: { width: number; height: number },
    target?: Uint8Array,
    returnTarget?: (target: Uint8Array) => void,
  ): Promise<WasmDecodedSamples> {
    let best: Slot | undefined;
    for (const slot of this.#slots) {
      if (!takesNativeJpeg(slot)) continue;
      if (!best || slot.tasks.size < best.tasks.size) best = slot;
    }
    if (this.#closed || this.#queue.length > 0 || !best) {
      return Promise.reject(
        new PathembedError('INTERNAL', 'No decode worker can take a native JPEG frame now'),
      );
    }
    const slot = best;
    return new Promise((resolve, reject) => {
      const task: Task = {
        codec: 'jpeg-native',
        source: encoded.slice(),
        losses: 0,
        expected,
        resolve,
        reject,
      };
      if (target) task.target = target;
      if (returnTarget) task.returnTarget = returnTarget;
      this.#send(slot, task);
    });
  }

  /**
   * Starts every worker now instead of on first use, so that their start (module load, WASM
   * compile of `codec`'s decoder, default JPEG; the native JPEG decoder when the pool shares JPEG
   * frames) overlaps whatever the caller does next, e.g. reading a slide's metadata or fetching
   * its frames. Workers already running are left alone.
   */
  warmUp(codec?: WasmCodec): void {
    if (this.#closed) return;
    while (this.#slots.length < this.#size) this.#spawn(codec);
  }

  /** Resolves once every worker started so far has said it is ready (or died). */
  ready(): Promise<void> {
    if (this.#slots.every((slot) => slot.ready)) return Promise.resolve();
    return new Promise((resolve) => this.#readyWaiters.push(resolve));
  }

  /**
   * Stops every worker; requests still queued or running are rejected at once. A worker still
   * starting is stopped only once it is ready (or gone): it may be inside a native module's load
   * (koffi's), and a thread terminated there aborts the whole process ("FATAL ERROR:
   * Error::ThrowAsJavaScriptException napi_throw"), as seen when a slide was opened and closed
   * within a worker's start.
   */
  async close(): Promise<void> {
    this.#closed = true;
    const closedError = () => new PathembedError('INTERNAL', 'The frame decoder was closed during a decode');
    for (const task of this.#queue.splice(0)) task.reject(closedError());
    const slots = this.#slots.splice(0);
    for (const slot of slots) for (const task of slot.tasks.values()) task.reject(closedError());
    this.#notifyReady();
    await Promise.all(
      slots.map(async (slot) => {
        if (!slot.ready) await startedOrGone(slot.worker, WORKER_START_GRACE_MS);
        await slot.worker.terminate();
      }),
    );
  }

  #pump(): void {
    while (this.#queue.length > 0) {
      let slot = this.#slots.find((s) => s.tasks.size === 0);
      if (!slot) {
        if (this.#slots.length >= this.#size) return;
        slot = this.#spawn(this.#queue[0]?.codec);
      }
      this.#send(slot, this.#queue.shift()!);
    }
  }

  #send(slot: Slot, task: Task): void {
    const id = this.#nextId++;
    const encoded = task.codec === 'jpeg-native' ? task.source : task.source.slice();
    const request: WasmDecodeRequest = { id, codec: task.codec, encoded };
    const transfer = [encoded.buffer as ArrayBuffer];
    if (task.expected) request.expected = task.expected;
    if (task.target) {
      request.target = task.target;
      transfer.push(task.target.buffer as ArrayBuffer);
    }
    try {
      slot.worker.postMessage(request, transfer);
    } catch (err) {
      // Not sent (a buffer that cannot be transferred): the frame fails, the slot stays free.
      task.reject(
        new PathembedError('INTERNAL', `A frame could not be sent to a decode worker: ${String(err)}`),
      );
      return;
    }
    slot.tasks.set(id, task);
    // A busy worker must keep the process alive until its answer arrives.
    slot.worker.ref();
  }

  #spawn(preload?: WasmCodec): Slot {
    const workerData: WasmWorkerData = {
      ...(preload ? { preload } : {}),
      ...(this.#options.nativeJpeg ? { nativeJpeg: true } : {}),
      ...(this.#options.libturbojpeg ? { libturbojpeg: this.#options.libturbojpeg } : {}),
    };
    const slot: Slot = {
      worker: startWorker(workerData, this.#options.workerEntry),
      tasks: new Map(),
      ready: false,
      nativeJpeg: false,
    };
    slot.worker.on('message', (message: WasmDecodeReply | WasmWorkerReady) => {
      if (isReady(message)) this.#onReady(slot, message);
      else this.#onReply(slot, message);
    });
    slot.worker.on('error', (err: Error) => this.#onLost(slot, `decode worker failed: ${err.message}`, err));
    slot.worker.on('exit', (code: number) => this.#onLost(slot, `decode worker exited with code ${code}`));
    // A starting worker keeps the process alive until it is ready, so that `ready()` can be awaited.
    this.#slots.push(slot);
    return slot;
  }

  #onReady(slot: Slot, message: WasmWorkerReady): void {
    slot.ready = true;
    this.#startFailures = 0;
    slot.nativeJpeg = message.nativeJpeg;
    if (slot.tasks.size === 0) slot.worker.unref();
    this.#notifyReady();
  }

  #notifyReady(): void {
    if (!this.#slots.every((slot) => slot.ready)) return;
    for (const resolve of this.#readyWaiters.splice(0)) resolve();
  }

  #onReply(slot: Slot, reply: WasmDecodeReply): void {
    const task = slot.tasks.get(reply.id);
    if (!task) return;
    slot.tasks.delete(reply.id);
    if (slot.tasks.size === 0) slot.worker.unref();
    if (reply.ok) {
      const { id: _id, ok: _ok, ...samples } = reply;
      task.resolve(samples);
      this.#pump();
      return;
    }
    if (reply.target) task.returnTarget?.(reply.target);
    if (reply.refused) {
      task.reject(new NativeJpegRefusal(reply.message));
    } else {
      task.reject(new PathembedError(reply.code, reply.message, { ...reply.details, codec: task.codec }));
      if (reply.fatal) this.#retire(slot);
    }
    this.#pump();
  }

  /**
   * A worker died (uncaught error or exit): the slot is freed for a new one, and its frames go to
   * another worker, once each; a worker that died before it was ready counts against none of them,
   * unless too many in a row have now failed to start (module doc).
   */
  #onLost(slot: Slot, message: string, cause?: Error): void {
    const index = this.#slots.indexOf(slot);
    if (index < 0) return;
    this.#slots.splice(index, 1);
    const atStart = !slot.ready;
    if (atStart) this.#startFailures++;
    const resend: Task[] = [];
    for (const task of slot.tasks.values()) {
      if (task.codec === 'jpeg-native' || this.#closed) {
        // A native JPEG frame's bytes went with it; NativeJpegSharing decodes it on the main thread.
        task.reject(new PathembedError('INTERNAL', message, { codec: task.codec }, { cause }));
      } else if (!atStart && ++task.losses >= WORKER_LOSSES_PER_FRAME) {
        task.reject(
          new PathembedError(
            'FRAME_DECODE_ERROR',
            `Decoding this ${task.codec} frame stopped the decode worker ${task.losses} times (last: ${message}): the frame is likely corrupt, or too large for the decoder`,
            { codec: task.codec, workerLosses: task.losses },
            { cause },
          ),
        );
      } else {
        resend.push(task);
      }
    }
    slot.tasks.clear();
    void slot.worker.terminate();
    if (atStart && this.#startFailures >= WORKER_START_FAILURES) {
      const failures = this.#startFailures;
      // The next frame tries afresh: what stopped these workers (memory, say) may have passed.
      this.#startFailures = 0;
      for (const task of [...resend, ...this.#queue.splice(0)]) {
        task.reject(
          new PathembedError(
            'FRAME_DECODER_UNAVAILABLE',
            `${failures} decode workers in a row stopped before they were ready (last: ${message}); the ${task.codec} decoder cannot start on this worker`,
            { codec: task.codec, workerStartFailures: failures },
            { cause },
          ),
        );
      }
    } else {
      // First in line, in the order they were sent: they have waited longest.
      this.#queue.unshift(...resend);
    }
    this.#notifyReady();
    this.#pump();
  }

  #retire(slot: Slot): void {
    const index = this.#slots.indexOf(slot);
    if (index >= 0) this.#slots.splice(index, 1);
    for (const task of slot.tasks.values()) {
      task.reject(
        new PathembedError('INTERNAL', 'The decode worker was replaced after a fatal error', {
          codec: task.codec,
        }),
      );
    }
    slot.tasks.clear();
    void slot.worker.terminate();
    this.#notifyReady();
  }
}
