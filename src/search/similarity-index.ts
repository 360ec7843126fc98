/**
 * One concept: the k nearest vectors to a query by cosine distance (1 − cos, 0..2), over vectors
 * L2-normalised once when the index is built. Two implementations behind one interface:
 *
 * - `ExactIndex` scans every vector (native SIMD, then double precision for the k). It needs nothing but the
 *   vectors, answers exactly, and is faster than a graph below a few thousand vectors (the
 *   crossover measured by `npm run bench:search`, docs/benchmarks.md).
 * - `HnswIndex` is usearch's HNSW graph (docs/decisions.md says why usearch). Its candidates are
 *   re-ranked with the exact distance from the stored float32 vectors, so both kinds report the
 *   same distance for the same pair, whatever quantisation the graph uses.
 *
 * `buildSimilarityIndex` picks the kind by size (`exactBelow`, PATHEMBED_SIMILARITY_EXACT_BELOW).
 */
import { randomBytes } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import usearch, { type Matches, type ScalarKind, type Index as UsearchIndex } from 'usearch';
import { PathembedError } from '../errors.js';

export type IndexKind = 'exact' | 'hnsw';
export type HnswQuantization = 'f32' | 'f16' | 'i8';

/** HNSW construction and search settings; defaults meet recall@10 ≥ 0.95 (bench/search.ts). */
export interface HnswSettings {
  /** Graph edges per node (HNSW's M). Default 16. */
  readonly connectivity: number;
  /** Candidate list size while inserting (efConstruction). Default 128. */
  readonly expansionAdd: number;
  /** Candidate list size while searching (ef). Default 128: recall@10 0.97 at 10^6 clustered vectors, where 64 gives 0.91. */
  readonly expansionSearch: number;
  /** Scalar type of the graph's own copy of the vectors. Default f16 (half the memory, same recall). */
  readonly quantization: HnswQuantization;
}

export const DEFAULT_HNSW: HnswSettings = {
  connectivity: 16,
  expansionAdd: 128,
  expansionSearch: 128,
  quantization: 'f16',
};

/** The ids (row numbers 0..size-1) of the k nearest vectors and their distances, nearest first. */
export interface Neighbours {
  readonly ids: number[];
  readonly distances: number[];
}

export interface SimilarityIndex {
  readonly kind: IndexKind;
  /** Number of vectors. */
  readonly size: number;
  readonly dimension: number;
  /** The k nearest rows to `query` (any length-`dimension` vector; it is normalised here). */
  search(query: Float32Array, k: number): Neighbours;
}

/** L2-normalises `count` rows of `dimension` values into a new array (a zero row stays zero). */
export function normaliseRows(vectors: Float32Array, dimension: number): Float32Array {
  const out = new Float32Array(vectors.length);
  for (let row = 0; row < vectors.length; row += dimension) {
    let sum = 0;
    for (let i = 0; i < dimension; i++) sum += vectors[row + i]! * vectors[row + i]!;
    const scale = sum > 0 ? 1 / Math.sqrt(sum) : 0;
    for (let i = 0; i < dimension; i++) out[row + i] = vectors[row + i]! * scale;
  }
  return out;
}

function checkQuery(query: Float32Array, dimension: number): Float32Array {
  if (query.length !== dimension) {
    throw new PathembedError(
      'INVALID_ARGUMENT',
      `The query embedding has ${query.length} values; this index holds vectors of ${dimension}`,
      { length: query.length, dimension },
    );
  }
  return normaliseRows(query, dimension);
}

/** 1 − cos between a normalised query and row `row` of the normalised matrix, in double precision. */
function distanceTo(unitQuery: Float32Array, vectors: Float32Array, row: number, dimension: number): number {
  let dot = 0;
  const base = row * dimension;
  for (let i = 0; i < dimension; i++) dot += unitQuery[i]! * vectors[base + i]!;
  // Float32 rounding can put a vector's distance to itself a hair below 0: the range stays 0..2.
  return Math.min(2, Math.max(0, 1 - dot));
}

/**
 * The k smallest of a stream of (distance, id), kept in a max-heap of size k: a scan of n vectors
 * costs n·log k compares, not a sort of n. Ties order by id so answers are deterministic.
 */
