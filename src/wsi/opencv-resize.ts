/**
 * Whole-image resizes done by OpenCV itself (opencv.js, WASM), for images whose pixels must equal
 * what Google's Path Foundation server embeds. Its reader (EZ-WSI's GcsImage, behind inline and
 * Cloud Storage images) means INTER_AREA to shrink and INTER_CUBIC to enlarge, but passes the flag
 * in `cv2.resize`'s third position, which is `dst`, so OpenCV's default, bilinear INTER_LINEAR, is
 * what runs in both directions (checked pixel for pixel against EZ-WSI 6.1.6; docs/predict-compat.md).
 * opencv.js's INTER_LINEAR is fixed-point and bit-identical to native OpenCV 4.14 and 5.0.
 *
 * opencv.js is 10 MB of JavaScript and WASM, so it is loaded on the first resize, not at start;
 * the load takes about 0.3 s once per process.
 */
import { createRequire } from 'node:module';
import type { RgbFrame } from '../codecs/index.js';
import { PathembedError } from '../errors.js';

const RGB = 3;
/** How often to look whether the WASM runtime is up (it initialises asynchronously). */
const READY_POLL_MS = 5;
/** Longest wait for the runtime before giving up with an error a user can report. */
const READY_TIMEOUT_MS = 60_000;

// biome-ignore lint/suspicious/noExplicitAny: opencv.js is an Emscripten module with no narrow type
type OpenCv = any;

let loading: Promise<{ cv: OpenCv }> | undefined;

const PROCESS_EVENTS = ['uncaughtException', 'unhandledRejection'] as const;

/**
 * Emscripten's Node glue adds process-wide `uncaughtException` and `unhandledRejection` handlers
 * that rethrow or abort, printing the whole 10 MB script with the error. The service keeps Node's
 * own behaviour and its logs, so whatever handlers loading adds are taken off again.
 */
function requireWithoutProcessHooks(id: string): unknown {
  type Listener = (...args: unknown[]) => void;
  const listeners = (event: (typeof PROCESS_EVENTS)[number]) =>
    process.listeners(event as 'uncaughtException') as unknown as Listener[];
  const before = new Map(PROCESS_EVENTS.map((e) => [e, new Set(listeners(e))]));
  const loaded = createRequire(import.meta.url)(id);
  for (const event of PROCESS_EVENTS) {
    for (const listener of listeners(event)) {
      if (!before.get(event)?.has(listener)) process.removeListener(event, listener);
    }
  }
  return loaded;
}

/**
 * The initialised module. It is a thenable that resolves to itself, which `await` would follow
 * forever, so it is required (not imported) and handed out inside an object.
 */
function openCv(): Promise<{ cv: OpenCv }> {
  loading ??= new Promise((resolve, reject) => {
    const cv = requireWithoutProcessHooks('@techstark/opencv-js') as OpenCv;
    const started = Date.now();
    const poll = setInterval(() => {
      if (typeof cv.Mat === 'function' && typeof cv.resize === 'function') {
        clearInterval(poll);
        resolve({ cv });
      } else if (Date.now() - started > READY_TIMEOUT_MS) {
        clearInterval(poll);
        reject(new PathembedError('INTERNAL', `opencv.js did not initialise within ${READY_TIMEOUT_MS} ms`));
      }
    }, READY_POLL_MS);
  });
  return loading;
}

/** `src` resized to `widthPx` x `heightPx` as `cv2.resize` does for Google's images (module doc). */
export async function resizeLikeGoogle(src: RgbFrame, widthPx: number, heightPx: number): Promise<RgbFrame> {
  if (src.width === widthPx && src.height === heightPx) return src;
  const { cv } = await openCv();
  const input = cv.matFromArray(src.height, src.width, cv.CV_8UC3, src.data);
  const output = new cv.Mat();
  try {
    cv.resize(input, output, new cv.Size(widthPx, heightPx), 0, 0, cv.INTER_LINEAR);
    const data = new Uint8Array(widthPx * heightPx * RGB);
    data.set(output.data as Uint8Array);
    return { width: widthPx, height: heightPx, data };
  } finally {
    input.delete();
    output.delete();
  }
}
