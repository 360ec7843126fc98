import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { WasmWorkerPool } from '../../src/codecs/wasm-worker-pool.js';
import { isPathembedError } from '../../src/errors.js';

/**
 * A decode worker that speaks wasm-protocol.ts and dies on demand, which no real decoder does:
 * a frame starting 0xEE ends its worker every time (a poison frame), 0xEF throws out of the
 * message handler (an uncaught error), 0xDD ends the first worker that gets it only (a worker
 * lost to something else). Any other frame "decodes" to one RGB pixel: its first byte, its second
 * and its length, so every answer can be checked against its frame.
 */
const FAKE_WORKER = `
import fs from 'node:fs';
import { parentPort } from 'node:worker_threads';
// A worker that cannot start: while the file holds a positive count, each new worker takes one
// off and exits before it says it is ready (a decoder module that does not load).
const startFails = process.env.PATHEMBED_TEST_START_FAILS;
if (startFails && fs.existsSync(startFails)) {
  const left = Number(fs.readFileSync(startFails, 'utf8'));
  if (left > 0) {
    fs.writeFileSync(startFails, String(left - 1));
    process.exit(5);
  }
}
parentPort.postMessage({ ready: true, nativeJpeg: false });
parentPort.on('message', (request) => {
  const bytes = request.encoded;
  if (bytes[0] === 0xee) process.exit(7);
  if (bytes[0] === 0xef) throw new Error('decoder state corrupted');
  if (bytes[0] === 0xcc) {
    // What wasm-kernels replies when its decoder module would not load.
    parentPort.postMessage({ id: request.id, ok: false, code: 'FRAME_DECODER_UNAVAILABLE', message: 'The JPEG 2000 decoder could not be loaded in a decode worker: out of memory', fatal: true });
    return;
  }
  if (bytes[0] === 0xdd && !fs.existsSync(process.env.PATHEMBED_TEST_LOST_ONCE)) {
    fs.writeFileSync(process.env.PATHEMBED_TEST_LOST_ONCE, 'lost');
    process.exit(9);
  }
  // Slow enough that several frames are in the pool when a worker dies.
  const until = Date.now() + 5;
  while (Date.now() < until);
  const data = new Uint8Array([bytes[0], bytes[1], bytes.length & 255]);
  parentPort.postMessage({ id: request.id, ok: true, width: 1, height: 1, samplesPerPixel: 3, data }, [data.buffer]);
});
`;

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pathembed-worker-loss-'));
const entry = path.join(dir, 'fake-decode-worker.mjs');
fs.writeFileSync(entry, FAKE_WORKER);
const lostOnce = path.join(dir, 'lost-once');
process.env.PATHEMBED_TEST_LOST_ONCE = lostOnce;
const startFails = path.join(dir, 'start-fails');
process.env.PATHEMBED_TEST_START_FAILS = startFails;
/** The next `count` workers to start exit before they are ready. */
function failStarts(count: number): void {
  fs.writeFileSync(startFails, String(count));
}
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function frame(first: number, second: number, length = 40): Uint8Array {
  const bytes = new Uint8Array(length);
  bytes[0] = first;
  bytes[1] = second;
  return bytes;
}

function pool(size: number): WasmWorkerPool {
  return new WasmWorkerPool(size, { workerEntry: pathToFileURL(entry) });
}

