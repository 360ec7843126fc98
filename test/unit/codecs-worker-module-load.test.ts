import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { WasmWorkerPool } from '../../src/codecs/wasm-worker-pool.js';
import { isPathembedError } from '../../src/errors.js';

/**
 * The real decode worker (wasm-worker.ts and its kernels), started in a thread where one decoder
 * package cannot be loaded: its `require` fails, as it would for a package missing from the
 * install or a module the thread has no memory to instantiate. No real module fails on demand,
 * so the test entry makes Node's CommonJS loader refuse that one package, then runs the worker
 * as the pool starts it from TypeScript sources.
 */
const MISSING = '@cornerstonejs/codec-openjpeg';
const ENTRY = `
import Module from 'node:module';
const load = Module._load;
Module._load = function (request, ...rest) {
  if (request.startsWith(${JSON.stringify(MISSING)})) throw new Error('Cannot find module ' + request + ' (removed for this test)');
  return load.call(this, request, ...rest);
};
const tsx = await import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))});
tsx.register();
await import(${JSON.stringify(new URL('../../src/codecs/wasm-worker.ts', import.meta.url).href)});
`;

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pathembed-worker-module-'));
const entry = path.join(dir, 'worker-without-openjpeg.mjs');
fs.writeFileSync(entry, ENTRY);
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('a decode worker whose decoder module will not load', () => {
  it('starts anyway, answers that codec FRAME_DECODER_UNAVAILABLE naming the module, and decodes the others', async () => {
    const pool = new WasmWorkerPool(1, { workerEntry: pathToFileURL(entry) });
    try {
      // Started for a JPEG 2000 slide: the worker preloads OpenJPEG, which fails, and must still start.
      pool.warmUp('jpeg2000');
      await pool.ready();
      expect(pool.workerCount).toBe(1);
      const failure = await pool.decode('jpeg2000', new Uint8Array([0xff, 0x4f, 0xff, 0x51])).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(isPathembedError(failure) && failure.code).toBe('FRAME_DECODER_UNAVAILABLE');
      expect((failure as Error).message).toMatch(
        /The JPEG 2000 decoder could not be loaded in a decode worker: .*Cannot find module @cornerstonejs\/codec-openjpeg/,
      );
      // The worker was replaced; the new one decodes a JPEG frame as sharp does.
      const rgb = Buffer.alloc(48 * 32 * 3);
      for (let i = 0; i < rgb.length; i++) rgb[i] = (i * 7) % 251;
      const jpeg = await sharp(rgb, { raw: { width: 48, height: 32, channels: 3 } })
        .jpeg({ quality: 90 })
        .toBuffer();
      const decoded = await pool.decode('jpeg', jpeg);
      const expected = await sharp(jpeg).raw().toBuffer();
      expect({ width: decoded.width, height: decoded.height }).toEqual({ width: 48, height: 32 });
      expect(Buffer.from(decoded.data).equals(expected)).toBe(true);
    } finally {
      await pool.close();
    }
  });
});
