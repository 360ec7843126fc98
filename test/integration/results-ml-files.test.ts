/**
 * The HDF5 and Parquet writers, checked by readers that did not write the files: h5py, pyarrow
 * and DuckDB read what pathembed wrote, and every value is compared with what went in (features
 * bit for bit as float32, level-0 coordinates against an independent computation, attributes and
 * key/value metadata). A full disk (a real, small tmpfs) fails with RESULT_WRITE_FAILED and leaves
 * no file behind.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isPathembedError } from '../../src/errors.js';
import { Hdf5ResultWriter } from '../../src/results/hdf5-writer.js';
import { ParquetResultWriter, ROW_GROUP_PATCHES } from '../../src/results/parquet-writer.js';
import { resultSource } from '../../src/results/result-source.js';
import type { ResultHeaderInput, ResultPatch } from '../../src/results/result-writer.js';
import { pythonEnv } from '../helpers/python-env.js';

const DIM = 384;
/** More than two row groups and a dozen HDF5 blocks, with a short last one of each. */
const PATCHES = 2 * ROW_GROUP_PATCHES + 1234;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'pathembed-mlfiles-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Deterministic pseudo-random embedding (mulberry32), with tiny and large magnitudes. */
function embedding(seed: number): Float32Array {
  let a = seed >>> 0;
  const out = new Float32Array(DIM);
  for (let i = 0; i < DIM; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = (((t ^ (t >>> 14)) >>> 0) / 4294967296 - 0.5) * 10 ** ((i % 9) - 4);
  }
  return out;
}

/**
 * Level 1 of a slide at 0.2495 µm/px read at 0.499 µm/px and resampled by 1.002: level-0 per grid
 * pixel is 0.499 × 1.002 / 0.2495 = 2.004, so coordinates need rounding.
 */
function header(): ResultHeaderInput {
  return {
    jobKey: 'ml-files-test',
    source: resultSource(
      {
        kind: 'dicomweb',
        baseUrl: 'http://127.0.0.1:8042/dicom-web',
        studyUid: '1.2.3',
        seriesUid: '1.2.3.4',
      },
      { instanceUids: ['1.2.3.4.5', '1.2.3.4.6'] },
    ),
    model: { name: 'path-foundation', version: '1.0', sha256: 'ab'.repeat(32) },
    parameters: {
      pixelSpacingUm: 0.5,
      stridePx: 224,
      minTissue: 0.5,
      patchSizePx: 224,
      patchSelection: 'tissue-grid',
      requirePatchesInside: false,
      batchSize: 32,
    },
    range: null,
    level: {
      index: 1,
      widthPx: 40000,
      heightPx: 30000,
      pixelSpacingUm: { x: 0.499, y: 0.499 },
      scaleFromGrid: 1.002,
    },
    baseLevel: { widthPx: 80160, heightPx: 60120, pixelSpacingUm: { x: 0.2495, y: 0.2495 } },
    grid: {
      coordinates: 'target-grid',
      description: 'x',
      pixelSpacingUm: 0.499998,
      widthPx: 39920,
      heightPx: 29940,
    },
    tissue: { method: 'otsu', spacingUm: 8, fraction: 0.4 },
    embeddingDimension: DIM,
    embeddingEncoding: 'float32-array',
  };
}

/** Patch i: a grid walk with every third index skipped (as a tissue filter does), odd offsets. */
function patch(i: number): ResultPatch {
  const columns = 170;
  return {
    index: i * 3 + 1,
    x: (i % columns) * 224 + 3,
    y: Math.floor(i / columns) * 224 + 1,
    width: 224,
    height: 224,
    tissueFraction: (i % 1000) / 999,
    embedding: embedding(i + 1),
  };
}

