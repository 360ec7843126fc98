/**
 * Writes a JSON result patch by patch, atomically: everything goes to a temporary file beside the
 * target and is renamed into place by `finish`, so a reader sees either no result or a complete
 * one, never a slide half-written by a crashed or cancelled job. Nothing is kept per patch but
 * the running mean, so a slide of any size is written in constant memory.
 *
 * Layout (one record per line, which `streamResult` relies on):
 *   {"schemaVersion":"1.0",...header fields...,
 *   "patches":[
 *   {"index":0,...}
 *   ,{"index":1,...}
 *   ],
 *   "summary":{...}}
 */
import { PathembedError } from '../errors.js';
import type { PlannedPatch } from '../geometry.js';
import { type EmbeddingEncoding, encodeEmbedding } from './embedding-codec.js';
import {
  RESULT_SCHEMA_VERSION,
  type ResultHeader,
  type ResultTimings,
  type StoredFailedPatch,
  type StoredResultSummary,
} from './result-document.js';
import { fileSink, type ResultSink } from './result-sink.js';
import { RunningMean } from './running-mean.js';

export const GENERATOR = { name: 'pathembed', version: '0.1.0' } as const;
export const PATCHES_OPEN_LINE = '"patches":[';
export const PATCHES_CLOSE_LINE = '],';
/** Buffered text is written once it passes this size: few syscalls, bounded memory. */
const FLUSH_THRESHOLD_CHARS = 1024 * 1024;

/** The header a caller supplies; the writer adds the version, generator and start time. */
export type ResultHeaderInput = Omit<ResultHeader, 'schemaVersion' | 'generator' | 'createdAt'>;

/** A patch of the result: where it was cut (a PlannedPatch) and its embedding. */
export interface ResultPatch extends PlannedPatch {
  readonly embedding: Float32Array;
}

/** What the caller knows at the end; the writer adds counts, the mean and its own write time. */
export interface ResultSummaryInput {
  readonly plannedPatchCount: number;
  readonly timings: Omit<ResultTimings, 'writeMs'>;
}

/** The header as every result file states it: version first, generator and start time added. */
export function completeResultHeader(header: ResultHeaderInput): ResultHeader {
  // schemaVersion comes first so a reader can refuse a version it does not know from the first bytes.
  return {
    schemaVersion: RESULT_SCHEMA_VERSION,
    generator: { ...GENERATOR },
    ...header,
    createdAt: new Date().toISOString(),
  };
}

/**
 * Refuses a patch a result file cannot hold: out of patch order (every writer relies on it), a
 * non-integer rectangle, a tissue fraction outside [0, 1], or an embedding of the wrong width.
 * `where` names the writer in the message.
 */
export function checkResultPatch(
  patch: ResultPatch,
  lastIndex: number,
  embeddingDimension: number,
  where: string,
): void {
  if (!Number.isInteger(patch.index) || patch.index <= lastIndex) {
    throw new PathembedError(
      'INVALID_ARGUMENT',
      `${where}: patch index ${patch.index} is not after the previous one (${lastIndex}); results are written in patch order`,
      { index: patch.index, previous: lastIndex },
    );
  }
  if (![patch.x, patch.y, patch.width, patch.height].every(Number.isInteger)) {
    throw new PathembedError(
      'INVALID_ARGUMENT',
      `${where}: patch ${patch.index} has a non-integer rectangle`,
      {
        index: patch.index,
      },
    );
  }
  if (!(patch.tissueFraction >= 0 && patch.tissueFraction <= 1)) {
    throw new PathembedError(
      'INVALID_ARGUMENT',
      `${where}: patch ${patch.index} has tissueFraction ${patch.tissueFraction}, not in [0, 1]`,
      { index: patch.index },
    );
  }
  if (patch.embedding.length !== embeddingDimension) {
    throw new PathembedError(
      'INVALID_ARGUMENT',
      `${where}: patch ${patch.index} has ${patch.embedding.length} components, expected ${embeddingDimension}`,
      { index: patch.index },
    );
  }
}

export class ResultWriter {
  private buffer: string[] = [];
  private bufferedChars = 0;
  private written = 0;
  private lastIndex = -1;
  private writeMs = 0;
  private closed = false;
  private readonly mean: RunningMean;
  /** Kept until the summary: their number is bounded by the plan, and they are small. */
  private readonly failures: StoredFailedPatch[] = [];

  private constructor(
    private readonly sink: ResultSink,
    /** The header as written (with version, generator and start time). */
    readonly header: ResultHeader,
  ) {
    this.mean = new RunningMean(header.embeddingDimension);
  }

  /** Writes a result to `filePath` atomically (temporary file + rename on `finish`). */
  static async create(filePath: string, header: ResultHeaderInput): Promise<ResultWriter> {
    return ResultWriter.open(await fileSink(filePath), header);
  }

  /** Writes a result to any all-or-nothing sink (e.g. `streamSink` over a result store upload). */
  static async open(sink: ResultSink, header: ResultHeaderInput): Promise<ResultWriter> {
    const started = performance.now();
    const fullHeader = completeResultHeader(header);
    const writer = new ResultWriter(sink, fullHeader);
    const headerJson = JSON.stringify(fullHeader);
    writer.push(`${headerJson.slice(0, -1)},\n${PATCHES_OPEN_LINE}\n`);
    writer.writeMs += performance.now() - started;
    return writer;
  }

  /** Where the result goes. */
  get target(): string {
    return this.sink.description;
  }

  get patchCount(): number {
    return this.written;
  }

