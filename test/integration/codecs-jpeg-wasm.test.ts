/**
 * The JPEG decoder pathembed uses (libjpeg-turbo as WASM in the decode workers) against the one it
 * replaced (sharp's native libjpeg-turbo): every stored frame of the real slides, decoded by the
 * WASM kernel itself (no sharp fallback in between), must be byte-for-byte what sharp decodes.
 * Covers the CMU-1 region re-encoded by OrthancWSIDicomizer (YCbCr JFIF, every level), the same
 * region's Aperio tiles copied as they are (RGB-coded, Adobe transform 0) and the CAMELYON level
 * (YBR_FULL_422 from another encoder).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  CAMELYON_DCM,
  CMU_SVS,
  ensureFixture,
  FIXTURES,
  REPO_ROOT,
} from '../../scripts/dev-services/fixtures.js';
import { decodeWithSharp } from '../../src/codecs/jpeg.js';
import { runKernel } from '../../src/codecs/wasm-kernels.js';
import { WasmWorkerPool } from '../../src/codecs/wasm-worker-pool.js';
import { type DicomJsonDataset, num, str } from '../../src/dicom-json.js';
import { isPathembedError } from '../../src/errors.js';
import { TransferSyntax } from '../../src/uids.js';
import { LocalFrameSource } from '../../src/wsi/local-frame-source.js';

const SOP_INSTANCE_UID = '00080018';
const NUMBER_OF_FRAMES = '00280008';
const TRANSFER_SYNTAX_UID = '00020010';

interface FrameSet {
  name: string;
  frames: Uint8Array[];
}

async function framesOf(name: string, folder: string): Promise<FrameSet> {
  const source = await LocalFrameSource.open(folder);
  const frames: Uint8Array[] = [];
  try {
    const metadata: DicomJsonDataset[] = await source.seriesMetadata();
    for (const instance of metadata) {
      expect(str(instance, TRANSFER_SYNTAX_UID)).toBe(TransferSyntax.JpegBaseline);
      const count = num(instance, NUMBER_OF_FRAMES) ?? 1;
      const indices = Array.from({ length: count }, (_, i) => i);
      const encoded = await source.fetchFrames(str(instance, SOP_INSTANCE_UID)!, indices);
      frames.push(...encoded.map((f) => f.data));
    }
  } finally {
    await source.close();
  }
  return { name, frames };
}

async function wasmDecode(encoded: Uint8Array) {
  const reply = await runKernel({ id: 1, codec: 'jpeg', encoded });
  if (!reply.ok) throw new Error(`${reply.code}: ${reply.message}`);
  return reply;
}

describe('JPEG through libjpeg-turbo WASM: the same bytes as sharp on real slides', () => {
  const sets: FrameSet[] = [];

  beforeAll(async () => {
    const cmu = FIXTURES.find((f) => f.name === 'cmu-jpeg')!;
    const camelyon = FIXTURES.find((f) => f.name === 'camelyon')!;
    sets.push(await framesOf('cmu-jpeg (dicomizer, YCbCr)', await ensureFixture(cmu)));
    sets.push(await framesOf('camelyon (YBR_FULL_422)', await ensureFixture(camelyon)));
    // Without --reencode the dicomizer copies Aperio's RGB-coded JPEG tiles byte for byte.
    const aperio = path.join(REPO_ROOT, '.cache', 'codecs-jpeg-wasm', 'aperio');
    fs.rmSync(aperio, { recursive: true, force: true });
    fs.mkdirSync(aperio, { recursive: true });
    execFileSync('OrthancWSIDicomizer', [`--folder=${aperio}`, '--threads=1', '--pyramid=0', CMU_SVS], {
      stdio: 'pipe',
    });
    sets.push(await framesOf('aperio tiles (RGB-coded)', aperio));
    expect(fs.existsSync(CAMELYON_DCM)).toBe(true);
  }, 120_000);

  it('decodes every frame to exactly the samples sharp decodes', async () => {
    const counts: Record<string, number> = {};
    for (const set of sets) {
      expect(set.frames.length).toBeGreaterThan(0);
      let same = 0;
      for (const [i, frame] of set.frames.entries()) {
        const wasm = await wasmDecode(frame);
        const native = await decodeWithSharp(frame);
        expect([wasm.width, wasm.height, wasm.samplesPerPixel], `${set.name} frame ${i}`).toEqual([
          native.width,
          native.height,
          native.samplesPerPixel,
        ]);
        if (Buffer.compare(wasm.data, native.data) === 0) same++;
      }
      counts[set.name] = same;
    }
    expect(counts).toEqual(Object.fromEntries(sets.map((s) => [s.name, s.frames.length])));
  }, 120_000);

  it('refuses truncated and corrupt streams with FRAME_DECODE_ERROR, not a grey fill', async () => {
    const frame = sets[0].frames[0];
    const truncated = frame.subarray(0, frame.length >> 1);
    const corrupt = Uint8Array.from(frame);
    corrupt.fill(7, 700, 900);
    for (const bad of [truncated, corrupt]) {
      const reply = await runKernel({ id: 2, codec: 'jpeg', encoded: bad });
      expect(reply.ok).toBe(false);
      if (!reply.ok) expect(reply.code).toBe('FRAME_DECODE_ERROR');
    }
    const thrown = await wasmDecode(truncated).catch((e: unknown) => e);
    expect(thrown).toBeInstanceOf(Error);
    expect(isPathembedError(thrown)).toBe(false);
  });
});

describe('decode pool warm-up', () => {
  it("starts every worker at once, and they decode JPEG to the kernel's bytes", async () => {
    const camelyon = await framesOf(
      'camelyon',
      await ensureFixture(FIXTURES.find((f) => f.name === 'camelyon')!),
    );
    const pool = new WasmWorkerPool(2);
    try {
      expect(pool.workerCount).toBe(0);
      pool.warmUp();
      expect(pool.workerCount).toBe(2);
      pool.warmUp();
      expect(pool.workerCount).toBe(2);
      const decoded = await Promise.all(camelyon.frames.map((f) => pool.decode('jpeg', f)));
      for (const [i, frame] of camelyon.frames.entries()) {
        expect(Buffer.compare(decoded[i].data, (await wasmDecode(frame)).data), `frame ${i}`).toBe(0);
      }
      expect(pool.workerCount).toBe(2);
    } finally {
      await pool.close();
    }
    pool.warmUp();
    expect(pool.workerCount).toBe(0);
  }, 60_000);
});