class TopK {
  readonly #k: number;
  readonly #d: number[] = [];
  readonly #id: number[] = [];

  constructor(k: number) {
    this.#k = k;
  }

  #worse(a: number, b: number): boolean {
    return this.#d[a]! > this.#d[b]! || (this.#d[a] === this.#d[b] && this.#id[a]! > this.#id[b]!);
  }

  #swap(a: number, b: number): void {
    [this.#d[a], this.#d[b]] = [this.#d[b]!, this.#d[a]!];
    [this.#id[a], this.#id[b]] = [this.#id[b]!, this.#id[a]!];
  }

  push(distance: number, id: number): void {
    if (this.#d.length < this.#k) {
      this.#d.push(distance);
      this.#id.push(id);
      let i = this.#d.length - 1;
      while (i > 0) {
        const parent = (i - 1) >> 1;
        if (!this.#worse(i, parent)) break;
        this.#swap(i, parent);
        i = parent;
      }
      return;
    }
    if (distance > this.#d[0]! || (distance === this.#d[0] && id > this.#id[0]!)) return;
    this.#d[0] = distance;
    this.#id[0] = id;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let top = i;
      if (l < this.#d.length && this.#worse(l, top)) top = l;
      if (r < this.#d.length && this.#worse(r, top)) top = r;
      if (top === i) break;
      this.#swap(i, top);
      i = top;
    }
  }

  sorted(): Neighbours {
    const order = this.#d
      .map((_, i) => i)
      .sort((a, b) => this.#d[a]! - this.#d[b]! || this.#id[a]! - this.#id[b]!);
    return { ids: order.map((i) => this.#id[i]!), distances: order.map((i) => this.#d[i]!) };
  }
}

/**
 * Brute force over the normalised vectors: exact, no build, no stored index. The scan is usearch's
 * native `exactSearch` (SIMD inner products, about 8x a JavaScript loop: 0.07 ms against 0.56 ms
 * for 1,000 vectors of 384), then the k found are re-ranked in double precision.
 */
export class ExactIndex implements SimilarityIndex {
  readonly kind = 'exact' as const;
  readonly size: number;

  constructor(
    /** Row-major, L2-normalised (normaliseRows). */
    readonly vectors: Float32Array,
    readonly dimension: number,
  ) {
    this.size = vectors.length / dimension;
  }

  search(query: Float32Array, k: number): Neighbours {
    const q = checkQuery(query, this.dimension);
    const want = Math.min(k, this.size);
    if (want === 0) return { ids: [], distances: [] };
    const matches = usearch.exactSearch(
      this.vectors,
      q,
      this.dimension,
      want,
      usearch.MetricKind.IP,
      1,
    ) as Matches;
    return rerank(q, this.vectors, this.dimension, matchIds(matches, this.size), want);
  }
}

/** Row ids of a usearch answer (it pads a short answer with keys past the end). */
function matchIds(matches: Matches, size: number): number[] {
  const ids: number[] = [];
  for (let i = 0; i < matches.keys.length; i++) {
    const key = matches.keys[i]!;
    if (key < BigInt(size)) ids.push(Number(key));
  }
  return ids;
}

/** Re-ranks candidate rows by their exact distance (see the module doc). */
function rerank(
  q: Float32Array,
  vectors: Float32Array,
  dimension: number,
  ids: number[],
  k: number,
): Neighbours {
  const top = new TopK(Math.min(k, ids.length));
  for (const id of ids) top.push(distanceTo(q, vectors, id, dimension), id);
  return top.sorted();
}

function usearchIndex(dimension: number, settings: HnswSettings): UsearchIndex {
  return new usearch.Index({
    dimensions: dimension,
    metric: usearch.MetricKind.Cos,
    quantization: settings.quantization as ScalarKind,
    connectivity: settings.connectivity,
    expansion_add: settings.expansionAdd,
    expansion_search: settings.expansionSearch,
    multi: false,
  });
}

/** usearch saves and loads by path only, so bytes pass through a private temporary file. */
async function withTempFile<T>(use: (file: string) => Promise<T>): Promise<T> {
  const file = path.join(tmpdir(), `pathembed-hnsw-${process.pid}-${randomBytes(6).toString('hex')}.usearch`);
  try {
    return await use(file);
  } finally {
    await rm(file, { force: true });
  }
}

/** usearch's HNSW graph over the rows, answers re-ranked exactly from the float32 vectors. */
export class HnswIndex implements SimilarityIndex {
  readonly kind = 'hnsw' as const;
  readonly size: number;
  readonly #graph: UsearchIndex;

  private constructor(
    readonly vectors: Float32Array,
    readonly dimension: number,
    graph: UsearchIndex,
    readonly settings: HnswSettings,
  ) {
    this.size = vectors.length / dimension;
    this.#graph = graph;
  }

  /**
   * Builds the graph over normalised `vectors` (row i gets key i); `threads` 0: usearch decides.
   * The native build blocks its thread, so it goes in slices with a turn of the event loop between
   * them: a worker assembling a 200,000-patch slide (about 100 s of building on 2 cores) keeps
   * renewing its job locks and heartbeats.
   */
  static async build(
    vectors: Float32Array,
    dimension: number,
    settings: HnswSettings,
    threads = 0,
  ): Promise<HnswIndex> {
    const graph = usearchIndex(dimension, settings);
    const count = vectors.length / dimension;
    for (let start = 0; start < count; start += BUILD_SLICE) {
      const end = Math.min(count, start + BUILD_SLICE);
      const keys = new BigUint64Array(end - start);
      for (let i = start; i < end; i++) keys[i - start] = BigInt(i);
      graph.add(keys, vectors.subarray(start * dimension, end * dimension), threads);
      if (end < count) await new Promise((resolve) => setImmediate(resolve));
    }
    return new HnswIndex(vectors, dimension, graph, settings);
  }

  /** The graph from `serialise`, over the same normalised vectors it was built on. */
  static async load(
    vectors: Float32Array,
    dimension: number,
    graphBytes: Uint8Array,
    settings: HnswSettings,
  ): Promise<HnswIndex> {
    const graph = usearchIndex(dimension, settings);
    await withTempFile(async (file) => {
      await writeFile(file, graphBytes);
      graph.load(file);
    });
    if (graph.size() !== vectors.length / dimension) {
      throw new PathembedError(
        'INTERNAL',
        `The stored HNSW graph holds ${graph.size()} vectors, its table ${vectors.length / dimension}`,
      );
    }
    return new HnswIndex(vectors, dimension, graph, settings);
  }

  /** The graph as bytes (usearch's own file format); the vectors are stored by the caller. */
  async serialise(): Promise<Uint8Array> {
    return withTempFile(async (file) => {
      this.#graph.save(file);
      return new Uint8Array(await readFile(file));
    });
  }

  search(query: Float32Array, k: number): Neighbours {
    const q = checkQuery(query, this.dimension);
    const want = Math.min(k, this.size);
    if (want === 0) return { ids: [], distances: [] };
    // One thread: a query is short, and the API's other requests need the second core.
    const matches = this.#graph.search(q, want, 1);
    return rerank(q, this.vectors, this.dimension, matchIds(matches, this.size), want);
  }
}

/** Vectors added per native call while building: about half a second of work on 2 cores. */
const BUILD_SLICE = 1024;

export interface BuildOptions {
  /** Below this many vectors the index is exact (PATHEMBED_SIMILARITY_EXACT_BELOW). */
  readonly exactBelow: number;
  readonly hnsw: HnswSettings;
  /** usearch build threads; 0 lets it decide. */
  readonly threads?: number;
}

/** Exact below `exactBelow` vectors, HNSW from there on. `vectors` must be normalised. */
export async function buildSimilarityIndex(
  vectors: Float32Array,
  dimension: number,
  options: BuildOptions,
): Promise<SimilarityIndex> {
  const size = vectors.length / dimension;
  return size < options.exactBelow
    ? new ExactIndex(vectors, dimension)
    : HnswIndex.build(vectors, dimension, options.hnsw, options.threads ?? 0);
}
