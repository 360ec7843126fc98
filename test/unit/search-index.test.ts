import { describe, expect, it } from 'vitest';
import { clusteredVectors, defaultClusters } from '../../bench/search-vectors.js';
import { isPathembedError } from '../../src/errors.js';
import {
  buildJobIndex,
  buildSimilarityIndex,
  DEFAULT_HNSW,
  decodeJobIndex,
  ExactIndex,
  encodeJobIndex,
  HnswIndex,
  type IndexableHeader,
  type IndexablePatch,
  JobIndexCache,
  MemoryIndexes,
  normaliseRows,
  searchSimilar,
} from '../../src/search/index.js';

const DIM = 384;

function rowOf(v: Float32Array, i: number, d = DIM): Float32Array {
  return v.subarray(i * d, (i + 1) * d);
}

/** 1 − cos in double precision, from the raw (unnormalised) vectors. */
function cosineDistance(a: Float32Array, b: Float32Array): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    na += a[i]! * a[i]!;
    nb += b[i]! * b[i]!;
  }
  return 1 - dot / Math.sqrt(na * nb);
}

async function rejection(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (err) {
    if (isPathembedError(err)) return err;
    throw err;
  }
  throw new Error('expected a PathembedError');
}

/** A header of a slide read at level 0 with a 2x downsample: grid px 1 = level-0 px 2. */
const HEADER: IndexableHeader = {
  source: {
    kind: 'dicomweb',
    baseUrl: 'http://store/dicom-web',
    studyInstanceUid: '1.2.3',
    seriesInstanceUid: '1.2.3.4',
    instanceUids: ['1.2.3.4.5'],
  },
  level: { index: 0, widthPx: 4000, heightPx: 3000, pixelSpacingUm: { x: 0.25, y: 0.25 }, scaleFromGrid: 2 },
  baseLevel: { widthPx: 4000, heightPx: 3000, pixelSpacingUm: { x: 0.25, y: 0.25 } },
  embeddingDimension: DIM,
};

function gridPatches(vectors: Float32Array, count: number, size = 224): IndexablePatch[] {
  const perRow = 8;
  return Array.from({ length: count }, (_, i) => ({
    index: i,
    x: (i % perRow) * size,
    y: Math.floor(i / perRow) * size,
    width: size,
    height: size,
    embedding: rowOf(vectors, i),
  }));
}

describe('similarity index', () => {
  it('exact search answers the known nearest vectors with 1 - cos distances', () => {
    const d = 4;
    const raw = new Float32Array([1, 0, 0, 0, 0, 2, 0, 0, 1, 1, 0, 0, -3, 0, 0, 0, 0, 0, 0, 5]);
    const index = new ExactIndex(normaliseRows(raw, d), d);
    const hits = index.search(new Float32Array([2, 0.2, 0, 0]), 5);
    // cos to [1,1,0,0] is (2+0.2)/(|q|·√2); q = (2, 0.2): |q| = 2.00998.
    expect(hits.ids).toEqual([0, 2, 1, 4, 3]);
    const q = new Float32Array([2, 0.2, 0, 0]);
    hits.ids.forEach((id, i) => {
      expect(hits.distances[i]).toBeCloseTo(cosineDistance(q, raw.subarray(id * d, id * d + d)), 6);
    });
    // k larger than the index: every vector, once.
    expect(index.search(q, 50).ids).toHaveLength(5);
  });

  it('HNSW finds ≥ 95% of the exact 10 nearest on 4,000 clustered vectors', async () => {
    const n = 4000;
    // Queries are 200 more draws of the same clusters, held out of the index.
    const all = clusteredVectors(n + 200, DIM, defaultClusters(n), 11);
    const unit = normaliseRows(all.subarray(0, n * DIM), DIM);
    const exact = new ExactIndex(unit, DIM);
    // The build yields to the event loop between slices (a worker's lock renewals run meanwhile).
    let turns = 0;
    const timer = setInterval(() => turns++, 0);
    const hnsw = await HnswIndex.build(unit, DIM, DEFAULT_HNSW);
    clearInterval(timer);
    expect(turns).toBeGreaterThanOrEqual(2);
    const queries = all.subarray(n * DIM);
    let found = 0;
    for (let q = 0; q < 200; q++) {
      const truth = new Set(exact.search(rowOf(queries, q), 10).ids);
      found += hnsw.search(rowOf(queries, q), 10).ids.filter((id) => truth.has(id)).length;
    }
    const recall = found / (200 * 10);
    expect(recall).toBeGreaterThanOrEqual(0.95);
  });

  it('switches from exact to HNSW at exactBelow', async () => {
    const unit = normaliseRows(clusteredVectors(300, DIM, defaultClusters(300), 3), DIM);
    const options = { exactBelow: 300, hnsw: DEFAULT_HNSW };
    expect((await buildSimilarityIndex(unit.subarray(0, 299 * DIM), DIM, options)).kind).toBe('exact');
    expect((await buildSimilarityIndex(unit, DIM, options)).kind).toBe('hnsw');
    expect((await buildSimilarityIndex(unit, DIM, { ...options, exactBelow: 301 })).kind).toBe('exact');
  });

  it('refuses a query of the wrong length', async () => {
    const index = new ExactIndex(normaliseRows(clusteredVectors(10, DIM, defaultClusters(10), 4), DIM), DIM);
    expect(() => index.search(new Float32Array(383), 3)).toThrow(
      /383 values; this index holds vectors of 384/,
    );
  });
});

