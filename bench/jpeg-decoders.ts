/**
 * The JPEG decoders measured side by side for `npm run bench:wsi` (and alone with
 * `--decoders`): the machine's libjpeg-turbo through koffi (NativeJpegDecoder, pathembed's
 * default, on the calling thread), sharp (native libjpeg-turbo through libvips, on libuv's pool)
 * and libjpeg-turbo as WASM (the kernel of the decode workers), on real frames of 240, 256 and
 * 512 px, one frame at a time and with frames in flight over a pool, in MP/s. Every decoder's
 * output is checked against sharp's, byte for byte.
 */
import os from 'node:os';
import sharp from 'sharp';
import { decodeWithSharp } from '../src/codecs/jpeg.js';
import { NativeJpegDecoder } from '../src/codecs/native-jpeg-decoder.js';
import { runKernel } from '../src/codecs/wasm-kernels.js';
import { WasmWorkerPool } from '../src/codecs/wasm-worker-pool.js';
import { type DicomJsonDataset, num, str } from '../src/dicom-json.js';
import { LocalFrameSource } from '../src/wsi/local-frame-source.js';

const SOP_INSTANCE_UID = '00080018';
const NUMBER_OF_FRAMES = '00280008';
/** Config.PATHEMBED_LIBTURBOJPEG's default. */
const LIBTURBOJPEG = 'libturbojpeg.so.0';
/** Frames in flight per pool worker (and for sharp's libuv pool). */
const IN_FLIGHT_PER_WORKER = 4;
/** Passes over a frame set per decoder, after one warm-up pass. */
const PASSES = 3;
const JPEG_512_QUALITY = 90;
const SIZE_512 = 512;
const TILES_512 = 12;
const TILES_512_ACROSS = 4;

export interface DecoderFrameSet {
  label: string;
  frames: Uint8Array[];
}

/** The first instance's frames of a Part 10 folder (level 0 of a dicomizer pyramid). */
export async function framesOfLevel0(label: string, folder: string): Promise<DecoderFrameSet> {
  const source = await LocalFrameSource.open(folder);
  try {
    const metadata: DicomJsonDataset[] = await source.seriesMetadata();
    const level0 = metadata.reduce((a, b) =>
      (num(b, NUMBER_OF_FRAMES) ?? 1) > (num(a, NUMBER_OF_FRAMES) ?? 1) ? b : a,
    );
    const count = num(level0, NUMBER_OF_FRAMES) ?? 1;
    const encoded = await source.fetchFrames(
      str(level0, SOP_INSTANCE_UID)!,
      Array.from({ length: count }, (_, i) => i),
    );
    return { label, frames: encoded.map((f) => f.data) };
  } finally {
    await source.close();
  }
}

/** 512 px JPEG (q90, 4:2:0) tiles cut from the CMU region with sharp: no dicomizer writes 512 px from 240 px tiles. */
export async function frames512(svs: string): Promise<DecoderFrameSet> {
  const frames: Uint8Array[] = [];
  for (let i = 0; i < TILES_512; i++) {
    const left = (i % TILES_512_ACROSS) * SIZE_512;
    const top = Math.floor(i / TILES_512_ACROSS) * SIZE_512;
    const jpeg = await sharp(svs)
      .extract({ left, top, width: SIZE_512, height: SIZE_512 })
      .removeAlpha()
      .jpeg({ quality: JPEG_512_QUALITY })
      .toBuffer();
    frames.push(new Uint8Array(jpeg));
  }
  return { label: `${SIZE_512} px (CMU region, sharp q${JPEG_512_QUALITY})`, frames };
}

type Decode = (frame: Uint8Array) => Promise<Uint8Array>;

async function timeDecoder(frames: Uint8Array[], decode: Decode, inFlight: number): Promise<number> {
  const pass = async () => {
    let pixels = 0;
    for (let i = 0; i < frames.length; i += inFlight) {
      const out = await Promise.all(frames.slice(i, i + inFlight).map(decode));
      for (const o of out) pixels += o.length / 3;
    }
    return pixels;
  };
  await pass();
  let pixels = 0;
  const t0 = performance.now();
  for (let p = 0; p < PASSES; p++) pixels += await pass();
  return pixels / ((performance.now() - t0) / 1000) / 1e6;
}

/** Markdown lines: MP/s per decoder and frame size, and whether every output matched sharp's. */
export async function jpegDecoderTable(sets: readonly DecoderFrameSet[]): Promise<string[]> {
  const cores = os.availableParallelism();
  const viaSharp: Decode = async (f) => (await decodeWithSharp(f)).data;
  const viaKernel: Decode = async (f) => {
    const reply = await runKernel({ id: 0, codec: 'jpeg', encoded: f });
    if (!reply.ok) throw new Error(reply.message);
    return reply.data;
  };
  const native = new NativeJpegDecoder(LIBTURBOJPEG);
  const viaNative: Decode = async (f) => native.decode(f).data;
  const pool1 = new WasmWorkerPool(1);
  const poolN = new WasmWorkerPool(cores);
  const viaPool1: Decode = async (f) => (await pool1.decode('jpeg', f)).data;
  const viaPoolN: Decode = async (f) => (await poolN.decode('jpeg', f)).data;
  const columns: { name: string; decode: Decode; inFlight: number }[] = [
    { name: 'native (koffi) on the calling thread, 1 at a time', decode: viaNative, inFlight: 1 },
    { name: 'sharp, 1 at a time', decode: viaSharp, inFlight: 1 },
    {
      name: `sharp, ${IN_FLIGHT_PER_WORKER * cores} in flight (libuv pool)`,
      decode: viaSharp,
      inFlight: IN_FLIGHT_PER_WORKER * cores,
    },
    { name: 'WASM on the calling thread, 1 at a time', decode: viaKernel, inFlight: 1 },
    { name: 'WASM pool of 1 worker, 1 at a time', decode: viaPool1, inFlight: 1 },
    {
      name: `WASM pool of ${cores} workers, ${IN_FLIGHT_PER_WORKER * cores} in flight`,
      decode: viaPoolN,
      inFlight: IN_FLIGHT_PER_WORKER * cores,
    },
  ];
  const lines = [
    `JPEG decoders, MP/s (decoded megapixels per second), over ${PASSES} passes after a warm-up pass; ` +
      `${cores} cores, 1-minute load average ${os.loadavg()[0].toFixed(2)} at the start.`,
    '',
    `| frames | ${columns.map((c) => c.name).join(' | ')} | outputs equal to sharp's |`,
    `| --- | ${columns.map(() => '---:').join(' | ')} | --- |`,
  ];
  try {
    poolN.warmUp();
    pool1.warmUp();
    for (const set of sets) {
      let equal = 0;
      for (const f of set.frames) {
        const reference = Buffer.from(await viaSharp(f));
        const outs = await Promise.all([viaNative(f), viaKernel(f), viaPool1(f), viaPoolN(f)]);
        if (outs.every((o) => reference.equals(o))) equal++;
      }
      const rates: string[] = [];
      for (const c of columns) rates.push((await timeDecoder(set.frames, c.decode, c.inFlight)).toFixed(1));
      lines.push(
        `| ${set.label}, ${set.frames.length} frames | ${rates.join(' | ')} | ${equal} of ${set.frames.length} |`,
      );
      process.stderr.write(`decoders ${set.label}: ${rates.join(' / ')} MP/s\n`);
    }
  } finally {
    native.close();
    await Promise.all([pool1.close(), poolN.close()]);
  }
  return lines;
}
