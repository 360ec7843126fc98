/**
 * Writes a result as Parquet, one row per patch, for pandas, polars, DuckDB and Spark:
 *
 *   study_instance_uid, series_instance_uid  string (dictionary-encoded: one value per file)
 *   index                                    int32   patch index in the plan (and the JSON result)
 *   x, y, width, height                      int32   rectangle in the target grid (as in the JSON)
 *   x0, y0                                   int32   level-0 pixel of the top-left corner
 *   tissue_fraction                          float64
 *   embedding                                fixed_size_list<float32>[D]
 *   key/value metadata: pathembed:* keys (model, spacing, layout version) and `pathembed` (the
 *   whole JSON result header), beside Arrow's own ARROW:schema (which keeps the list fixed-size).
 *
 * Built with apache-arrow (record batches in JS) and parquet-wasm (arrow-rs's Parquet writer in
 * WebAssembly), and streamed: patches are buffered into record batches of BATCH_PATCHES rows, a
 * row group is closed every ROW_GROUP_PATCHES rows, and the bytes flow into the sink as row groups are closed, so
 * memory does not grow with N. The sink is all-or-nothing (temporary file + rename, or a result
 * store upload); a failure aborts it.
 */
import {
  Field,
  FixedSizeList,
  Float32,
  Float64,
  Int32,
  makeData,
  RecordBatch,
  Schema,
  Struct,
  Table,
  tableToIPC,
  Utf8,
  vectorFromArray,
} from 'apache-arrow';
import * as parquet from 'parquet-wasm';
import { PathembedError } from '../errors.js';
import { type Level0Scale, level0PatchSize, level0Point, level0Scale } from './level0-coordinates.js';
import type { ResultHeader } from './result-document.js';
import { fileSink, type ResultSink, resultWriteFailed } from './result-sink.js';
import {
  checkResultPatch,
  completeResultHeader,
  type ResultHeaderInput,
  type ResultPatch,
} from './result-writer.js';

/** Version of this file layout (columns and metadata keys), stated in every file. */
export const PARQUET_LAYOUT_VERSION = '1.0';
/**
 * Patches per row group: 8,192 × 384 float32 is 12.6 MB of embeddings, within the usual advice
 * for row groups that scan well in DuckDB and polars; arrow-rs holds one row group's encoded
 * pages until it closes it.
 */
export const ROW_GROUP_PATCHES = 8192;
/**
 * Patches per record batch handed to parquet-wasm (1.5 MB of embeddings). Smaller than a row
 * group on purpose: measured with whole 12.6 MB row-group batches, the WebAssembly heap kept
 * growing with N (large blocks fragment its allocator); with 1,024-row batches it stays flat.
 */
const BATCH_PATCHES = 1024;

export interface ParquetFileSummary {
  readonly patchCount: number;
  readonly bytes: number;
  readonly rowGroups: number;
}

const INT_COLUMNS = ['index', 'x', 'y', 'width', 'height', 'x0', 'y0'] as const;
type IntColumn = (typeof INT_COLUMNS)[number];

const writeFailed = (target: string, err: unknown) => resultWriteFailed('Parquet result', target, err);

function arrowSchema(dimension: number): Schema {
  return new Schema([
    new Field('study_instance_uid', new Utf8(), true),
    new Field('series_instance_uid', new Utf8(), true),
    ...INT_COLUMNS.map((name) => new Field(name, new Int32(), false)),
    new Field('tissue_fraction', new Float64(), false),
    new Field('embedding', new FixedSizeList(dimension, new Field('item', new Float32(), false)), false),
  ]);
}

/** The key/value metadata: flat keys for quick reads, and the whole JSON header for the rest. */
function keyValueMetadata(header: ResultHeader, scale: Level0Scale): Map<string, string> {
  const level0Size = level0PatchSize(header.parameters.patchSizePx, scale);
  return new Map([
    ['pathembed:schema_version', PARQUET_LAYOUT_VERSION],
    ['pathembed:model_name', header.model.name],
    ['pathembed:model_version', header.model.version],
    ['pathembed:model_sha256', header.model.sha256],
    ['pathembed:pixel_spacing_um', String(header.grid.pixelSpacingUm)],
    ['pathembed:level', String(header.level.index)],
    ['pathembed:patch_size', String(header.parameters.patchSizePx)],
    ['pathembed:patch_size_level0', String(level0Size.width)],
    ['pathembed:level0_per_grid_pixel', JSON.stringify([scale.x, scale.y])],
    ['pathembed:embedding_dimension', String(header.embeddingDimension)],
    ['pathembed', JSON.stringify(header)],
  ]);
}