describe('job index', () => {
  it.each([
    ['exact', 10_000],
    ['hnsw', 100],
  ] as const)('round-trips its stored form (%s) with identical answers', async (kind, exactBelow) => {
    const n = 1500;
    const raw = clusteredVectors(n, DIM, defaultClusters(n), 5);
    const built = await buildJobIndex('job-a', HEADER, gridPatches(raw, n), {
      exactBelow,
      hnsw: DEFAULT_HNSW,
    });
    expect(built.index.kind).toBe(kind);
    const bytes = await encodeJobIndex(built);
    const loaded = await decodeJobIndex(bytes, 'jobs/job-a/search-index.bin');
    expect(loaded.index.kind).toBe(kind);
    expect(loaded.size).toBe(n);
    expect(loaded.slide).toEqual(built.slide);
    expect(Buffer.from(loaded.table.buffer).equals(Buffer.from(built.table.buffer))).toBe(true);
    for (let q = 0; q < 50; q++) {
      const query = rowOf(raw, q * 29);
      expect(loaded.index.search(query, 20)).toEqual(built.index.search(query, 20));
    }
    // A truncated value is refused, not misread.
    await expect(decodeJobIndex(bytes.subarray(0, bytes.length - 1), 'x')).rejects.toThrow(
      /bytes, the header/,
    );
  });

  it('states patches in level-0 pixels and finds the patch under a point', async () => {
    const raw = clusteredVectors(20, DIM, defaultClusters(20), 6);
    const job = await buildJobIndex('job-b', HEADER, gridPatches(raw, 20), {
      exactBelow: 100,
      hnsw: DEFAULT_HNSW,
    });
    // Patch 9: grid (224, 224) size 224 → level 0 (448, 448) size 448.
    expect(job.patch(9)).toEqual({ patchIndex: 9, x: 448, y: 448, width: 448, height: 448 });
    expect(job.rowAt(448, 448)).toBe(9);
    expect(job.rowAt(895, 895)).toBe(9);
    expect(job.rowAt(896, 448)).toBe(10);
    expect(job.rowAt(8 * 448, 0)).toBeUndefined();
    expect(job.slide).toEqual({
      kind: 'dicomweb',
      baseUrl: 'http://store/dicom-web',
      studyInstanceUid: '1.2.3',
      seriesInstanceUid: '1.2.3.4',
    });
  });
});

