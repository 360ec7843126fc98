/**
 * Bad input that must fail with the right code, and benign oddities that must not: corrupt JPEG
 * and JPEG 2000 frames (FRAME_DECODE_ERROR naming frame and instance), the CMU Aperio fixture's
 * real streams (still decode), JPEG streams with extraneous bytes before a marker (decode as the
 * clean stream), and absurd slide geometry (INVALID_DICOM naming the attribute and the limit).
 * Real fixture files on disk, the real decoders; no services.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURE_CACHE } from '../../scripts/dev-services/fixtures.js';
import { FrameDecoder } from '../../src/codecs/index.js';
import type { DicomJsonDataset } from '../../src/dicom-json.js';
import { Tag } from '../../src/dicom-tags.js';
import { isPathembedError, type PathembedError } from '../../src/errors.js';
import { FrameCache } from '../../src/wsi/frame-cache.js';
import { type EncodedFrame, ForwardingFrameSource, type FrameSource } from '../../src/wsi/frame-source.js';
import { openLocalFrameSource } from '../../src/wsi/local-frame-source.js';
import { openSlide, type Slide } from '../../src/wsi/slide.js';
import { buildSlidePyramid } from '../../src/wsi/slide-pyramid.js';

/** Bytes overwritten in the middle of each corrupted frame, as in the reproduction. */
const CORRUPT_BYTES = 200;

/** Overwrites CORRUPT_BYTES in the middle of a copy of `data` (a fixed, reversible scramble). */
function corrupted(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(data);
  const mid = Math.floor(out.length / 2);
  for (let i = 0; i < CORRUPT_BYTES && mid + i < out.length - 2; i++)
    out[mid + i] = (out[mid + i] * 31 + 17) & 0xff;
  return out;
}

/** A frame source whose frames of some indices come back altered (a store serving damaged data). */
class AlteringSource extends ForwardingFrameSource {
  constructor(
    inner: FrameSource,
    private readonly alter: (frame: EncodedFrame, frameIndex: number) => EncodedFrame,
  ) {
    super(inner);
  }

  override async fetchFrames(instanceUid: string, frameIndices: readonly number[], signal?: AbortSignal) {
    const frames = await super.fetchFrames(instanceUid, frameIndices, signal);
    return frames.map((f, i) => this.alter(f, frameIndices[i]));
  }
}

async function rejection(promise: Promise<unknown>): Promise<PathembedError> {
  try {
    await promise;
  } catch (err) {
    if (isPathembedError(err)) return err;
    throw err;
  }
  throw new Error('expected a rejection');
}

let decoder: FrameDecoder;
const slides: Slide[] = [];

async function slideOf(fixture: string, alter?: ConstructorParameters<typeof AlteringSource>[1]) {
  const local = await openLocalFrameSource(`${FIXTURE_CACHE}/${fixture}`);
  const slide = await openSlide(alter ? new AlteringSource(local, alter) : local);
  slides.push(slide);
  return slide;
}

beforeAll(() => {
  decoder = new FrameDecoder({ decodeThreads: 1 });
});

afterAll(async () => {
  for (const s of slides) await s.close();
  await decoder.close();
});

describe('corrupt frames', () => {
  it('fails every corrupt JPEG frame of the synthetic slide with FRAME_DECODE_ERROR', async () => {
    const slide = await slideOf('synthetic-jpeg');
    const level = slide.pyramid.levels[0];
    const inst = level.instances[0];
    const indices = Array.from({ length: inst.frameCount }, (_, i) => i);
    const frames = await slide.source.fetchFrames(inst.sopInstanceUid, indices);
    let failed = 0;
    for (const f of frames) {
      // The clean frame decodes; the same frame with 200 bytes overwritten does not.
      await decoder.decode(f.data, f.transferSyntaxUid, level.frame);
      const err = await rejection(decoder.decode(corrupted(f.data), f.transferSyntaxUid, level.frame));
      expect(err.code).toBe('FRAME_DECODE_ERROR');
      expect(err.message).toMatch(/Corrupt JPEG data/);
      failed++;
    }
    expect(failed).toBe(frames.length);
  });

  it('names the frame index and the instance of a corrupt frame read through the frame cache', async () => {
    const badIndex = 1;
    const slide = await slideOf('synthetic-jpeg', (f, i) =>
      i === badIndex ? { ...f, data: corrupted(f.data) } : f,
    );
    const level = slide.pyramid.levels[0];
    const uid = level.instances[0].sopInstanceUid;
    const cache = new FrameCache(slide.source, decoder, { maxBytes: 1 << 24 });
    const good = await cache.getFrames(level, [{ instanceUid: uid, frameIndex: 0 }]);
    expect(good[0].width).toBe(level.frame.columns);
    const err = await rejection(cache.getFrames(level, [{ instanceUid: uid, frameIndex: badIndex }]));
    expect(err.code).toBe('FRAME_DECODE_ERROR');
    expect(err.message).toContain(`Frame index ${badIndex} of instance ${uid}`);
    expect(err.details).toMatchObject({ frameIndex: badIndex, sopInstanceUid: uid });
  });

  it('fails a cut JPEG 2000 frame (OpenJPEG reports it) naming frame and instance', async () => {
    const slide = await slideOf('cmu-jpeg2000', (f, i) =>
      i === 2 ? { ...f, data: f.data.subarray(0, Math.floor(f.data.length / 2)) } : f,
    );
    const level = slide.pyramid.levels[0];
    const uid = level.instances[0].sopInstanceUid;
    const cache = new FrameCache(slide.source, decoder, { maxBytes: 1 << 24 });
    const err = await rejection(cache.getFrames(level, [{ instanceUid: uid, frameIndex: 2 }]));
    expect(err.code).toBe('FRAME_DECODE_ERROR');
    expect(err.message).toContain(`Frame index 2 of instance ${uid}`);
    expect(err.message).toMatch(/JPEG 2000 decode failed: .*\[ERROR\]/);
  });
});