/** The expected values, computed here without the writers' helpers, as raw files for numpy. */
async function writeExpected(n: number): Promise<string> {
  const scale = (0.499 * 1.002) / 0.2495;
  const features = new Float32Array(n * DIM);
  const coords = new Int32Array(n * 2);
  const grid = new Int32Array(n * 5);
  const tissue = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const p = patch(i);
    features.set(p.embedding, i * DIM);
    coords[i * 2] = Math.round(p.x * scale);
    coords[i * 2 + 1] = Math.round(p.y * scale);
    grid.set([p.index, p.x, p.y, p.width, p.height], i * 5);
    tissue[i] = p.tissueFraction;
  }
  const prefix = path.join(dir, `expected-${n}`);
  await writeFile(`${prefix}.features`, features);
  await writeFile(`${prefix}.coords`, coords);
  await writeFile(`${prefix}.grid`, grid);
  await writeFile(`${prefix}.tissue`, tissue);
  return prefix;
}

const H5_CHECK = `
import sys, json, h5py, numpy as np
path, prefix, dim = sys.argv[1], sys.argv[2], int(sys.argv[3])
f = h5py.File(path, 'r')
features = np.fromfile(prefix + '.features', dtype='<f4').reshape(-1, dim)
coords = np.fromfile(prefix + '.coords', dtype='<i4').reshape(-1, 2)
grid = np.fromfile(prefix + '.grid', dtype='<i4').reshape(-1, 5)
tissue = np.fromfile(prefix + '.tissue', dtype='<f8')
attrs = {k: (v.decode() if isinstance(v, bytes) else v.tolist() if hasattr(v, 'tolist') else v) for k, v in f.attrs.items()}
attrs['sop_instance_uids'] = [u.decode() if isinstance(u, bytes) else u for u in f.attrs['sop_instance_uids']]
print(json.dumps({
  'features': [str(f['features'].dtype), list(f['features'].shape)],
  'coords': [str(f['coords'].dtype), list(f['coords'].shape)],
  'featuresEqual': bool(np.array_equal(f['features'][:].view('<u4'), features.view('<u4'))),
  'coordsEqual': bool(np.array_equal(f['coords'][:], coords)),
  'indicesEqual': bool(np.array_equal(f['indices'][:], grid[:, 0])),
  'tissueEqual': bool(np.array_equal(f['tissue_fraction'][:], tissue)),
  'maxshape': list(f['features'].maxshape),
  'chunked': f['features'].chunks is not None,
  'coordsAttrs': {k: int(v) for k, v in f['coords'].attrs.items()},
  'attrs': attrs,
}, default=str))
`;

const PARQUET_CHECK = `
import sys, json, pyarrow.parquet as pq, numpy as np
path, prefix, dim = sys.argv[1], sys.argv[2], int(sys.argv[3])
features = np.fromfile(prefix + '.features', dtype='<f4').reshape(-1, dim)
coords = np.fromfile(prefix + '.coords', dtype='<i4').reshape(-1, 2)
grid = np.fromfile(prefix + '.grid', dtype='<i4').reshape(-1, 5)
tissue = np.fromfile(prefix + '.tissue', dtype='<f8')
pf = pq.ParquetFile(path)
t = pf.read()
emb = t.column('embedding').combine_chunks()
flat = emb.values.to_numpy().reshape(-1, dim)
col = lambda n: t.column(n).to_numpy()
md = {k.decode(): v.decode() for k, v in pf.metadata.metadata.items() if k != b'ARROW:schema'}
print(json.dumps({
  'schema': {f.name: str(f.type) for f in t.schema},
  'rows': t.num_rows,
  'rowGroups': pf.metadata.num_row_groups,
  'featuresEqual': bool(np.array_equal(flat.view('<u4'), features.view('<u4'))),
  'gridEqual': bool(all(np.array_equal(col(n), grid[:, i]) for i, n in enumerate(['index', 'x', 'y', 'width', 'height']))),
  'coordsEqual': bool(np.array_equal(col('x0'), coords[:, 0]) and np.array_equal(col('y0'), coords[:, 1])),
  'tissueEqual': bool(np.array_equal(col('tissue_fraction'), tissue)),
  'uids': sorted(set(t.column('study_instance_uid').to_pylist())) + sorted(set(t.column('series_instance_uid').to_pylist())),
  'metadata': md,
}))
`;

