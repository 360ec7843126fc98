/**
 * Entry point of a decode worker thread: receives one request at a time from the pool, runs the
 * matching kernel and sends the samples back, transferring their buffer instead of copying it.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { preloadKernels, runKernel } from './wasm-kernels.js';
import type { WasmCodec, WasmDecodeRequest } from './wasm-protocol.js';

const port = parentPort;
if (!port) throw new Error('wasm-worker must be started as a worker thread by WasmWorkerPool');

// The decoder of the slide being read (the pool says which) compiles while its frames are fetched.
preloadKernels((workerData as { preload?: WasmCodec } | undefined)?.preload);

port.on('message', (request: WasmDecodeRequest) => {
  void runKernel(request).then((reply) => {
    port.postMessage(reply, reply.ok ? [reply.data.buffer as ArrayBuffer] : []);
  });
});
