import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { WasmWorkerPool } from '../../src/codecs/wasm-worker-pool.js';

/**
 * A decode worker whose start takes a while, as loading the native JPEG decoder does, and which
 * marks a file once its start is over. A thread terminated inside koffi's load aborts the whole
 * process, which no test can survive; this one makes "terminated mid-start" visible instead: the
 * mark is missing.
 */
const SLOW_START_WORKER = `
import fs from 'node:fs';
import { parentPort, threadId } from 'node:worker_threads';
const until = Date.now() + Number(process.env.PATHEMBED_TEST_START_MS);
while (Date.now() < until);
fs.writeFileSync(process.env.PATHEMBED_TEST_STARTED_DIR + '/' + threadId, 'started');
parentPort.postMessage({ ready: true, nativeJpeg: false });
parentPort.on('message', () => undefined);
`;

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pathembed-worker-close-'));
const entry = path.join(dir, 'slow-start-worker.mjs');
fs.writeFileSync(entry, SLOW_START_WORKER);
const started = path.join(dir, 'started');
fs.mkdirSync(started);
process.env.PATHEMBED_TEST_STARTED_DIR = started;
process.env.PATHEMBED_TEST_START_MS = '300';
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('closing the decode pool', () => {
  it('lets workers still starting finish their start before stopping them', async () => {
    const pool = new WasmWorkerPool(2, { workerEntry: pathToFileURL(entry) });
    pool.warmUp();
    expect(pool.workerCount).toBe(2);
    // Well inside the 300 ms start: the threads are running their start when close is called.
    await new Promise((r) => setTimeout(r, 50));
    expect(fs.readdirSync(started)).toEqual([]);
    await pool.close();
    expect(fs.readdirSync(started)).toHaveLength(2);
    expect(pool.workerCount).toBe(0);
    await expect(pool.decode('jpeg2000', new Uint8Array(4))).rejects.toThrow(/closed/);
  });
});