describe('decode workers that die', () => {
  it('a frame whose worker was lost goes to another worker, and so do the frames queued behind it', async () => {
    fs.rmSync(lostOnce, { force: true });
    const p = pool(2);
    try {
      const frames = [frame(1, 1), frame(2, 2), frame(0xdd, 3, 77), frame(4, 4), frame(5, 5), frame(6, 6)];
      const answers = await Promise.all(frames.map((f) => p.decode('jpeg2000', f)));
      answers.forEach((a, i) => {
        expect([...a.data], `frame ${i}`).toEqual([frames[i]![0], frames[i]![1], frames[i]!.length]);
      });
      expect(fs.existsSync(lostOnce)).toBe(true);
      // The caller's bytes were never detached, even the lost frame's.
      expect(frames[2]!.byteLength).toBe(77);
      expect(p.workerCount).toBeLessThanOrEqual(2);
    } finally {
      await p.close();
    }
  });

  it('a frame that ends every worker it reaches fails with FRAME_DECODE_ERROR after two, and the rest decode', async () => {
    const p = pool(2);
    try {
      const good = [frame(1, 1), frame(2, 2), frame(3, 3), frame(4, 4)];
      const results = await Promise.allSettled([
        p.decode('jpeg2000', good[0]!),
        p.decode('jpeg-ls', frame(0xee, 0)),
        ...good.slice(1).map((f) => p.decode('jpeg2000', f)),
      ]);
      const poisoned = results[1]!;
      expect(poisoned.status).toBe('rejected');
      const err = (poisoned as PromiseRejectedResult).reason;
      expect(isPathembedError(err, 'FRAME_DECODE_ERROR'), String(err)).toBe(true);
      expect(err.message).toMatch(
        /jpeg-ls frame stopped the decode worker 2 times \(last: decode worker exited with code 7\)/,
      );
      expect(err.details).toMatchObject({ codec: 'jpeg-ls', workerLosses: 2 });
      const decoded = [results[0]!, ...results.slice(2)];
      decoded.forEach((r, i) => {
        expect(r.status, `frame ${i}`).toBe('fulfilled');
        const f = good[i]!;
        expect([...(r as PromiseFulfilledResult<{ data: Uint8Array }>).value.data]).toEqual([
          f[0],
          f[1],
          f.length,
        ]);
      });
      // The pool is whole again: a later frame decodes.
      const after = await p.decode('jpeg2000', frame(9, 9));
      expect([...after.data]).toEqual([9, 9, 40]);
    } finally {
      await p.close();
    }
  });

  it('an uncaught error in a worker is a lost worker too: retried once, then the frame fails', async () => {
    const p = pool(1);
    try {
      const err = await p.decode('jpeg2000', frame(0xef, 0)).catch((e: unknown) => e);
      expect(isPathembedError(err, 'FRAME_DECODE_ERROR'), String(err)).toBe(true);
      expect((err as Error).message).toContain('decode worker failed: decoder state corrupted');
      const after = await p.decode('jpeg2000', frame(8, 8, 12));
      expect([...after.data]).toEqual([8, 8, 12]);
    } finally {
      await p.close();
    }
  });

  it('a worker that dies before it is ready does not count against its frame', async () => {
    fs.rmSync(lostOnce, { force: true });
    // The first worker never starts; the frame then ends the next one (a loss it caused once),
    // and decodes on the third. Counting the failed start too would have failed it as corrupt.
    failStarts(1);
    const p = pool(1);
    try {
      const answer = await p.decode('jpeg2000', frame(0xdd, 3, 61));
      expect([...answer.data]).toEqual([0xdd, 3, 61]);
      expect(fs.readFileSync(startFails, 'utf8')).toBe('0');
      expect(fs.existsSync(lostOnce)).toBe(true);
    } finally {
      await p.close();
    }
  });

  it('workers that cannot start fail the frames with FRAME_DECODER_UNAVAILABLE, never as corrupt frames', async () => {
    failStarts(3);
    const p = pool(1);
    try {
      const results = await Promise.allSettled([
        p.decode('jpeg2000', frame(1, 1)),
        p.decode('jpeg-ls', frame(2, 2)),
      ]);
      for (const r of results) {
        expect(r.status).toBe('rejected');
        const err = (r as PromiseRejectedResult).reason;
        expect(isPathembedError(err, 'FRAME_DECODER_UNAVAILABLE'), String(err)).toBe(true);
        expect(err.message).toMatch(
          /3 decode workers in a row stopped before they were ready \(last: decode worker exited with code 5\)/,
        );
      }
      // What stopped them has passed: the next frame starts a worker and decodes.
      const after = await p.decode('jpeg2000', frame(7, 7, 20));
      expect([...after.data]).toEqual([7, 7, 20]);
    } finally {
      await p.close();
    }
  });

  it('a decoder module that does not load fails its frame with FRAME_DECODER_UNAVAILABLE and replaces the worker', async () => {
    const p = pool(1);
    try {
      const err = await p.decode('jpeg2000', frame(0xcc, 0)).catch((e: unknown) => e);
      expect(isPathembedError(err, 'FRAME_DECODER_UNAVAILABLE'), String(err)).toBe(true);
      expect((err as Error).message).toContain('could not be loaded');
      const after = await p.decode('jpeg2000', frame(5, 5, 30));
      expect([...after.data]).toEqual([5, 5, 30]);
    } finally {
      await p.close();
    }
  });

  it('frames still waiting when the pool closes are refused, not resent', async () => {
    const p = pool(1);
    const pending = p.decode('jpeg2000', frame(1, 1)).catch((e: unknown) => e);
    await p.close();
    const err = await pending;
    expect(isPathembedError(err, 'INTERNAL'), String(err)).toBe(true);
    expect((err as Error).message).toMatch(/closed/);
  });
});
