/**
 * pathembed's three JPEG decoders against each other: the machine's libjpeg-turbo through koffi
 * (NativeJpegDecoder, the default), libjpeg-turbo as WASM in the decode workers, and sharp (the
 * last resort). Every stored frame of the real slides, decoded by each one itself (no fallback in
 * between), must be the same bytes. Covers the CMU-1 region re-encoded by OrthancWSIDicomizer
 * (YCbCr JFIF, every level), the same region's Aperio tiles copied as they are (RGB-coded, Adobe
 * transform 0) and the CAMELYON level (YBR_FULL_422 from another encoder). Then what the native
 * path must do beyond decoding: refuse corrupt streams rather than fill them, keep the benign
 * warning's pixels, read a frame that is a view into a larger response, give each frame its own
 * buffer, and how FrameDecoder chooses between the native and WASM decoders
 * (PATHEMBED_JPEG_DECODER).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CAMELYON_DCM,
  CMU_SVS,
  ensureFixture,
  FIXTURES,
  REPO_ROOT,
} from '../../scripts/dev-services/fixtures.js';
import { FrameBufferPool } from '../../src/codecs/frame-buffer-pool.js';
import { FrameDecoder } from '../../src/codecs/frame-decoder.js';
import { decodeWithSharp } from '../../src/codecs/jpeg.js';
import { NativeJpegDecoder, NativeJpegRefusal } from '../../src/codecs/native-jpeg-decoder.js';
import { NativeJpegSharing } from '../../src/codecs/native-jpeg-sharing.js';
import { runKernel } from '../../src/codecs/wasm-kernels.js';
import { WasmWorkerPool } from '../../src/codecs/wasm-worker-pool.js';
import { loadConfig } from '../../src/config.js';
import { type DicomJsonDataset, num, str } from '../../src/dicom-json.js';
import { dicomWebOptions } from '../../src/domain-options.js';
import { isPathembedError } from '../../src/errors.js';
import { TransferSyntax } from '../../src/uids.js';
import { LocalFrameSource } from '../../src/wsi/local-frame-source.js';
import { SlideOpener } from '../../src/wsi/slide-opener.js';

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

/** The cmu-jpeg fixture's frames: 240 px YCbCr tiles. */
const desc = {
  rows: 240,
  columns: 240,
  samplesPerPixel: 3,
  photometricInterpretation: 'YBR_FULL_422',
  bitsAllocated: 8,
};

async function wasmDecode(encoded: Uint8Array) {
  const reply = await runKernel({ id: 1, codec: 'jpeg', encoded });
  if (!reply.ok) throw new Error(`${reply.code}: ${reply.message}`);
  return reply;
}

/** Debian's and Ubuntu's name of the TurboJPEG library (.ci/run installs libturbojpeg0). */
const LIBTURBOJPEG = 'libturbojpeg.so.0';