describe('benign oddities still decode', () => {
  it('decodes every frame of every level of the CMU (Aperio) JPEG fixture', async () => {
    const slide = await slideOf('cmu-jpeg');
    let decoded = 0;
    for (const level of slide.pyramid.levels) {
      for (const inst of level.instances) {
        const indices = Array.from({ length: inst.frameCount }, (_, i) => i);
        for (const f of await slide.source.fetchFrames(inst.sopInstanceUid, indices)) {
          const rgb = await decoder.decode(f.data, f.transferSyntaxUid, level.frame);
          expect(rgb.width).toBe(level.frame.columns);
          decoded++;
        }
      }
    }
    expect(decoded).toBeGreaterThan(100);
  });

  it('decodes a JPEG with extraneous bytes before its EOI marker to the clean pixels', async () => {
    const slide = await slideOf('cmu-jpeg');
    const level = slide.pyramid.levels[0];
    const inst = level.instances[0];
    const [f] = await slide.source.fetchFrames(inst.sopInstanceUid, [0]);
    let eoi = f.data.length - 2;
    while (eoi > 0 && !(f.data[eoi] === 0xff && f.data[eoi + 1] === 0xd9)) eoi--;
    // Aperio-style garbage between the end of the scan and EOI: libjpeg warns "extraneous bytes".
    const padded = new Uint8Array(f.data.length + 3);
    padded.set(f.data.subarray(0, eoi), 0);
    padded.set([0x00, 0x11, 0x22], eoi);
    padded.set(f.data.subarray(eoi), eoi + 3);
    const clean = await decoder.decode(f.data, f.transferSyntaxUid, level.frame);
    const odd = await decoder.decode(padded, f.transferSyntaxUid, level.frame);
    expect(Buffer.from(odd.data).equals(Buffer.from(clean.data))).toBe(true);
  });
});

describe('absurd geometry', () => {
  async function metadata(): Promise<DicomJsonDataset[]> {
    const local = await openLocalFrameSource(`${FIXTURE_CACHE}/synthetic-full`);
    try {
      return structuredClone(await local.seriesMetadata());
    } finally {
      await local.close?.();
    }
  }

  it('refuses TotalPixelMatrixColumns of 4e9 with INVALID_DICOM naming the attribute and the limit', async () => {
    const images = await metadata();
    images[0][Tag.TotalPixelMatrixColumns] = { vr: 'UL', Value: [4_000_000_000] };
    let err: PathembedError | undefined;
    try {
      buildSlidePyramid(images);
    } catch (e) {
      if (!isPathembedError(e)) throw e;
      err = e;
    }
    expect(err?.code).toBe('INVALID_DICOM');
    expect(err?.message).toMatch(/TotalPixelMatrixColumns .*4000000000.*at most 1000000/);
    expect(err?.details).toMatchObject({ attribute: 'TotalPixelMatrixColumns', limit: 1_000_000 });
  });

  it('refuses a level of more tiles than the limit (1 px frames over a large matrix)', async () => {
    const images = await metadata();
    images[0][Tag.TotalPixelMatrixRows] = { vr: 'UL', Value: [900_000] };
    images[0][Tag.TotalPixelMatrixColumns] = { vr: 'UL', Value: [900_000] };
    images[0][Tag.Rows] = { vr: 'US', Value: [1] };
    images[0][Tag.Columns] = { vr: 'US', Value: [1] };
    let err: PathembedError | undefined;
    try {
      buildSlidePyramid(images);
    } catch (e) {
      if (!isPathembedError(e)) throw e;
      err = e;
    }
    expect(err?.code).toBe('INVALID_DICOM');
    expect(err?.message).toMatch(/tiles .*at most 16777216/);
  });
});
