/**
 * pathembed's side of the EZ-WSI comparison in `npm run bench:wsi`, run as a child process so
 * that round 1 is a fresh process: reads every patch of the grid at level 0 of one series,
 * ROUNDS times, each round opening the slide anew (metadata included; imports and the worker's
 * start-up, the frame decoder, excluded), and prints one JSON object: seconds per round and the
 * sha256 of every patch of the last round.
 * Each patch is consumed as it is read (its sha256 taken, in the timed round, as
 * bench/ezwsi_read.py does) and nothing is kept: the consumer reads a batch into the same
 * PATHEMBED_BATCH_SIZE buffers each time (`readRegion`'s `into`), as a streaming consumer would.
 *
 * REGION (X,Y,WIDTH,HEIGHT at level 0), when given, limits the grid to the patches inside it.
 *
 *   tsx bench/wsi-grid.ts SERIES_URL PATCH_PX STRIDE_PX ROUNDS [REGION]
 */
import { createHash } from 'node:crypto';

const importStart = performance.now();
const { FrameDecoder } = await import('../src/codecs/index.js');
const { loadConfig } = await import('../src/config.js');
const { DicomWebClient, StoreLimiters } = await import('../src/dicomweb/index.js');
const { frameDecoderOptions, retryPolicy } = await import('../src/domain-options.js');
const { DicomWebFrameSource } = await import('../src/wsi/dicomweb-frame-source.js');
const { FrameCache } = await import('../src/wsi/frame-cache.js');
const { PatchReader } = await import('../src/wsi/patch-reader.js');
const { openSlide } = await import('../src/wsi/slide.js');
const importSeconds = (performance.now() - importStart) / 1000;

const [seriesUrl, patchArg, strideArg, roundsArg, regionArg] = process.argv.slice(2);
const patchPx = Number(patchArg);
const stridePx = Number(strideArg);
const rounds = Number(roundsArg);
const region = regionArg?.split(',').map(Number);

const config = loadConfig();
// As the queue worker does when it starts, before it takes a job: one decoder for the process
// (native JPEG when libturbojpeg loads, its buffers reused from one reader to the next), its
// workers started and ready (they load libturbojpeg too and share the JPEG frames). Loading the
// codec library is start-up, as importing OpenCV is on EZ-WSI's side.
const setupStart = performance.now();
const decoder = new FrameDecoder(frameDecoderOptions(config));
decoder.warmUp();
await decoder.ready();
const setupSeconds = (performance.now() - setupStart) / 1000;
const seconds: number[] = [];
/** CPU seconds of the whole process (every thread) per round: a figure other load on the machine inflates less than wall time. */
const cpuSeconds: number[] = [];
let sha256: string[] = [];
/** The consumer's patch buffers, one per patch of a batch, reused every batch and round. */
const buffers: Uint8Array[] = [];
function buffer(slot: number, bytes: number): Uint8Array {
  if (buffers[slot]?.byteLength !== bytes) buffers[slot] = new Uint8Array(bytes);
  return buffers[slot]!;
}
for (let r = 0; r < rounds; r++) {
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const limiters = new StoreLimiters(config.PATHEMBED_STORE_CONCURRENCY);
  const client = new DicomWebClient({
    allowedStores: config.PATHEMBED_ALLOWED_STORES,
    retry: retryPolicy(config),
    framesPerRequest: config.PATHEMBED_FRAMES_PER_REQUEST,
    storeConcurrency: config.PATHEMBED_STORE_CONCURRENCY,
    limiters,
  });
  const source = new DicomWebFrameSource(client, seriesUrl);
  const slide = await openSlide(source);
  const level = slide.level(0);
  const rects: { x: number; y: number; width: number; height: number }[] = [];
  const [x0, y0, width, height] = region ?? [0, 0, level.widthPx, level.heightPx];
  for (let y = y0!; y + patchPx <= y0! + height!; y += stridePx)
    for (let x = x0!; x + patchPx <= x0! + width!; x += stridePx)
      rects.push({ x, y, width: patchPx, height: patchPx });
  const cache = new FrameCache(source, decoder, { maxBytes: config.PATHEMBED_FRAME_CACHE_BYTES });
  const reader = new PatchReader(cache, { levelTolerance: config.PATHEMBED_LEVEL_TOLERANCE });
  // As a job does: the reads are announced, so each frame goes back to the decoder after its last.
  reader.expectPatches({ level, scale: 1 }, rects);
  const prefetch = reader.prefetchPatches({ level, scale: 1 }, rects);
  const inFlight = config.PATHEMBED_BATCH_SIZE;
  const hashes: string[] = [];
  for (let i = 0; i < rects.length; i += inFlight) {
    const batch = await Promise.all(
      rects
        .slice(i, i + inFlight)
        .map((q, k) =>
          reader.readRegion(level, q.x, q.y, q.width, q.height, { into: buffer(k, q.width * q.height * 3) }),
        ),
    );
    for (const p of batch) hashes.push(createHash('sha256').update(p.data).digest('hex'));
  }
  await prefetch;
  seconds.push((performance.now() - t0) / 1000);
  const cpu = process.cpuUsage(cpu0);
  cpuSeconds.push((cpu.user + cpu.system) / 1e6);
  // As a SlideReader's close does: the cache hands its frames back to the decoder.
  cache.clear();
  await slide.close();
  sha256 = hashes;
}
await decoder.close();
process.stdout.write(
  `${JSON.stringify({ importSeconds, setupSeconds, seconds, cpuSeconds, patches: sha256.length, sha256 })}\n`,
);