describe('JPEG through the native, WASM and sharp decoders: the same bytes on real slides', () => {
  const sets: FrameSet[] = [];

  beforeAll(async () => {
    const cmu = FIXTURES.find((f) => f.name === 'cmu-jpeg')!;
    const camelyon = FIXTURES.find((f) => f.name === 'camelyon')!;
    sets.push(await framesOf('cmu-jpeg (dicomizer, YCbCr)', await ensureFixture(cmu)));
    sets.push(await framesOf('camelyon (YBR_FULL_422)', await ensureFixture(camelyon)));
    // Without --reencode the dicomizer copies Aperio's RGB-coded JPEG tiles byte for byte.
    const aperio = path.join(REPO_ROOT, '.cache', 'codecs-jpeg-decoders', 'aperio');
    fs.rmSync(aperio, { recursive: true, force: true });
    fs.mkdirSync(aperio, { recursive: true });
    execFileSync('OrthancWSIDicomizer', [`--folder=${aperio}`, '--threads=1', '--pyramid=0', CMU_SVS], {
      stdio: 'pipe',
    });
    sets.push(await framesOf('aperio tiles (RGB-coded)', aperio));
    expect(fs.existsSync(CAMELYON_DCM)).toBe(true);
  }, 120_000);

  it('decodes every frame to exactly the samples sharp decodes, natively and in WASM', async () => {
    const native = new NativeJpegDecoder(LIBTURBOJPEG);
    const counts: Record<string, { wasm: number; native: number }> = {};
    try {
      for (const set of sets) {
        expect(set.frames.length).toBeGreaterThan(0);
        const same = { wasm: 0, native: 0 };
        for (const [i, frame] of set.frames.entries()) {
          const reference = await decodeWithSharp(frame);
          const shape = [reference.width, reference.height, reference.samplesPerPixel];
          const wasm = await wasmDecode(frame);
          const fromNative = native.decode(frame);
          expect([wasm.width, wasm.height, wasm.samplesPerPixel], `${set.name} frame ${i}`).toEqual(shape);
          expect(
            [fromNative.width, fromNative.height, fromNative.samplesPerPixel],
            `${set.name} frame ${i}`,
          ).toEqual(shape);
          if (Buffer.compare(wasm.data, reference.data) === 0) same.wasm++;
          if (Buffer.compare(fromNative.data, reference.data) === 0) same.native++;
        }
        counts[set.name] = same;
      }
    } finally {
      native.close();
    }
    expect(counts).toEqual(
      Object.fromEntries(sets.map((s) => [s.name, { wasm: s.frames.length, native: s.frames.length }])),
    );
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

describe('the native JPEG decoder beyond clean frames', () => {
  let frames: Uint8Array[];
  let native: NativeJpegDecoder;

  beforeAll(async () => {
    frames = (await framesOf('cmu-jpeg', await ensureFixture(FIXTURES.find((f) => f.name === 'cmu-jpeg')!)))
      .frames;
    native = new NativeJpegDecoder(LIBTURBOJPEG);
  }, 120_000);

  afterAll(() => native.close());

  it('refuses truncated and corrupt streams instead of filling them, and FrameDecoder fails them with FRAME_DECODE_ERROR', async () => {
    const frame = frames[0];
    const truncated = frame.subarray(0, frame.length >> 1);
    const corrupt = Uint8Array.from(frame);
    corrupt.fill(7, 700, 900);
    const decoder = new FrameDecoder({ decodeThreads: 1, jpegDecoder: 'native' });
    try {
      for (const [name, bad] of Object.entries({ truncated, corrupt })) {
        let refused: unknown;
        try {
          native.decode(bad);
        } catch (e) {
          refused = e;
        }
        expect(refused, name).toBeInstanceOf(NativeJpegRefusal);
        expect((refused as Error).message, name).toMatch(/^JPEG decode failed: .+/);
        const failed = await decoder.decode(bad, TransferSyntax.JpegBaseline, desc).catch((e: unknown) => e);
        expect(isPathembedError(failed, 'FRAME_DECODE_ERROR'), `${name}: ${String(failed)}`).toBe(true);
      }
    } finally {
      await decoder.close();
    }
  });

  it('refuses a stream whose header claims another size before allocating anything, and FrameDecoder says both sizes', async () => {
    // A corrupt SOF0 that claims 60000 x 60000 (10.8 GB as RGB) must not be allocated.
    const huge = Uint8Array.from(frames[1]);
    let sof = 2;
    while (sof < huge.length - 9 && !(huge[sof] === 0xff && huge[sof + 1] === 0xc0)) sof++;
    expect(sof).toBeLessThan(huge.length - 9);
    huge.set([0xea, 0x60, 0xea, 0x60], sof + 5);
    let allocated = 0;
    const allocate = (bytes: number) => {
      allocated += bytes;
      return new Uint8Array(bytes);
    };
    let err: unknown;
    try {
      native.decode(huge, allocate, { width: 240, height: 240 });
    } catch (e) {
      err = e;
    }
    expect(isPathembedError(err, 'FRAME_DECODE_ERROR')).toBe(true);
    expect(allocated).toBe(0);
    const decoder = new FrameDecoder({ decodeThreads: 1, jpegDecoder: 'native' });
    try {
      const failed = await decoder.decode(huge, TransferSyntax.JpegBaseline, desc).catch((e: unknown) => e);
      expect(isPathembedError(failed, 'FRAME_DECODE_ERROR')).toBe(true);
      expect((failed as Error).message).toMatch(/60000x60000 but the header says 240x240/);
    } finally {
      await decoder.close();
    }
  });

  it('decodes the next frame right after any refusal (a failed decompressor is replaced)', () => {
    const reference = native.decode(frames[4]).data;
    const bad = [
      Uint8Array.from(frames[1]).fill(0x11, 2, 40),
      frames[1].subarray(0, 100),
      Uint8Array.from([0xff, 0xd8, 0xff, 0xd8, 0x00]),
    ];
    for (const [i, stream] of bad.entries()) {
      expect(() => native.decode(stream), `bad stream ${i}`).toThrow();
      expect(Buffer.compare(native.decode(frames[4]).data, reference), `after bad stream ${i}`).toBe(0);
    }
  });

  it('refuses extraneous bytes before a restart marker inside the scan: data was skipped there', async () => {
    // A tile with a restart marker after every MCU (vips jpegsave --restart-interval 1).
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pathembed-rst-'));
    try {
      const rgb = await decodeWithSharp(frames[5]);
      const png = path.join(dir, 'tile.png');
      const jpg = path.join(dir, 'tile.jpg');
      await sharp(Buffer.from(rgb.data), {
        raw: { width: rgb.width, height: rgb.height, channels: 3 },
      }).toFile(png);
      execFileSync('vips', ['jpegsave', png, jpg, '--Q', '90', '--restart-interval', '1']);
      const stream = new Uint8Array(fs.readFileSync(jpg));
      let rst = stream.indexOf(0xda) + 1;
      while (
        rst < stream.length - 1 &&
        !(stream[rst] === 0xff && stream[rst + 1]! >= 0xd0 && stream[rst + 1]! <= 0xd7)
      )
        rst++;
      expect(rst).toBeLessThan(stream.length - 1);
      const padded = new Uint8Array(stream.length + 3);
      padded.set(stream.subarray(0, rst), 0);
      padded.set([0x00, 0x11, 0x22], rst);
      padded.set(stream.subarray(rst), rst + 3);
      expect(native.decode(stream).width).toBe(240);
      expect(() => native.decode(padded)).toThrow(/extraneous bytes before marker 0xd[0-7]/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("keeps the pixels of a stream whose only warning is Aperio's extraneous bytes before EOI", async () => {
    const frame = frames[5];
    let eoi = frame.length - 2;
    while (eoi > 0 && !(frame[eoi] === 0xff && frame[eoi + 1] === 0xd9)) eoi--;
    const padded = new Uint8Array(frame.length + 3);
    padded.set(frame.subarray(0, eoi), 0);
    padded.set([0x00, 0x11, 0x22], eoi);
    padded.set(frame.subarray(eoi), eoi + 3);
    const clean = native.decode(frame);
    const odd = native.decode(padded);
    expect(Buffer.compare(odd.data, clean.data)).toBe(0);
    // The decompressor that reported the warning decodes the next frame as before.
    expect(Buffer.compare(native.decode(frame).data, clean.data)).toBe(0);
  });

  it('decodes a frame that is a view at an odd offset into a larger response, leaving the response as it was', async () => {
    const frame = frames[3];
    const response = new Uint8Array(frame.length + 101);
    response.fill(0xa5);
    response.set(frame, 37);
    const before = Uint8Array.from(response);
    const view = response.subarray(37, 37 + frame.length);
    const fromView = native.decode(view);
    expect(Buffer.compare(fromView.data, (await decodeWithSharp(frame)).data)).toBe(0);
    expect(Buffer.compare(response, before)).toBe(0);
  });

  it('gives every frame its own samples, one decompressor after another frame', async () => {
    const batch = frames.slice(0, 64);
    const decoded = batch.map((f) => native.decode(f));
    for (const [i, f] of batch.entries()) {
      expect(Buffer.compare(decoded[i].data, (await decodeWithSharp(f)).data), `frame ${i}`).toBe(0);
    }
    // Not all alike: the check above would pass trivially on a blank slide.
    expect(new Set(decoded.map((s) => Buffer.from(s.data).toString('base64'))).size).toBeGreaterThan(
      batch.length / 2,
    );
  });

  it('decodes grey streams as one channel, as sharp does, and refuses CMYK', async () => {
    const rgb = await decodeWithSharp(frames[2]);
    const grey = new Uint8Array(
      await sharp(Buffer.from(rgb.data), { raw: { width: rgb.width, height: rgb.height, channels: 3 } })
        .toColourspace('b-w')
        .jpeg({ quality: 90 })
        .toBuffer(),
    );
    const fromNative = native.decode(grey);
    const reference = await decodeWithSharp(grey);
    expect([fromNative.samplesPerPixel, reference.samplesPerPixel]).toEqual([1, 1]);
    expect(Buffer.compare(fromNative.data, reference.data)).toBe(0);
    const cmyk = new Uint8Array(
      await sharp(Buffer.from(rgb.data), { raw: { width: rgb.width, height: rgb.height, channels: 3 } })
        .toColourspace('cmyk')
        .jpeg({ quality: 90 })
        .toBuffer(),
    );
    expect(() => native.decode(cmyk)).toThrow(NativeJpegRefusal);
  });

  it('refuses decodes once closed', () => {
    const decoder = new NativeJpegDecoder(LIBTURBOJPEG);
    expect(decoder.decode(frames[0]).width).toBe(240);
    decoder.close();
    decoder.close();
    expect(() => decoder.decode(frames[0])).toThrow(/closed/);
  });
});

describe('FrameDecoder: which libjpeg-turbo decodes JPEG (PATHEMBED_JPEG_DECODER)', () => {
  let frames: Uint8Array[];
  beforeAll(async () => {
    frames = (
      await framesOf('cmu-jpeg', await ensureFixture(FIXTURES.find((f) => f.name === 'cmu-jpeg')!))
    ).frames.slice(0, 8);
  }, 120_000);

  async function decodeAll(decoder: FrameDecoder): Promise<Buffer[]> {
    try {
      return await Promise.all(
        frames.map(async (f) =>
          Buffer.from((await decoder.decode(f, TransferSyntax.JpegBaseline, desc)).data),
        ),
      );
    } finally {
      await decoder.close();
    }
  }

  it('auto takes the native decoder where the library loads; native and wasm give the same RGB', async () => {
    const auto = new FrameDecoder({ decodeThreads: 2 });
    const wasm = new FrameDecoder({ decodeThreads: 2, jpegDecoder: 'wasm' });
    expect([auto.jpegDecoder, wasm.jpegDecoder]).toEqual(['native', 'wasm']);
    expect(auto.nativeJpegUnavailable).toBeUndefined();
    const [a, w] = [await decodeAll(auto), await decodeAll(wasm)];
    for (const [i, frame] of a.entries()) expect(Buffer.compare(frame, w[i]), `frame ${i}`).toBe(0);
  });

  it('auto falls back to WASM without the library; native refuses to start, naming the library and the remedies', async () => {
    const missing = '/nonexistent/libturbojpeg.so.0';
    const auto = new FrameDecoder({ decodeThreads: 1, libturbojpeg: missing });
    expect(auto.jpegDecoder).toBe('wasm');
    expect(auto.nativeJpegUnavailable).toContain(missing);
    expect((await decodeAll(auto)).length).toBe(frames.length);
    let err: unknown;
    try {
      new FrameDecoder({ decodeThreads: 1, jpegDecoder: 'native', libturbojpeg: missing });
    } catch (e) {
      err = e;
    }
    expect(isPathembedError(err, 'JPEG_DECODER_UNAVAILABLE')).toBe(true);
    expect((err as Error).message).toContain(missing);
    expect((err as Error).message).toMatch(
      /libturbojpeg0.*PATHEMBED_LIBTURBOJPEG.*PATHEMBED_JPEG_DECODER=wasm/,
    );
  });

  it('a slide opener without the library reads with WASM and warns once, naming the reason', async () => {
    const lines: { level: number; msg: string; reason?: string }[] = [];
    const logger = pino(
      { level: 'info' },
      new Writable({
        write(chunk, _enc, done) {
          lines.push(JSON.parse(String(chunk)));
          done();
        },
      }),
    );
    const missing = '/nonexistent/libturbojpeg.so.0';
    const openerWith = (reading: { libturbojpeg?: string }) =>
      new SlideOpener({
        dicomWeb: dicomWebOptions(loadConfig({})),
        reading: { frameCacheBytes: 1 << 24, decodeThreads: 1, levelTolerance: 0.1, ...reading },
        logger,
      });
    const folder = await ensureFixture(FIXTURES.find((f) => f.name === 'cmu-jpeg')!);
    const readPatch = async (opener: SlideOpener) => {
      const reader = await opener.openSlideReader({ kind: 'local', folder });
      try {
        return (await reader.reader.readRegion(reader.slide.level(0), 100, 100, 224, 224)).data;
      } finally {
        await reader.close();
      }
    };
    const native = await readPatch(openerWith({}));
    expect(lines.filter((l) => l.level === 40)).toHaveLength(0);
    const slow = openerWith({ libturbojpeg: missing });
    for (let i = 0; i < 2; i++) expect(Buffer.compare(await readPatch(slow), native)).toBe(0);
    const warnings = lines.filter((l) => l.level === 40);
    expect(warnings).toHaveLength(1);
    expect(warnings[0].msg).toBe('JPEG frames decode with the slower WASM build');
    expect(warnings[0].reason).toContain(missing);
  });

  it('refuses a library that is not TurboJPEG with JPEG_DECODER_UNAVAILABLE', () => {
    let err: unknown;
    try {
      new FrameDecoder({ decodeThreads: 1, jpegDecoder: 'native', libturbojpeg: 'libz.so.1' });
    } catch (e) {
      err = e;
    }
    expect(isPathembedError(err, 'JPEG_DECODER_UNAVAILABLE')).toBe(true);
    expect((err as Error).message).toMatch(/tjInitDecompress/);
  });
});

describe('FrameDecoder warm-up: workers only for the codecs that decode in them', () => {
  it('starts them for JPEG (native or WASM) and JPEG 2000, none for uncompressed frames', async () => {
    const native = new FrameDecoder({ decodeThreads: 2 });
    const wasm = new FrameDecoder({ decodeThreads: 2, jpegDecoder: 'wasm' });
    const plain = new FrameDecoder({ decodeThreads: 2 });
    try {
      plain.warmUp('1.2.840.10008.1.2.1');
      expect(plain.workerCount).toBe(0);
      native.warmUp(TransferSyntax.JpegBaseline);
      expect(native.workerCount).toBe(2);
      await native.ready();
      wasm.warmUp(TransferSyntax.JpegBaseline);
      expect(wasm.workerCount).toBe(2);
      plain.warmUp('1.2.840.10008.1.2.4.90');
      expect(plain.workerCount).toBe(2);
    } finally {
      await Promise.all([native.close(), wasm.close(), plain.close()]);
    }
  });
});

/** A FrameDecoder with two workers, started and ready to share JPEG frames. */
async function readyDecoder(reuseBytes = 0): Promise<FrameDecoder> {
  const decoder = new FrameDecoder({ decodeThreads: 2, reuseBytes });
  decoder.warmUp();
  await decoder.ready();
  return decoder;
}

describe('native JPEG frames shared with the decode workers', () => {
  let frames: Uint8Array[] = [];
  beforeAll(async () => {
    frames = (await framesOf('cmu-jpeg', await ensureFixture(FIXTURES.find((f) => f.name === 'cmu-jpeg')!)))
      .frames;
  });

  it('decodes a burst on the main thread and the workers to the bytes the main thread alone gives', async () => {
    const alone = new NativeJpegDecoder('libturbojpeg.so.0');
    const shared = await readyDecoder(64 << 20);
    try {
      const decoded = await Promise.all(
        frames.map((f) => shared.decode(f, TransferSyntax.JpegBaseline, desc)),
      );
      expect(decoded).toHaveLength(frames.length);
      for (const [i, frame] of decoded.entries()) {
        expect(Buffer.compare(frame.data, alone.decode(frames[i]!).data), `frame ${i}`).toBe(0);
      }
      // Both sides took frames: the workers some, the main thread the rest.
      expect(shared.jpegFramesDecodedInWorkers).toBeGreaterThan(0);
      expect(shared.jpegFramesDecodedInWorkers).toBeLessThan(frames.length);
      // The workers' buffers are the decoder's to reuse, like its own.
      const first = decoded.map((frame) => Buffer.from(frame.data));
      for (const frame of decoded) shared.recycle(frame);
      expect(shared.reusableBytes).toBe(frames.length * 240 * 240 * 3);
      // Decoded again into those buffers (sent to the workers too): the same bytes.
      const again = await Promise.all(frames.map((f) => shared.decode(f, TransferSyntax.JpegBaseline, desc)));
      for (const [i, frame] of again.entries())
        expect(Buffer.compare(frame.data, first[i]!), `frame ${i}`).toBe(0);
      expect(shared.reusableBytes).toBe(0);
    } finally {
      alone.close();
      await shared.close();
    }
  });

  it('fails a corrupt frame of a burst with FRAME_DECODE_ERROR wherever it lands, and decodes the others', async () => {
    const shared = await readyDecoder();
    try {
      const bad = new Set([1, 2, 5, 8]);
      const burst = frames.slice(0, 12).map((f, i) => {
        if (!bad.has(i)) return f;
        const corrupt = Uint8Array.from(f);
        corrupt.fill(7, 700, 900);
        return corrupt;
      });
      const results = await Promise.allSettled(
        burst.map((f) => shared.decode(f, TransferSyntax.JpegBaseline, desc)),
      );
      for (const [i, r] of results.entries()) {
        if (bad.has(i)) {
          expect(r.status, `frame ${i}`).toBe('rejected');
          expect(isPathembedError((r as PromiseRejectedResult).reason, 'FRAME_DECODE_ERROR')).toBe(true);
        } else {
          expect(r.status, `frame ${i}`).toBe('fulfilled');
        }
      }
      expect(shared.jpegFramesDecodedInWorkers).toBeGreaterThan(0);
    } finally {
      await shared.close();
    }
  });

  it('refuses a frame of the wrong size in a worker as on the main thread, naming both sizes', async () => {
    const shared = await readyDecoder();
    try {
      const wrong = { ...desc, rows: 256, columns: 256 };
      const results = await Promise.allSettled(
        frames.slice(0, 8).map((f) => shared.decode(f, TransferSyntax.JpegBaseline, wrong)),
      );
      for (const r of results) {
        expect(r.status).toBe('rejected');
        const err = (r as PromiseRejectedResult).reason;
        expect(isPathembedError(err, 'FRAME_DECODE_ERROR')).toBe(true);
        expect((err as Error).message).toMatch(/240x240 but the header says 256x256/);
        // The same details wherever it was decoded.
        expect((err as { details: object }).details).toMatchObject({
          decodedWidth: 240,
          decodedHeight: 240,
          columns: 256,
          rows: 256,
        });
      }
    } finally {
      await shared.close();
    }
  });

  it('gets back the buffer it lent a worker for a frame the worker refused, for the next decode', async () => {
    const pool = new WasmWorkerPool(1, { nativeJpeg: true });
    try {
      pool.warmUp('jpeg-native');
      await pool.ready();
      const corrupt = Uint8Array.from(frames[0]!);
      corrupt.fill(7, 700, 900);
      const lent = new Uint8Array(240 * 240 * 3);
      const returned: Uint8Array[] = [];
      const refused = await pool
        .decodeNativeJpeg(corrupt, { width: 240, height: 240 }, lent, (b) => returned.push(b))
        .then(
          () => undefined,
          (err: unknown) => err,
        );
      expect(refused).toBeInstanceOf(NativeJpegRefusal);
      // Transferred to the worker and back: the lent view is detached, its memory is the one returned.
      expect(lent.byteLength).toBe(0);
      expect(returned.map((b) => b.byteLength)).toEqual([240 * 240 * 3]);
      // Lent again with a good frame, the returned buffer is decoded into like any other.
      const reference = new NativeJpegDecoder('libturbojpeg.so.0');
      const good = await pool.decodeNativeJpeg(frames[1]!, { width: 240, height: 240 }, returned[0]);
      expect(Buffer.compare(good.data, reference.decode(frames[1]!).data)).toBe(0);
      reference.close();
    } finally {
      await pool.close();
    }
  });

  it('decodes every frame of a burst on the main thread when its workers are stopped under it', async () => {
    const alone = new NativeJpegDecoder('libturbojpeg.so.0');
    const pool = new WasmWorkerPool(2, { nativeJpeg: true });
    const buffers = new FrameBufferPool(0);
    const sharing = new NativeJpegSharing(alone, pool, buffers);
    const reference = new NativeJpegDecoder('libturbojpeg.so.0');
    try {
      pool.warmUp('jpeg-native');
      await pool.ready();
      expect(pool.nativeJpegCapacity).toBe(4);
      const burst = frames.slice(0, 24).map((f) => sharing.decode(f, { width: 240, height: 240 }));
      // Let the first frames reach the workers, then stop them mid-burst.
      await new Promise((resolve) => setImmediate(resolve));
      await pool.close();
      const decoded = await Promise.all(burst);
      for (const [i, samples] of decoded.entries()) {
        expect(Buffer.compare(samples.data, reference.decode(frames[i]!).data), `frame ${i}`).toBe(0);
      }
      expect(sharing.framesInWorkers).toBeLessThan(24);
    } finally {
      await pool.close();
      alone.close();
      reference.close();
    }
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