describe('search service', () => {
  async function twoJobs() {
    const raw = clusteredVectors(600, DIM, defaultClusters(600), 8);
    const options = { exactBelow: 10_000, hnsw: DEFAULT_HNSW };
    const a = await buildJobIndex('job-a', HEADER, gridPatches(raw.subarray(0, 300 * DIM), 300), options);
    const b = await buildJobIndex('job-b', HEADER, gridPatches(raw.subarray(300 * DIM), 300), options);
    return { raw, provider: new MemoryIndexes([a, b]) };
  }

  it('answers a point with its own patch first and 1 - cos distances in order', async () => {
    const { raw, provider } = await twoJobs();
    const answer = await searchSimilar(provider, {
      scope: { jobId: 'job-a' },
      target: { patch: { jobId: 'job-a', x: 448 + 10, y: 20 } },
      k: 15,
    });
    expect(answer.index).toEqual({ kind: 'exact', size: 300, jobs: 1 });
    expect(answer.query.patch).toEqual({
      jobId: 'job-a',
      patchIndex: 1,
      x: 448,
      y: 0,
      width: 448,
      height: 448,
    });
    expect(answer.neighbours).toHaveLength(15);
    expect(answer.neighbours[0]).toMatchObject({ jobId: 'job-a', patchIndex: 1 });
    expect(answer.neighbours[0]!.distance).toBeLessThan(1e-6);
    for (let i = 1; i < 15; i++) {
      const n = answer.neighbours[i]!;
      expect(n.distance).toBeGreaterThanOrEqual(answer.neighbours[i - 1]!.distance);
      expect(n.distance).toBeCloseTo(cosineDistance(rowOf(raw, 1), rowOf(raw, n.patchIndex)), 5);
    }
  });

  it('searches a batch as the merge of its jobs, equal to exact search over the union', async () => {
    const { raw, provider } = await twoJobs();
    const answer = await searchSimilar(provider, {
      scope: { batchId: 'b1', jobIds: ['job-a', 'job-b'] },
      target: { embedding: rowOf(raw, 450) },
      k: 25,
    });
    expect(answer.index).toEqual({ kind: 'exact', size: 600, jobs: 2 });
    const union = new ExactIndex(normaliseRows(raw, DIM), DIM).search(rowOf(raw, 450), 25);
    expect(answer.neighbours.map((n) => (n.jobId === 'job-a' ? 0 : 300) + n.patchIndex)).toEqual(union.ids);
    expect(answer.neighbours[0]).toMatchObject({ jobId: 'job-b', patchIndex: 150 });
  });

  it('names the point and the job when the point is in no patch, and refuses a wrong-length embedding', async () => {
    const { provider } = await twoJobs();
    const outside = await rejection(
      searchSimilar(provider, {
        scope: { jobId: 'job-a' },
        target: { patch: { jobId: 'job-a', x: 99999, y: 5 } },
        k: 5,
      }),
    );
    expect(outside.code).toBe('INVALID_ARGUMENT');
    expect(outside.message).toMatch(/\(99999, 5\).*job job-a/);
    const short = await rejection(
      searchSimilar(provider, {
        scope: { jobId: 'job-a' },
        target: { embedding: new Float32Array(12) },
        k: 5,
      }),
    );
    expect(short.code).toBe('INVALID_ARGUMENT');
    expect(short.message).toMatch(/12 values/);
    const foreign = await rejection(
      searchSimilar(provider, {
        scope: { batchId: 'b1', jobIds: ['job-a'] },
        target: { patch: { jobId: 'job-b', x: 0, y: 0 } },
        k: 5,
      }),
    );
    expect(foreign.message).toMatch(/job-b is not a completed job of batch b1/);
    const unknown = await rejection(provider.jobIndex('job-z'));
    expect(unknown.code).toBe('NOT_FOUND');
  });

  it('keeps the cache within its bytes, least recently used dropped first', async () => {
    const { provider } = await twoJobs();
    const a = await provider.jobIndex('job-a');
    const b = await provider.jobIndex('job-b');
    const cache = new JobIndexCache(a.bytes + b.bytes - 1);
    let loads = 0;
    const load = (x: typeof a) => async () => {
      loads++;
      return x;
    };
    await cache.get('job-a', load(a));
    await cache.get('job-b', load(b));
    expect(cache.bytes).toBe(b.bytes);
    await cache.get('job-b', load(b));
    expect(loads).toBe(2);
    await cache.get('job-a', load(a));
    expect(loads).toBe(3);
  });
});
