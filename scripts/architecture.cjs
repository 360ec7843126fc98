/**
 * The architecture as data: which src/ folder may import which, and what each is for. It is the
 * one statement of the arrows: .dependency-cruiser.cjs enforces it in `npm test`, and
 * `npm run docs` writes it into README's Architecture section.
 */
/** Folder -> the src/ folders it may import (besides the shared root modules). */
const LAYERS = {
  dicomweb: [],
  codecs: [],
  embed: [],
  results: [],
  search: ['results'],
  wsi: ['dicomweb', 'codecs'],
  sample: ['wsi'],
  pipeline: ['wsi', 'codecs', 'embed', 'results'],
  queue: ['pipeline', 'wsi', 'codecs', 'embed', 'results', 'search'],
  ui: ['wsi', 'codecs', 'results', 'search'],
  api: ['queue', 'wsi', 'codecs', 'results', 'dicomweb', 'search', 'ui'],
  cli: [
    'api',
    'ui',
    'queue',
    'pipeline',
    'wsi',
    'codecs',
    'embed',
    'results',
    'sample',
    'dicomweb',
    'search',
  ],
};

/** What each folder is for (README's Architecture section). */
const PURPOSE = {
  dicomweb:
    'the wire: series references, QIDO/WADO/STOW, batched frames (streamed multipart), auth, retries, allow-list',
  codecs:
    'frame decoding by transfer syntax: JPEG (the system libjpeg-turbo through koffi; WASM or sharp without it), JPEG 2000 / JPEG-LS (WASM in worker threads), raw, RLE',
  embed: 'the model contract and manifest, provider choice, the ONNX Runtime engine and its worker thread',
  results:
    'JSON result (streamed, versioned schema), HDF5 and Parquet files for ML tools, DICOM Comprehensive SR (TID 1500)',
  search:
    'similar-patch search: k nearest patches by cosine distance, exact below a size and HNSW (usearch) above, stored per job (no Redis, no HTTP)',
  wsi: 'the slide model (pyramid, tile index, concatenations), SlideOpener, frame cache, patches, tissue, grid',
  sample: 'synthetic DICOM WSI writer (coordinate-encoded test slides, the demo slide)',
  pipeline: 'plan a slide, stream patches through the model with bounded memory (no Redis, no HTTP)',
  queue: 'BullMQ: slide jobs fanning out into chunk jobs, workers (the worker process start)',
  ui: 'the web page /ui (jobs, slide viewer with patch overlay, neighbours), its tiles, login sessions, CSP, and the Redis-free local viewer',
  api: 'Express: jobs, batches, similar-patch /v1/search, the web page and its tiles, Path Foundation-compatible /v1/predict, health, metrics, OpenAPI',
  cli: 'the `pathembed` command',
};

const EDGES = ['cli', 'api', 'queue'];
module.exports = { LAYERS, PURPOSE, EDGES };