/** Bytes out of the parquet-wasm stream, in order, into the sink; settles when the stream ends. */
async function pump(bytes: ReadableStream<Uint8Array>, sink: ResultSink): Promise<number> {
  let total = 0;
  const reader = bytes.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return total;
    total += value.byteLength;
    await sink.write(value);
  }
}

export class ParquetResultWriter {
  private written = 0;
  private lastIndex = -1;
  private pending = 0;
  private closed = false;
  private failure: unknown;
  private readonly ints: Record<IntColumn, Int32Array>;
  private readonly tissue = new Float64Array(BATCH_PATCHES);
  private readonly embeddings: Float32Array;
  private readonly schema: Schema;
  /** Resolves when the writer side asks for another batch (back-pressure from parquet-wasm). */
  private demand: (() => void) | undefined;

  private constructor(
    private readonly sink: ResultSink,
    private readonly batches: ReadableStreamDefaultController<parquet.RecordBatch>,
    private readonly written$: Promise<number>,
    readonly header: ResultHeader,
    private readonly scale: Level0Scale,
  ) {
    this.schema = arrowSchema(header.embeddingDimension);
    this.ints = Object.fromEntries(INT_COLUMNS.map((c) => [c, new Int32Array(BATCH_PATCHES)])) as Record<
      IntColumn,
      Int32Array
    >;
    this.embeddings = new Float32Array(BATCH_PATCHES * header.embeddingDimension);
    written$.catch((err) => {
      this.failure = err;
    });
  }

  /** Opens a Parquet result on a file path (temporary file + rename) or any all-or-nothing sink. */
  static async open(
    target: string | ResultSink,
    headerInput: ResultHeaderInput,
  ): Promise<ParquetResultWriter> {
    const header = completeResultHeader(headerInput);
    const scale = level0Scale(header);
    const sink = typeof target === 'string' ? await fileSink(target) : target;
    try {
      let controller: ReadableStreamDefaultController<parquet.RecordBatch> | undefined;
      let onPull: (() => void) | undefined;
      const batches = new ReadableStream<parquet.RecordBatch>(
        {
          start: (c) => {
            controller = c;
          },
          pull: () => {
            onPull?.();
          },
        },
        // One batch queued at most: the JS side waits while parquet-wasm encodes the last one.
        { highWaterMark: 1 },
      );
      const properties = new parquet.WriterPropertiesBuilder()
        .setMaxRowGroupSize(ROW_GROUP_PATCHES)
        // Float embeddings never repeat: a dictionary would only cost time; the UIDs keep theirs.
        .setColumnDictionaryEnabled('embedding.list.item', false)
        .setCreatedBy(`${header.generator.name} ${header.generator.version}`)
        .setKeyValueMetadata(keyValueMetadata(header, scale))
        .build();
      // Not awaited: parquet-wasm settles this only once it has the first batch (its schema).
      const written = parquet
        .transformParquetStream(batches, properties)
        .then((bytes) => pump(bytes as ReadableStream<Uint8Array>, sink));
      const writer = new ParquetResultWriter(sink, controller!, written, header, scale);
      onPull = () => {
        const resolve = writer.demand;
        writer.demand = undefined;
        resolve?.();
      };
      return writer;
    } catch (err) {
      await sink.abort();
      throw writeFailed(sink.description, err);
    }
  }

  get target(): string {
    return this.sink.description;
  }

  get patchCount(): number {
    return this.written + this.pending;
  }

