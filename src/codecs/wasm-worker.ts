/**
 * Entry point of a decode worker thread: receives one request at a time from the pool, runs the
 * matching kernel and sends the samples back, transferring their buffer instead of copying it.
 * Says once when its preloaded decoder is ready, so that the pool gives it native JPEG frames only
 * then.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { nativeJpegReady, preloadKernels, runKernel, useLibTurboJpeg } from './wasm-kernels.js';
import type { WasmDecodeRequest, WasmWorkerData, WasmWorkerReady } from './wasm-protocol.js';

const port = parentPort;
if (!port) throw new Error('wasm-worker must be started as a worker thread by WasmWorkerPool');

const data = (workerData ?? {}) as WasmWorkerData;
useLibTurboJpeg(data.libturbojpeg);
// The decoder of the slide being read (the pool says which) compiles while its frames are fetched.
preloadKernels(data.preload);
const ready: WasmWorkerReady = { ready: true, nativeJpeg: data.nativeJpeg === true && nativeJpegReady() };
port.postMessage(ready);

port.on('message', (request: WasmDecodeRequest) => {
  void runKernel(request).then((reply) => {
    const transfer = reply.ok ? [reply.data.buffer] : reply.target ? [reply.target.buffer] : [];
    port.postMessage(reply, transfer as ArrayBuffer[]);
  });
});