  get failedPatchCount(): number {
    return this.failures.length;
  }

  get embeddingEncoding(): EmbeddingEncoding {
    return this.header.embeddingEncoding;
  }

  /**
   * Records a planned patch that has no embedding (listed in the summary's failedPatches). Like
   * `writePatch`, in increasing index order.
   */
  writeFailedPatch(patch: PlannedPatch, failure: { code: string; message: string }): void {
    this.assertOpen();
    this.assertNext(patch.index);
    this.failures.push({
      index: patch.index,
      x: patch.x,
      y: patch.y,
      width: patch.width,
      height: patch.height,
      code: failure.code,
      message: failure.message,
    });
    this.lastIndex = patch.index;
  }

  /** Appends one patch. Patches must come in increasing index order (the plan's order). */
  async writePatch(patch: ResultPatch): Promise<void> {
    this.assertOpen();
    const started = performance.now();
    this.assertNext(patch.index);
    if (![patch.x, patch.y, patch.width, patch.height].every(Number.isInteger)) {
      throw new PathembedError(
        'INVALID_ARGUMENT',
        `ResultWriter.writePatch: patch ${patch.index} has a non-integer rectangle`,
        {
          index: patch.index,
        },
      );
    }
    if (!(patch.tissueFraction >= 0 && patch.tissueFraction <= 1)) {
      throw new PathembedError(
        'INVALID_ARGUMENT',
        `ResultWriter.writePatch: patch ${patch.index} has tissueFraction ${patch.tissueFraction}, not in [0, 1]`,
        { index: patch.index },
      );
    }
    if (patch.embedding.length !== this.header.embeddingDimension) {
      throw new PathembedError(
        'INVALID_ARGUMENT',
        `ResultWriter.writePatch: patch ${patch.index} has ${patch.embedding.length} components, expected ${this.header.embeddingDimension}`,
        { index: patch.index },
      );
    }
    const embedding = encodeEmbedding(patch.embedding, this.header.embeddingEncoding);
    const record =
      `{"index":${patch.index},"x":${patch.x},"y":${patch.y},"width":${patch.width},"height":${patch.height},` +
      `"tissueFraction":${JSON.stringify(patch.tissueFraction)},"embedding":${embedding}}`;
    this.mean.add(patch.embedding);
    this.push(`${this.written === 0 ? '' : ','}${record}\n`);
    this.written++;
    this.lastIndex = patch.index;
    if (this.bufferedChars >= FLUSH_THRESHOLD_CHARS) await this.flush();
    this.writeMs += performance.now() - started;
  }

  /** Writes the summary and publishes the result; returns the summary written. */
  async finish(input: ResultSummaryInput): Promise<StoredResultSummary> {
    this.assertOpen();
    const started = performance.now();
    const mean = this.mean.mean();
    const totalMs = input.timings.totalMs;
    const meanJson = mean ? encodeEmbedding(mean, this.header.embeddingEncoding) : 'null';
    try {
      this.push(`${PATCHES_CLOSE_LINE}\n`);
      await this.flush();
      const timings: ResultTimings = {
        ...input.timings,
        writeMs: round(this.writeMs + (performance.now() - started)),
      };
      const summary = {
        plannedPatchCount: input.plannedPatchCount,
        patchCount: this.written,
        failedPatchCount: this.failures.length,
        failedPatches: this.failures,
        meanEmbedding: MEAN_PLACEHOLDER,
        timings,
        patchesPerSecond: totalMs > 0 ? round((this.written * MS_PER_S) / totalMs) : 0,
        completedAt: new Date().toISOString(),
      };
      // The mean is spliced in as text: it is then encoded exactly like the patch embeddings.
      const summaryJson = JSON.stringify(summary).replace(JSON.stringify(MEAN_PLACEHOLDER), meanJson);
      this.push(`"summary":${summaryJson}}\n`);
      await this.flush();
      this.closed = true;
      await this.sink.commit();
      return JSON.parse(summaryJson) as StoredResultSummary;
    } catch (err) {
      await this.abort();
      throw err;
    }
  }

  /** Drops what was written (a failed or cancelled job leaves no partial result behind). */
  async abort(): Promise<void> {
    this.closed = true;
    this.buffer = [];
    await this.sink.abort();
  }

  private push(text: string): void {
    this.buffer.push(text);
    this.bufferedChars += text.length;
  }

  private async flush(): Promise<void> {
    if (this.buffer.length === 0) return;
    const text = this.buffer.join('');
    this.buffer = [];
    this.bufferedChars = 0;
    try {
      await this.sink.write(text);
    } catch (err) {
      await this.abort();
      throw err;
    }
  }

  private assertNext(index: number): void {
    if (!Number.isInteger(index) || index <= this.lastIndex) {
      throw new PathembedError(
        'INVALID_ARGUMENT',
        `ResultWriter: patch index ${index} is not after the previous one (${this.lastIndex}); results are written in patch order`,
        { index, previous: this.lastIndex },
      );
    }
  }

  private assertOpen(): void {
    if (this.closed) {
      throw new PathembedError(
        'INVALID_ARGUMENT',
        `ResultWriter for ${this.target} is already finished or aborted`,
        {
          target: this.target,
        },
      );
    }
  }
}

const MEAN_PLACEHOLDER = '__pathembed_mean_embedding__';
const MS_PER_S = 1000;
const TIMING_DECIMALS = 1000;
function round(ms: number): number {
  return Math.round(ms * TIMING_DECIMALS) / TIMING_DECIMALS;
}