  /** Appends one patch (in increasing index order); every BATCH_PATCHES patches go to parquet-wasm. */
  async writePatch(patch: ResultPatch): Promise<void> {
    this.assertOpen();
    checkResultPatch(patch, this.lastIndex, this.header.embeddingDimension, 'ParquetResultWriter.writePatch');
    const row = this.pending;
    const { x0, y0 } = level0Point(patch.x, patch.y, this.scale);
    const ints = this.ints;
    ints.index[row] = patch.index;
    ints.x[row] = patch.x;
    ints.y[row] = patch.y;
    ints.width[row] = patch.width;
    ints.height[row] = patch.height;
    ints.x0[row] = x0;
    ints.y0[row] = y0;
    this.tissue[row] = patch.tissueFraction;
    this.embeddings.set(patch.embedding, row * this.header.embeddingDimension);
    this.pending++;
    this.lastIndex = patch.index;
    if (this.pending === BATCH_PATCHES) await this.flush();
  }

  /** Writes the last row group and the footer, and publishes the file. */
  async finish(): Promise<ParquetFileSummary> {
    this.assertOpen();
    try {
      // A file with no patch still gets its schema and metadata: one empty batch carries them.
      if (this.pending > 0 || this.written === 0) await this.flush();
      this.closed = true;
      this.batches.close();
      const bytes = await this.written$;
      await this.sink.commit();
      return { patchCount: this.written, bytes, rowGroups: Math.ceil(this.written / ROW_GROUP_PATCHES) };
    } catch (err) {
      await this.abort();
      throw writeFailed(this.target, err);
    }
  }

  /** Drops the file: the sink is aborted, nothing is published. */
  async abort(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      try {
        this.batches.error(new Error('aborted'));
      } catch {
        // the stream already ended
      }
    }
    await this.written$.catch(() => undefined);
    await this.sink.abort();
  }

  /** Hands the buffered rows to parquet-wasm as one record batch (row groups close every ROW_GROUP_PATCHES rows). */
  private async flush(): Promise<void> {
    if (this.failure) {
      await this.abort();
      throw writeFailed(this.target, this.failure);
    }
    const n = this.pending;
    const batch = this.recordBatch(n);
    // Arrow IPC is how a JS batch crosses into parquet-wasm's memory (one copy, freed on write).
    const table = parquet.Table.fromIPCStream(tableToIPC(new Table([batch]), 'stream'));
    try {
      for (const wasmBatch of table.recordBatches()) {
        if ((this.batches.desiredSize ?? 0) <= 0) {
          // The pump ending first (a failed sink write) must not leave this wait hanging.
          await Promise.race([
            new Promise<void>((resolve) => {
              this.demand = resolve;
            }),
            this.written$.then(() => {
              throw new Error('the Parquet byte stream ended before the last row group');
            }),
          ]);
        }
        this.batches.enqueue(wasmBatch);
      }
    } finally {
      table.free();
    }
    this.written += n;
    this.pending = 0;
  }

  private recordBatch(n: number): RecordBatch {
    const { study, series } = uidsOf(this.header);
    const d = this.header.embeddingDimension;
    const fields = this.schema.fields;
    // Views, not copies: tableToIPC copies them into the IPC buffer before the next patch refills them.
    const ints = INT_COLUMNS.map((c) =>
      makeData({ type: new Int32(), length: n, data: this.ints[c].subarray(0, n) }),
    );
    const children = [
      vectorFromArray(
        Array.from({ length: n }, () => study),
        new Utf8(),
      ).data[0]!,
      vectorFromArray(
        Array.from({ length: n }, () => series),
        new Utf8(),
      ).data[0]!,
      ...ints,
      makeData({ type: new Float64(), length: n, data: this.tissue.subarray(0, n) }),
      makeData({
        type: fields[fields.length - 1]!.type as FixedSizeList<Float32>,
        length: n,
        nullCount: 0,
        child: makeData({ type: new Float32(), length: n * d, data: this.embeddings.subarray(0, n * d) }),
      }),
    ];
    return new RecordBatch(
      this.schema,
      makeData({ type: new Struct(fields), length: n, nullCount: 0, children }),
    );
  }

  private assertOpen(): void {
    if (this.closed) {
      throw new PathembedError(
        'INVALID_ARGUMENT',
        `ParquetResultWriter for ${this.target} is already finished or aborted`,
        { target: this.target },
      );
    }
  }
}

function uidsOf(header: ResultHeader): { study: string | null; series: string | null } {
  return {
    study: header.source.studyInstanceUid ?? null,
    series: header.source.seriesInstanceUid ?? null,
  };
}
