/**
 * The searchable form of one job's result: its patches' level-0 rectangles, their L2-normalised
 * embeddings and a similarity index over them, plus the slide they came from. Built from anything
 * shaped like a result (the JSON result read back, or the queue's chunk files at assembly), and
 * stored as one binary value beside the results (`jobs/<id>/search-index.bin`) so a query loads it
 * instead of parsing the JSON result.
 *
 * Layout, little-endian: "PESEARCH", u32 format version, u32 header length, the header as UTF-8
 * JSON, zero padding to a multiple of 8, then int32 [patchIndex, x, y, width, height] per patch,
 * float32 normalised embeddings (count × dimension), then the HNSW graph's bytes (usearch's format;
 * none for an exact index, which needs only the embeddings).
 */
import { PathembedError } from '../errors.js';
import { type Level0Scale, level0Rect, level0Scale } from '../results/level0-coordinates.js';
import type { ResultHeader, ResultSource } from '../results/result-document.js';
import type { ResultPatch } from '../results/result-writer.js';
import {
  type BuildOptions,
  buildSimilarityIndex,
  ExactIndex,
  HnswIndex,
  type HnswSettings,
  type IndexKind,
  normaliseRows,
  type SimilarityIndex,
} from './similarity-index.js';

/** The slide a neighbour lies in: the result's source block without its instance list. */
export type SlideRef =
  | {
      readonly kind: 'dicomweb';
      readonly baseUrl: string;
      readonly studyInstanceUid: string;
      readonly seriesInstanceUid: string;
    }
  | {
      readonly kind: 'local';
      readonly folder: string;
      readonly studyInstanceUid?: string;
      readonly seriesInstanceUid?: string;
    };

/** A patch as the result states it: a target-grid rectangle and its embedding. */
export type IndexablePatch = Pick<ResultPatch, 'index' | 'x' | 'y' | 'width' | 'height' | 'embedding'>;

/** What of a result header the index needs: where the slide is, the geometry, the width. */
export type IndexableHeader = Pick<ResultHeader, 'source' | 'level' | 'baseLevel' | 'embeddingDimension'>;

/** A patch rectangle in level-0 pixels, with its position in the job's patch list. */
export interface Level0Patch {
  readonly patchIndex: number;
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
}

const MAGIC = 'PESEARCH';
const FORMAT_VERSION = 1;
const FIELDS = 5;
/** Patches a builder makes room for when the count is not known; it doubles from there. */
const DEFAULT_CAPACITY = 1024;

interface StoredHeader {
  readonly jobId: string;
  readonly slide: SlideRef;
  readonly dimension: number;
  readonly count: number;
  readonly kind: IndexKind;
  readonly hnsw: HnswSettings | null;
  readonly graphBytes: number;
}

export function slideRef(source: ResultSource): SlideRef {
  return source.kind === 'dicomweb'
    ? {
        kind: 'dicomweb',
        baseUrl: source.baseUrl,
        studyInstanceUid: source.studyInstanceUid,
        seriesInstanceUid: source.seriesInstanceUid,
      }
    : {
        kind: 'local',
        folder: source.folder,
        ...(source.studyInstanceUid ? { studyInstanceUid: source.studyInstanceUid } : {}),
        ...(source.seriesInstanceUid ? { seriesInstanceUid: source.seriesInstanceUid } : {}),
      };
}

export class JobIndex {
  constructor(
    readonly jobId: string,
    readonly slide: SlideRef,
    /** int32 [patchIndex, x, y, width, height] per row, level-0 pixels. */
    readonly table: Int32Array,
    readonly index: SimilarityIndex,
  ) {}

  get size(): number {
    return this.index.size;
  }

  /** Bytes held in memory (the cache's measure): table, vectors, and the graph's copy if any. */
  get bytes(): number {
    const vectors = this.index.size * this.index.dimension * 4;
    const graph = this.index instanceof HnswIndex ? vectors : 0;
    return this.table.byteLength + vectors + graph;
  }

  patch(row: number): Level0Patch {
    const t = this.table;
    const o = row * FIELDS;
    return { patchIndex: t[o]!, x: t[o + 1]!, y: t[o + 2]!, width: t[o + 3]!, height: t[o + 4]! };
  }

  /** The normalised embedding of a row. */
  vector(row: number): Float32Array {
    const d = this.index.dimension;
    return (this.index as ExactIndex | HnswIndex).vectors.subarray(row * d, (row + 1) * d);
  }

  /**
   * The row of the patch containing level-0 point (x, y) (x ≤ px < x + width). Patches overlap when
   * the stride is below the patch size: the one whose centre is nearest wins, then the lower index.
   */
  rowAt(x: number, y: number): number | undefined {
    let best: number | undefined;
    let bestDistance = Number.POSITIVE_INFINITY;
    const t = this.table;
    for (let row = 0; row < this.size; row++) {
      const o = row * FIELDS;
      const px = t[o + 1]!;
      const py = t[o + 2]!;
      const w = t[o + 3]!;
      const h = t[o + 4]!;
      if (x < px || x >= px + w || y < py || y >= py + h) continue;
      const d = (x - (px + w / 2)) ** 2 + (y - (py + h / 2)) ** 2;
      if (d < bestDistance) {
        bestDistance = d;
        best = row;
      }
    }
    return best;
  }
}

/**
 * Collects one job's patches (in any order; patches without an embedding are left out by the
 * caller) and builds its index: fed as the patches stream past (the assembler feeds it from the
 * JSON pass, so the chunk files are not read again for it). Holds count × dimension float32 values.
 */
