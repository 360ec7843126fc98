/**
 * Bulk annotations (ANN) at slide scale: builds the ANN of N synthetic patches (a 384-wide
 * embedding each, drawn from a fixed seed) with and without every embedding component, from a
 * replayable in-memory stream, and reports time, file size and the process's peak resident memory
 * growth. No slide, model or store: this measures src/pipeline/ann-output.ts and the encoder.
 *
 *   npx tsx bench/ann.ts [--patches 100000] [--embedding]
 */
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { SeededRandom } from '../models/seeded-random.js';
import type { DicomJsonDataset } from '../src/dicom-json.js';
import { buildAnnForPlan, type PatchEmbedding, type SlidePlan } from '../src/pipeline/index.js';
import { SopClass } from '../src/uids.js';

const WIDTH = 384;
const PATCH_PX = 224;
const args = process.argv.slice(2);
const patchesArg = args.indexOf('--patches');
const n = patchesArg >= 0 ? Number(args[patchesArg + 1]) : 100_000;
const includeEmbedding = args.includes('--embedding');
const across = Math.ceil(Math.sqrt(n));

const plan = {
  version: 1,
  source: { kind: 'local', folder: '/bench' },
  studyInstanceUid: '1.2.826.0.1.1',
  seriesInstanceUid: '1.2.826.0.1.2',
  pixelSpacingUm: 0.5,
  level: {
    index: 0,
    pixelSpacingMm: { x: 0.00025, y: 0.00025 },
    instances: [{ sopInstanceUid: '1.2.826.0.1.3' }],
  },
  downsample: 2,
  patchSizePx: PATCH_PX,
  stridePx: PATCH_PX,
  minTissue: 0.5,
  patchSelection: 'tissue-grid',
  requirePatchesInside: false,
  candidates: n,
  baseLevel: {
    widthPx: 1,
    heightPx: 1,
    pixelSpacingMm: { x: 0.00025, y: 0.00025 },
    sopInstanceUid: '1.2.826.0.1.3',
  },
  widthPx: across * PATCH_PX,
  heightPx: across * PATCH_PX,
  patches: Array.from({ length: n }, (_, i) => ({
    index: i,
    x: (i % across) * PATCH_PX,
    y: Math.floor(i / across) * PATCH_PX,
    width: PATCH_PX,
    height: PATCH_PX,
    tissueFraction: 0.5 + (i % 50) / 100,
  })),
  tissue: null,
} as unknown as SlidePlan;

const metadata: DicomJsonDataset[] = [
  {
    '0020000D': { vr: 'UI', Value: ['1.2.826.0.1.1'] },
    '0020000E': { vr: 'UI', Value: ['1.2.826.0.1.2'] },
    '00080016': { vr: 'UI', Value: [SopClass.VLWholeSlideMicroscopyImage] },
    '00080018': { vr: 'UI', Value: ['1.2.826.0.1.3'] },
  },
];

async function* embeddings(): AsyncGenerator<PatchEmbedding> {
  const random = new SeededRandom(7);
  const embedding = new Float32Array(WIDTH);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < WIDTH; c++) embedding[c] = random.uniform() - 0.5 + (c < 3 ? (i % 7) * 0.1 : 0);
    yield { index: i, embedding };
  }
}

const rssBefore = process.memoryUsage().rss;
let peakRss = rssBefore;
const sampler = setInterval(() => {
  peakRss = Math.max(peakRss, process.memoryUsage().rss);
}, 20);
const started = performance.now();
const out = await buildAnnForPlan(plan, metadata, embeddings, {
  model: { name: 'bench', version: '1', sha256: 'b'.repeat(64) },
  embeddingWidth: WIDTH,
  includeEmbedding,
  contentTime: new Date(0),
});
const file = path.join(os.tmpdir(), `pathembed-bench-ann-${process.pid}.dcm`);
await writeFile(file, out.parts);
const seconds = (performance.now() - started) / 1000;
clearInterval(sampler);
peakRss = Math.max(peakRss, process.memoryUsage().rss);
const MB = 1024 * 1024;
process.stdout.write(
  `${JSON.stringify({
    patches: n,
    includeEmbedding,
    measurements: 4 + (includeEmbedding ? WIDTH : 0),
    seconds: Math.round(seconds * 10) / 10,
    fileMB: Math.round((out.byteLength / MB) * 10) / 10,
    parts: out.parts.length,
    peakRssGrowthMB: Math.round((peakRss - rssBefore) / MB),
    file,
  })}\n`,
);
