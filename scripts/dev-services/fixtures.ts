/**
 * Test slides, built at test time into the git-ignored .cache/fixtures folder: the CC0 H&E slide
 * from ../shared/testdata converted by OrthancWSIDicomizer in several encodings, and the real
 * TILED_FULL Camelyon instance. A fixture is rebuilt only when its recipe changes (the recipe's
 * hash is stored beside it), so the first run pays for the conversion and later runs do not.
 */
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { type SyntheticWsiOptions, writeSyntheticWsi } from '../../src/sample/synthetic-wsi-writer.js';
import { requireBinary } from './binaries.js';

const run = promisify(execFile);

export const REPO_ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');
export const SHARED_TESTDATA = path.resolve(REPO_ROOT, '..', 'shared', 'testdata');
export const FIXTURE_CACHE = path.join(REPO_ROOT, '.cache', 'fixtures');

export const CMU_SVS = path.join(SHARED_TESTDATA, 'CMU-1-Small-Region.svs');
export const CAMELYON_DCM = path.join(SHARED_TESTDATA, 'camelyon-lymph-node-tiled-full.dcm');
export const IDC_METADATA = path.join(SHARED_TESTDATA, 'idc-metadata');

/** CMU-1-Small-Region: 2220 x 2967 px at 0.4990 um/px (from the Aperio header). */
export const CMU = { widthPx: 2220, heightPx: 2967, mppUm: 0.499 } as const;

export interface FixtureRecipe {
  /** Folder name under .cache/fixtures and the key tests look the fixture up by. */
  name: string;
  /** Everything that changes the output; hashed to decide whether to rebuild. */
  recipe: unknown;
  /** Writes the Part 10 files into `dir` (empty on entry). */
  build(dir: string): Promise<void>;
}

function dicomizer(extra: string[]): FixtureRecipe['build'] {
  return async (dir) => {
    const bin = requireBinary('OrthancWSIDicomizer');
    await fs.access(CMU_SVS).catch(() => {
      throw new Error(`Shared test data missing: ${CMU_SVS} (see ../shared/testdata/README.md)`);
    });
    // The imaged volume is given explicitly: the tool's default (15 mm) would make the pixel spacing wrong.
    const widthMm = (CMU.widthPx * CMU.mppUm) / 1000;
    const heightMm = (CMU.heightPx * CMU.mppUm) / 1000;
    await run(bin, [
      `--folder=${dir}`,
      '--threads=2',
      '--pyramid=1',
      '--levels=4',
      '--smooth=1',
      `--imaged-width=${widthMm}`,
      `--imaged-height=${heightMm}`,
      ...extra,
      CMU_SVS,
    ]);
  };
}

/**
 * Synthetic slides from src/sample (coordinate-encoded pixels unless said otherwise), 1000 x 700 px
 * at 0.5 um/px with 256 px tiles and levels 1x/2x/4x, so edge tiles are partial on every level.
 * Tests rebuild a fixture's layout by calling `writeSyntheticWsi` with the same options (UIDs derive
 * from the seed, so the layout matches the uploaded files exactly).
 */
export const SYNTHETIC_FIXTURES = {
  'synthetic-full': {
    seed: 'synthetic-full',
    widthPx: 1000,
    heightPx: 700,
    associatedImages: ['THUMBNAIL', 'LABEL'],
  },
  'synthetic-sparse': {
    seed: 'synthetic-sparse',
    widthPx: 1000,
    heightPx: 700,
    tiling: 'TILED_SPARSE',
    frameOrder: 'shuffled',
    omitTile: (level, col, row) =>
      (level === 0 && (col + row) % 3 === 1) || (level === 1 && col === 1 && row === 0),
  },
  'synthetic-noorg': {
    seed: 'synthetic-noorg',
    widthPx: 1000,
    heightPx: 700,
    tiling: 'PER_FRAME_UNSPECIFIED',
    pixelSpacingQuirk: 'orthanc-swapped',
  },
  'synthetic-concat': {
    seed: 'synthetic-concat',
    widthPx: 1000,
    heightPx: 700,
    maxFramesPerInstance: 5,
  },
  'synthetic-jpeg': {
    seed: 'synthetic-jpeg',
    widthPx: 1000,
    heightPx: 700,
    transferSyntax: 'jpeg-baseline',
    jpegQuality: 95,
  },
} satisfies Record<string, SyntheticWsiOptions>;

