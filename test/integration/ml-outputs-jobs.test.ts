/**
 * HDF5 and Parquet outputs of real jobs, read by h5py, pyarrow and DuckDB and compared value by
 * value with the JSON result of the same job: through the queue (API submit, chunk jobs, the
 * assembler streaming chunk files, served by GET /v1/jobs/:id/result?format=) and in one process
 * (runEmbeddingJob, as `pathembed embed --hdf5 --parquet` runs it). The slide is read at 1 µm/px
 * from its 2× level, so level-0 coordinates are twice the grid's and the conversion is exercised.
 */
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDefaultModel } from '../../models/default-model.js';
import { loadConfig } from '../../src/config.js';
import { engineOptions, pipelineDeps } from '../../src/domain-options.js';
import { EmbeddingEngine } from '../../src/embed/index.js';
import { createLogger } from '../../src/log.js';
import { runEmbeddingJob } from '../../src/pipeline/index.js';
import { pythonEnv } from '../helpers/python-env.js';
import { type Harness, startHarness } from '../helpers/service-harness.js';
import { fixture, services } from '../helpers/services.js';

/** 1 µm/px reads the 2× level of the 0.5 µm/px synthetic slide; a 56 px stride gives 15 patches. */
const OPTIONS = { minTissue: 0, pixelSpacingUm: 1, stridePx: 56 };
const EXPECTED_PATCHES = 15;
const LEVEL0_PER_GRID_PIXEL = 2;

let dir: string;
let h: Harness;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'pathembed-mljobs-'));
  h = await startHarness({ redisUrl: services().redisUrl });
});
afterAll(async () => {
  await h?.close();
  await rm(dir, { recursive: true, force: true });
});

/**
 * Compares the HDF5 and Parquet files with the JSON result: features bit for bit as float32,
 * coords = round(grid × scale) with the scale derived from the JSON header, every column.
 */
const COMPARE = `
import sys, json, math, h5py, numpy as np, pyarrow.parquet as pq, duckdb
doc = json.load(open(sys.argv[1])); h5path, pqpath = sys.argv[2], sys.argv[3]
lv, base = doc['level'], doc['baseLevel']
sx = lv['pixelSpacingUm']['x'] * lv['scaleFromGrid'] / base['pixelSpacingUm']['x']
sy = lv['pixelSpacingUm']['y'] * lv['scaleFromGrid'] / base['pixelSpacingUm']['y']
P = doc['patches']
emb = np.array([p['embedding'] for p in P], dtype=np.float32)
coords = np.array([[math.floor(p['x'] * sx + 0.5), math.floor(p['y'] * sy + 0.5)] for p in P], dtype=np.int32)
f = h5py.File(h5path, 'r')
t = pq.read_table(pqpath)
pemb = t.column('embedding').combine_chunks().values.to_numpy().reshape(len(P), -1) if len(P) else np.zeros((0, 384), np.float32)
col = lambda n: t.column(n).to_pylist()
kv = {k.decode(): v.decode() for k, v in pq.read_metadata(pqpath).metadata.items() if k != b'ARROW:schema'}
d = duckdb.connect(); d.execute('SET enable_progress_bar = false')
drows = d.execute(f"select embedding, x0, y0 from read_parquet('{pqpath}') order by \\"index\\"").fetchall()
a = lambda v: v.decode() if isinstance(v, bytes) else v
print(json.dumps({
  'n': len(P), 'scale': [sx, sy],
  'h5': {
    'shape': list(f['features'].shape), 'dtype': str(f['features'].dtype), 'coordsDtype': str(f['coords'].dtype),
    'featuresEqual': bool(np.array_equal(f['features'][:].view('<u4'), emb.view('<u4'))),
    'coordsEqual': bool(np.array_equal(f['coords'][:], coords)),
    'indices': f['indices'][:].tolist(),
    'attrs': {k: a(f.attrs[k]) if not hasattr(f.attrs[k], 'tolist') else f.attrs[k].tolist() for k in
      ['model_name', 'model_sha256', 'study_instance_uid', 'series_instance_uid', 'pixel_spacing_um', 'level', 'patch_size', 'patch_size_level0', 'schema_version', 'patch_count']},
    'coordsAttrs': {k: int(v) for k, v in f['coords'].attrs.items()},
  },
  'parquet': {
    'rows': t.num_rows,
    'featuresEqual': bool(np.array_equal(pemb.view('<u4'), emb.view('<u4'))),
    'gridEqual': all(col(k) == [p[k] for p in P] for k in ['index', 'x', 'y', 'width', 'height']),
    'tissueEqual': col('tissue_fraction') == [p['tissueFraction'] for p in P],
    'coordsEqual': col('x0') == coords[:, 0].tolist() and col('y0') == coords[:, 1].tolist(),
    'uids': [sorted(set(col('study_instance_uid'))), sorted(set(col('series_instance_uid')))],
    'kv': {k: kv[k] for k in ['pathembed:model_name', 'pathembed:model_sha256', 'pathembed:pixel_spacing_um', 'pathembed:schema_version']},
  },
  'duckdb': {
    'featuresEqual': bool(np.array_equal(np.array([r[0] for r in drows], dtype=np.float32).view('<u4'), emb.view('<u4'))),
    'coordsEqual': [[r[1], r[2]] for r in drows] == coords.tolist(),
  },
  'json': {'model': doc['model'], 'study': doc['source']['studyInstanceUid'], 'series': doc['source']['seriesInstanceUid'], 'spacing': doc['grid']['pixelSpacingUm']},
}))
`;