export class JobIndexBuilder {
  readonly #rows: number[] = [];
  readonly #scale: Level0Scale;
  #vectors: Float32Array;
  #count = 0;

  /** `capacity`: the patch count when known (the plan's), so the buffer is allocated once. */
  constructor(
    readonly jobId: string,
    private readonly header: IndexableHeader,
    capacity = DEFAULT_CAPACITY,
  ) {
    this.#scale = level0Scale(header);
    this.#vectors = new Float32Array(Math.max(1, capacity) * header.embeddingDimension);
  }

  add(p: IndexablePatch): void {
    const dimension = this.header.embeddingDimension;
    if (p.embedding.length !== dimension) {
      throw new PathembedError(
        'INTERNAL',
        `Job ${this.jobId}: patch ${p.index} has ${p.embedding.length} embedding values, the result ${dimension}`,
      );
    }
    if ((this.#count + 1) * dimension > this.#vectors.length) {
      const grown = new Float32Array(this.#vectors.length * 2);
      grown.set(this.#vectors);
      this.#vectors = grown;
    }
    this.#vectors.set(p.embedding, this.#count * dimension);
    const r = level0Rect(p, this.#scale);
    this.#rows.push(p.index, r.x, r.y, r.width, r.height);
    this.#count++;
  }

  async build(options: BuildOptions): Promise<JobIndex> {
    const dimension = this.header.embeddingDimension;
    const unit = normaliseRows(this.#vectors.subarray(0, this.#count * dimension), dimension);
    return new JobIndex(
      this.jobId,
      slideRef(this.header.source),
      Int32Array.from(this.#rows),
      await buildSimilarityIndex(unit, dimension, options),
    );
  }
}

/** Builds the index of one job from its header and its patches (see JobIndexBuilder). */
export async function buildJobIndex(
  jobId: string,
  header: IndexableHeader,
  patches: AsyncIterable<IndexablePatch> | Iterable<IndexablePatch>,
  options: BuildOptions,
): Promise<JobIndex> {
  const builder = new JobIndexBuilder(jobId, header);
  for await (const p of patches) builder.add(p);
  return builder.build(options);
}

/** The index as one binary value (layout in the module doc). */
export async function encodeJobIndex(job: JobIndex): Promise<Buffer> {
  const graph = job.index instanceof HnswIndex ? await job.index.serialise() : new Uint8Array(0);
  const header: StoredHeader = {
    jobId: job.jobId,
    slide: job.slide,
    dimension: job.index.dimension,
    count: job.size,
    kind: job.index.kind,
    hnsw: job.index instanceof HnswIndex ? job.index.settings : null,
    graphBytes: graph.byteLength,
  };
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const start = 16 + json.length;
  const padded = Math.ceil(start / 8) * 8;
  const prefix = Buffer.alloc(padded);
  prefix.write(MAGIC, 0, 'ascii');
  prefix.writeUInt32LE(FORMAT_VERSION, 8);
  prefix.writeUInt32LE(json.length, 12);
  json.copy(prefix, 16);
  const vectors = (job.index as ExactIndex | HnswIndex).vectors;
  return Buffer.concat([
    prefix,
    Buffer.from(job.table.buffer, job.table.byteOffset, job.table.byteLength),
    Buffer.from(vectors.buffer, vectors.byteOffset, vectors.byteLength),
    graph,
  ]);
}

function corrupt(name: string, what: string): PathembedError {
  return new PathembedError('INTERNAL', `${name} is not a pathembed search index: ${what}`, { name });
}

/** Reads an encoded index back; `name` (its store key) goes into errors. */
export async function decodeJobIndex(bytes: Uint8Array, name: string): Promise<JobIndex> {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < 16 || buf.toString('ascii', 0, 8) !== MAGIC) throw corrupt(name, 'no PESEARCH magic');
  const version = buf.readUInt32LE(8);
  if (version !== FORMAT_VERSION)
    throw corrupt(name, `format ${version}, this reader knows ${FORMAT_VERSION}`);
  const jsonLength = buf.readUInt32LE(12);
  const header = JSON.parse(buf.toString('utf8', 16, 16 + jsonLength)) as StoredHeader;
  let offset = Math.ceil((16 + jsonLength) / 8) * 8;
  const tableBytes = header.count * FIELDS * 4;
  const vectorBytes = header.count * header.dimension * 4;
  if (buf.length !== offset + tableBytes + vectorBytes + header.graphBytes) {
    throw corrupt(
      name,
      `${buf.length} bytes, the header describes ${offset + tableBytes + vectorBytes + header.graphBytes}`,
    );
  }
  // Copies: typed arrays need aligned offsets, and a cached index must not pin a larger buffer.
  const table = new Int32Array(
    buf.buffer.slice(buf.byteOffset + offset, buf.byteOffset + offset + tableBytes),
  );
  offset += tableBytes;
  const vectors = new Float32Array(
    buf.buffer.slice(buf.byteOffset + offset, buf.byteOffset + offset + vectorBytes),
  );
  offset += vectorBytes;
  const index: SimilarityIndex =
    header.kind === 'hnsw' && header.hnsw
      ? await HnswIndex.load(vectors, header.dimension, buf.subarray(offset), header.hnsw)
      : new ExactIndex(vectors, header.dimension);
  return new JobIndex(header.jobId, header.slide, table, index);
}