/** Every fixture the suite uses. Add new ones here; global setup builds and uploads them all. */
export const FIXTURES: FixtureRecipe[] = [
  {
    name: 'cmu-jpeg',
    recipe: ['jpeg', 90, 'reencode', 0],
    build: dicomizer(['--compression=jpeg', '--jpeg-quality=90', '--reencode=1', '--max-size=0']),
  },
  {
    name: 'cmu-jpeg2000',
    recipe: ['jpeg2000', 'reencode'],
    build: dicomizer(['--compression=jpeg2000', '--reencode=1', '--max-size=0']),
  },
  {
    name: 'cmu-raw',
    recipe: ['none', 'reencode'],
    build: dicomizer(['--compression=none', '--reencode=1', '--max-size=0']),
  },
  {
    // 120 px tiles (a divisor of the source's 240) and a 1 MB cap: level 0 is split into a DICOM concatenation of several instances.
    name: 'cmu-jpeg-concat',
    recipe: ['jpeg', 90, 'reencode', 1, 120],
    build: dicomizer([
      '--compression=jpeg',
      '--jpeg-quality=90',
      '--reencode=1',
      '--max-size=1',
      '--tile-width=120',
      '--tile-height=120',
    ]),
  },
  {
    name: 'camelyon',
    recipe: ['copy'],
    async build(dir) {
      await fs.copyFile(CAMELYON_DCM, path.join(dir, 'camelyon.dcm'));
    },
  },
  synthetic('synthetic-full'),
  synthetic('synthetic-sparse'),
  synthetic('synthetic-noorg'),
  synthetic('synthetic-concat'),
  synthetic('synthetic-jpeg'),
];

/** A synthetic fixture; its recipe includes the writer's sources, so changing the writer rebuilds it. */
function synthetic(name: keyof typeof SYNTHETIC_FIXTURES): FixtureRecipe {
  const options: SyntheticWsiOptions = SYNTHETIC_FIXTURES[name];
  const writerSources = [
    'src/sample/synthetic-wsi-writer.ts',
    'src/sample/pixel-patterns.ts',
    'src/sample/deterministic-uid.ts',
    'src/wsi/dcmjs.ts',
  ].map((f) => readFileSync(path.join(REPO_ROOT, f), 'utf8'));
  return {
    name,
    recipe: [
      'synthetic',
      JSON.stringify(options, (_k, v) => (typeof v === 'function' ? String(v) : v)),
      crypto.createHash('sha256').update(writerSources.join('\0')).digest('hex'),
    ],
    async build(dir) {
      await writeSyntheticWsi(dir, options);
    },
  };
}

function recipeHash(f: FixtureRecipe): string {
  return crypto
    .createHash('sha256')
    .update(JSON.stringify([f.name, f.recipe, f.build.toString()]))
    .digest('hex');
}

/** Builds the fixture unless an up-to-date copy is cached; returns its folder. */
export async function ensureFixture(f: FixtureRecipe): Promise<string> {
  const dir = path.join(FIXTURE_CACHE, f.name);
  const stamp = path.join(FIXTURE_CACHE, `${f.name}.sha256`);
  const hash = recipeHash(f);
  const current = await fs.readFile(stamp, 'utf8').catch(() => '');
  if (current === hash) return dir;
  const tmp = `${dir}.tmp-${process.pid}`;
  await fs.rm(tmp, { recursive: true, force: true });
  await fs.mkdir(tmp, { recursive: true });
  try {
    await f.build(tmp);
  } catch (err) {
    await fs.rm(tmp, { recursive: true, force: true });
    throw err;
  }
  await fs.rm(dir, { recursive: true, force: true });
  await fs.rename(tmp, dir);
  await fs.writeFile(stamp, hash);
  return dir;
}