async function compare(jsonPath: string, h5Path: string, parquetPath: string) {
  const py = await pythonEnv();
  const out = JSON.parse((await py.run(COMPARE, [jsonPath, h5Path, parquetPath])).trim().split('\n').pop()!);
  const { json } = out;
  expect(out.n).toBe(EXPECTED_PATCHES);
  expect(out.scale).toEqual([LEVEL0_PER_GRID_PIXEL, LEVEL0_PER_GRID_PIXEL]);
  expect(out.h5).toMatchObject({
    shape: [EXPECTED_PATCHES, 384],
    dtype: 'float32',
    coordsDtype: 'int32',
    featuresEqual: true,
    coordsEqual: true,
    indices: Array.from({ length: EXPECTED_PATCHES }, (_, i) => i),
    attrs: {
      model_name: json.model.name,
      model_sha256: json.model.sha256,
      study_instance_uid: json.study,
      series_instance_uid: json.series,
      pixel_spacing_um: json.spacing,
      level: 1,
      patch_size: 224,
      patch_size_level0: [448, 448],
      schema_version: '1.0',
      patch_count: EXPECTED_PATCHES,
    },
    coordsAttrs: { patch_size: 224, patch_size_level0: 448, patch_level: 1 },
  });
  expect(out.parquet).toEqual({
    rows: EXPECTED_PATCHES,
    featuresEqual: true,
    gridEqual: true,
    tissueEqual: true,
    coordsEqual: true,
    uids: [[json.study], [json.series]],
    kv: {
      'pathembed:model_name': json.model.name,
      'pathembed:model_sha256': json.model.sha256,
      'pathembed:pixel_spacing_um': String(json.spacing),
      'pathembed:schema_version': '1.0',
    },
  });
  expect(out.duckdb).toEqual({ featuresEqual: true, coordsEqual: true });
}

async function download(url: string, file: string, contentType: string): Promise<void> {
  const res = await fetch(url);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toContain(contentType);
  const bytes = Buffer.from(await res.arrayBuffer());
  expect(Number(res.headers.get('content-length'))).toBe(bytes.length);
  await writeFile(file, bytes);
}