const DUCKDB_CHECK = `
import sys, json, duckdb, numpy as np
path, prefix, dim = sys.argv[1], sys.argv[2], int(sys.argv[3])
features = np.fromfile(prefix + '.features', dtype='<f4').reshape(-1, dim)
coords = np.fromfile(prefix + '.coords', dtype='<i4').reshape(-1, 2)
con = duckdb.connect(); con.execute('SET enable_progress_bar = false')
rows = con.execute(f"select x0, y0, embedding from read_parquet('{path}') order by \\"index\\"").fetchall()
emb = np.array([r[2] for r in rows], dtype='<f4')
print(json.dumps({
  'rows': len(rows),
  'type': str(con.execute(f"select typeof(embedding) from read_parquet('{path}') limit 1").fetchone()[0]),
  'featuresEqual': bool(np.array_equal(emb.view('<u4'), features.view('<u4'))),
  'coordsEqual': bool(np.array_equal(np.array([[r[0], r[1]] for r in rows]), coords)),
}))
`;

describe('HDF5 and Parquet results read by independent readers', () => {
  it('h5py reads features, level-0 coords and attributes exactly as written', async () => {
    const py = await pythonEnv();
    const prefix = await writeExpected(PATCHES);
    const target = path.join(dir, 'slide.h5');
    const writer = await Hdf5ResultWriter.open(target, header());
    for (let i = 0; i < PATCHES; i++) await writer.writePatch(patch(i));
    const summary = await writer.finish();
    expect(summary.patchCount).toBe(PATCHES);
    // No temporary file is left beside the result (toContain cannot take a matcher, so filter).
    expect((await readdir(dir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);

    const out = JSON.parse(await py.run(H5_CHECK, [target, prefix, String(DIM)]));
    expect(out.features).toEqual(['float32', [PATCHES, DIM]]);
    expect(out.coords).toEqual(['int32', [PATCHES, 2]]);
    expect(out.featuresEqual).toBe(true);
    expect(out.coordsEqual).toBe(true);
    expect(out.indicesEqual).toBe(true);
    expect(out.tissueEqual).toBe(true);
    expect(out.maxshape).toEqual([null, DIM]);
    expect(out.chunked).toBe(true);
    // 224 grid px × 2.004 = 448.896 level-0 px, rounded.
    expect(out.coordsAttrs).toEqual({ patch_size: 224, patch_size_level0: 449, patch_level: 1 });
    expect(out.attrs).toMatchObject({
      schema_version: '1.0',
      model_name: 'path-foundation',
      model_sha256: 'ab'.repeat(32),
      study_instance_uid: '1.2.3',
      series_instance_uid: '1.2.3.4',
      sop_instance_uids: ['1.2.3.4.5', '1.2.3.4.6'],
      pixel_spacing_um: 0.499998,
      level0_pixel_spacing_um: [0.2495, 0.2495],
      level: 1,
      patch_size: 224,
      patch_size_level0: [449, 449],
      patch_count: PATCHES,
      embedding_dimension: DIM,
    });
    expect(out.attrs.level0_per_grid_pixel[0]).toBeCloseTo(2.004, 12);
  });

  it('pyarrow and DuckDB read every row, the fixed-size embedding list and the metadata', async () => {
    const py = await pythonEnv();
    const prefix = await writeExpected(PATCHES);
    const target = path.join(dir, 'slide.parquet');
    const writer = await ParquetResultWriter.open(target, header());
    for (let i = 0; i < PATCHES; i++) await writer.writePatch(patch(i));
    const summary = await writer.finish();
    expect(summary).toMatchObject({ patchCount: PATCHES, rowGroups: 3 });
    expect((await readdir(dir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);

    const out = JSON.parse(await py.run(PARQUET_CHECK, [target, prefix, String(DIM)]));
    expect(out.schema).toEqual({
      study_instance_uid: 'string',
      series_instance_uid: 'string',
      index: 'int32',
      x: 'int32',
      y: 'int32',
      width: 'int32',
      height: 'int32',
      x0: 'int32',
      y0: 'int32',
      tissue_fraction: 'double',
      embedding: `fixed_size_list<item: float not null>[${DIM}]`,
    });
    expect(out.rows).toBe(PATCHES);
    expect(out.rowGroups).toBe(3);
    expect(out.featuresEqual).toBe(true);
    expect(out.gridEqual).toBe(true);
    expect(out.coordsEqual).toBe(true);
    expect(out.tissueEqual).toBe(true);
    expect(out.uids).toEqual(['1.2.3', '1.2.3.4']);
    expect(out.metadata).toMatchObject({
      'pathembed:schema_version': '1.0',
      'pathembed:model_name': 'path-foundation',
      'pathembed:model_sha256': 'ab'.repeat(32),
      'pathembed:pixel_spacing_um': '0.499998',
      'pathembed:patch_size_level0': '449',
    });
    expect(JSON.parse(out.metadata.pathembed)).toMatchObject({
      jobKey: 'ml-files-test',
      schemaVersion: '1.0',
    });

    const duck = JSON.parse(
      (await py.run(DUCKDB_CHECK, [target, prefix, String(DIM)])).trim().split('\n').pop()!,
    );
    // DuckDB reads the list as a variable-length FLOAT[] (it does not use Arrow's fixed size); values are equal.
    expect(duck).toEqual({ rows: PATCHES, type: 'FLOAT[]', featuresEqual: true, coordsEqual: true });
  });

  it('an empty result is a valid file of zero rows', async () => {
    const py = await pythonEnv();
    const h5 = await Hdf5ResultWriter.open(path.join(dir, 'empty.h5'), header());
    expect(await h5.finish()).toMatchObject({ patchCount: 0 });
    const pq = await ParquetResultWriter.open(path.join(dir, 'empty.parquet'), header());
    expect(await pq.finish()).toMatchObject({ patchCount: 0 });
    const out = await py.run(
      `import sys, h5py, pyarrow.parquet as pq
f = h5py.File(sys.argv[1]); t = pq.read_table(sys.argv[2])
print(f['features'].shape, f['coords'].shape, t.num_rows, t.schema.field('embedding').type)`,
      [path.join(dir, 'empty.h5'), path.join(dir, 'empty.parquet')],
    );
    expect(out.trim()).toBe(`(0, ${DIM}) (0, 2) 0 fixed_size_list<item: float not null>[${DIM}]`);
  });

  it('refuses patches out of order or of the wrong width, naming the patch', async () => {
    const h5 = await Hdf5ResultWriter.open(path.join(dir, 'bad.h5'), header());
    await h5.writePatch(patch(5));
    await expect(h5.writePatch(patch(2))).rejects.toThrow(
      /patch index 7 is not after the previous one \(16\)/,
    );
    await h5.abort();
    const pq = await ParquetResultWriter.open(path.join(dir, 'bad.parquet'), header());
    await expect(pq.writePatch({ ...patch(0), embedding: new Float32Array(3) })).rejects.toThrow(
      /patch 1 has 3 components, expected 384/,
    );
    await pq.abort();
    expect((await readdir(dir)).filter((f) => f.startsWith('bad'))).toEqual([]);
  });
});

describe('a full disk', () => {
  let mountPoint: string;
  /** Far less than the 20k-patch files (about 32 MB each). */
  const TMPFS_BYTES = 4 * 1024 * 1024;
  beforeAll(async () => {
    mountPoint = await mkdtemp(path.join(os.tmpdir(), 'pathembed-mlfull-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${TMPFS_BYTES}`, 'tmpfs', mountPoint]);
  });
  afterAll(async () => {
    try {
      execFileSync('umount', [mountPoint]);
    } finally {
      await rm(mountPoint, { recursive: true, force: true });
    }
  });

  for (const [kind, open] of [
    ['hdf5', (t: string) => Hdf5ResultWriter.open(t, header())],
    ['parquet', (t: string) => ParquetResultWriter.open(t, header())],
  ] as const) {
    it(`${kind}: RESULT_WRITE_FAILED, and no temporary or partial file is left`, async () => {
      const writer = await open(path.join(mountPoint, `slide.${kind}`));
      let error: unknown;
      try {
        for (let i = 0; i < PATCHES; i++) await writer.writePatch(patch(i));
        await writer.finish();
      } catch (err) {
        error = err;
      }
      expect(isPathembedError(error) && error.code).toBe('RESULT_WRITE_FAILED');
      expect((error as Error).message).toContain(`slide.${kind}`);
      expect(await readdir(mountPoint)).toEqual([]);
    });
  }
});