describe('HDF5 and Parquet outputs of real jobs', () => {
  it('through the queue: written from the chunk files, served by the API, equal to the JSON', async () => {
    const id = await h.submit(fixture('synthetic-full').seriesUrl, {
      options: OPTIONS,
      outputs: ['json', 'hdf5', 'parquet', 'dicom-sr'],
    });
    expect((await h.final(id)).state).toBe('completed');
    const status = (await (await fetch(`${h.url}/v1/jobs/${id}`)).json()) as {
      results: Record<string, unknown>;
      progress: { chunks: number };
    };
    expect(status.progress.chunks).toBeGreaterThan(1);
    expect(status.results).toMatchObject({
      json: `/v1/jobs/${id}/result`,
      hdf5: `/v1/jobs/${id}/result?format=hdf5`,
      parquet: `/v1/jobs/${id}/result?format=parquet`,
    });
    const files = {
      json: path.join(dir, 'q.json'),
      h5: path.join(dir, 'q.h5'),
      pq: path.join(dir, 'q.parquet'),
    };
    await download(`${h.url}/v1/jobs/${id}/result`, files.json, 'application/json');
    await download(`${h.url}/v1/jobs/${id}/result?format=json`, files.json, 'application/json');
    await download(`${h.url}/v1/jobs/${id}/result?format=hdf5`, files.h5, 'application/x-hdf5');
    await download(
      `${h.url}/v1/jobs/${id}/result?format=parquet`,
      files.pq,
      'application/vnd.apache.parquet',
    );
    await download(`${h.url}/v1/jobs/${id}/result?format=sr`, path.join(dir, 'q.dcm'), 'application/dicom');
    await compare(files.json, files.h5, files.pq);
    expect(await h.tempFiles()).toEqual([]);
  });

  it('404 names the output that was not asked for; 400 names an unknown format', async () => {
    const id = await h.submit(fixture('synthetic-full').seriesUrl, {
      options: { ...OPTIONS, stridePx: 112 },
      outputs: ['json'],
    });
    expect((await h.final(id)).state).toBe('completed');
    const status = (await (await fetch(`${h.url}/v1/jobs/${id}`)).json()) as {
      results: Record<string, unknown>;
    };
    expect(status.results).toMatchObject({ hdf5: null, parquet: null });
    for (const format of ['hdf5', 'parquet'] as const) {
      const res = await fetch(`${h.url}/v1/jobs/${id}/result?format=${format}`);
      expect(res.status).toBe(404);
      const body = (await res.json()) as { error: { message: string } };
      expect(JSON.stringify(body)).toContain(`the ${format} output was not asked for`);
    }
    const bad = await fetch(`${h.url}/v1/jobs/${id}/result?format=csv`);
    expect(bad.status).toBe(400);
    expect(await bad.text()).toContain('format');
  });

  it('in one process (pathembed embed --hdf5 --parquet): the same files, written beside the JSON', async () => {
    const config = loadConfig({
      PATHEMBED_INTRA_OP_THREADS: '2',
      PATHEMBED_EXECUTION_PROVIDER: 'cpu',
      PATHEMBED_BATCH_SIZE: '4',
      PATHEMBED_RESULTS_DIR: dir,
    });
    const logger = createLogger('silent');
    await ensureDefaultModel(engineOptions(config), logger);
    const engine = await EmbeddingEngine.open(engineOptions(config), logger);
    try {
      const out = path.join(dir, 'cli');
      const files = { json: `${out}.json`, h5: `${out}.h5`, pq: `${out}.parquet` };
      const outcome = await runEmbeddingJob(
        { kind: 'local', folder: fixture('synthetic-full').dir },
        OPTIONS,
        { jsonPath: files.json, hdf5Path: files.h5, parquetPath: files.pq },
        pipelineDeps(config, logger, engine),
      );
      expect(outcome.files?.hdf5).toMatchObject({ patchCount: EXPECTED_PATCHES, path: files.h5 });
      expect(outcome.files?.parquet).toMatchObject({ patchCount: EXPECTED_PATCHES, path: files.pq });
      await compare(files.json, files.h5, files.pq);
      expect((await readdir(dir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    } finally {
      await engine.close();
    }
  });
});
