/**
 * Writes a result as HDF5 in the layout CLAM/TRIDENT-style multiple-instance-learning code reads,
 * with h5wasm (HDF5 compiled to WebAssembly; its Node build reads and writes real files):
 *
 *   /features         float32 [N, D]  embeddings, row i = patch i of the file
 *   /coords           int32   [N, 2]  level-0 pixel (x, y) of each patch's top-left corner
 *   /indices          int32   [N]     each row's patch index in the plan (and the JSON result)
 *   /tissue_fraction  float64 [N]     each patch's tissue fraction
 *   root attributes: layout version, model, source UIDs, spacing, level, patch sizes (below)
 *   /coords attributes: patch_size, patch_size_level0, patch_level (CLAM/TRIDENT's names)
 *
 * Memory does not grow with N: datasets are chunked (CHUNK_PATCHES rows) and resizable (maxshape
 * [null, …]); patches are buffered in blocks of BLOCK_PATCHES rows, each appended with resize + write_slice. HDF5 needs
 * random access while it writes, so the file is built in a scratch file: beside the target (then
 * renamed into place) or, for a sink such as a result-store upload, in the OS temp folder (then
 * copied into the sink). A failure or abort removes the scratch file.
 */
import { rename, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import h5wasm from 'h5wasm/node';
import { PathembedError } from '../errors.js';
import { type Level0Scale, level0PatchSize, level0Point, level0Scale } from './level0-coordinates.js';
import type { ResultHeader } from './result-document.js';
import { publishFile, type ResultSink, resultWriteFailed, tempPathBeside } from './result-sink.js';
import {
  checkResultPatch,
  completeResultHeader,
  type ResultHeaderInput,
  type ResultPatch,
} from './result-writer.js';

/** Version of this file layout (datasets and attribute names), stated in every file. */
export const HDF5_LAYOUT_VERSION = '1.0';
/** Rows buffered before each append: 1,024 × 384 float32 is 1.5 MB, few appends, flat memory. */
const BLOCK_PATCHES = 1024;
/**
 * HDF5 chunk height: 128 × 384 float32 is 192 KB, in HDF5's advised 10 KB-1 MB range. HDF5
 * allocates whole chunks, so a small slide pays at most one partly filled chunk per dataset (with
 * 1,024-row chunks a 180-patch job's file measured 8,955 bytes per patch).
 */
const CHUNK_PATCHES = 128;
const COORD_AXES = 2;

/** What finishing a file reports. */
export interface PatchFileSummary {
  readonly patchCount: number;
  readonly bytes: number;
}

type H5File = InstanceType<typeof h5wasm.File>;
type H5Dataset = ReturnType<H5File['create_dataset']>;
type H5Module = Awaited<typeof h5wasm.ready>;

const writeFailed = (target: string, err: unknown) => resultWriteFailed('HDF5 result', target, err);

/** Root attributes: everything a reader needs to place, trust and cite the features. */
function rootAttributes(
  header: ResultHeader,
  scale: Level0Scale,
): Array<[string, string | number | number[] | string[], string]> {
  const level0Size = level0PatchSize(header.parameters.patchSizePx, scale);
  const source = header.source;
  return [
    ['schema_version', HDF5_LAYOUT_VERSION, 'S'],
    ['result_schema_version', header.schemaVersion, 'S'],
    ['generator', `${header.generator.name} ${header.generator.version}`, 'S'],
    ['job_key', header.jobKey, 'S'],
    ['created_at', header.createdAt, 'S'],
    ['model_name', header.model.name, 'S'],
    ['model_version', header.model.version, 'S'],
    ['model_sha256', header.model.sha256, 'S'],
    ['source_kind', source.kind, 'S'],
    ['source', source.kind === 'dicomweb' ? source.baseUrl : source.folder, 'S'],
    ['study_instance_uid', source.studyInstanceUid ?? '', 'S'],
    ['series_instance_uid', source.seriesInstanceUid ?? '', 'S'],
    ['sop_instance_uids', [...source.instanceUids], 'S'],
    ['pixel_spacing_um', header.grid.pixelSpacingUm, '<d'],
    ['target_pixel_spacing_um', header.parameters.pixelSpacingUm, '<d'],
    ['level0_pixel_spacing_um', [header.baseLevel.pixelSpacingUm.x, header.baseLevel.pixelSpacingUm.y], '<d'],
    ['level0_size_px', [header.baseLevel.widthPx, header.baseLevel.heightPx], '<i'],
    ['level0_per_grid_pixel', [scale.x, scale.y], '<d'],
    ['level', header.level.index, '<i'],
    ['level_pixel_spacing_um', [header.level.pixelSpacingUm.x, header.level.pixelSpacingUm.y], '<d'],
    ['level_downsample', header.level.scaleFromGrid, '<d'],
    ['patch_size', header.parameters.patchSizePx, '<i'],
    ['patch_size_level0', [level0Size.width, level0Size.height], '<i'],
    ['stride_px', header.parameters.stridePx, '<i'],
    ['min_tissue', header.parameters.minTissue, '<d'],
    ['patch_selection', header.parameters.patchSelection, 'S'],
    ['embedding_dimension', header.embeddingDimension, '<i'],
    [
      'coords_description',
      'coords are level-0 pixels (x column, y row) of each patch top-left corner: round(grid x * level0_per_grid_pixel[0]), round(grid y * level0_per_grid_pixel[1])',
      'S',
    ],
  ];
}

function checkStatus(status: number, what: string): void {
  if (status < 0) throw new Error(`HDF5 failed ${what} (status ${status}; see HDF5-DIAG on stderr)`);
}

/**
 * Grows a dataset by `n` rows from row `start` and writes them. h5wasm's own write_slice drops
 * HDF5's status, so a write that fails (ENOSPC) would go unnoticed and a corrupt file would be
 * published: this calls the same exported HDF5 functions and checks what they return.
 */
function appendRows(
  h5: H5Module,
  dataset: H5Dataset,
  start: number,
  n: number,
  rowShape: number[],
  data: ArrayBufferView,
): void {
  const end = start + n;
  checkStatus(
    h5.resize_dataset(dataset.file_id, dataset.path, [end, ...rowShape].map(BigInt)),
    `resizing ${dataset.path}`,
  );
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const pointer = h5._malloc(bytes.byteLength);
  if (!pointer) throw new Error(`HDF5 could not allocate ${bytes.byteLength} bytes for ${dataset.path}`);
  try {
    h5.HEAPU8.set(bytes, pointer);
    checkStatus(
      h5.set_dataset_data(
        dataset.file_id,
        dataset.path,
        [n, ...rowShape].map(BigInt),
        [start, ...rowShape.map(() => 0)].map(BigInt),
        [1, ...rowShape.map(() => 1)].map(BigInt),
        BigInt(pointer),
      ),
      `writing rows ${start}-${end} of ${dataset.path}`,
    );
  } finally {
    h5._free(pointer);
  }
}

export class Hdf5ResultWriter {
  private written = 0;
  private lastIndex = -1;
  private pending = 0;
  private closed = false;
  private readonly features: Float32Array;
  private readonly coords: Int32Array;
  private readonly indices: Int32Array;
  private readonly tissue: Float64Array;

  private constructor(
    private readonly h5: H5Module,
    private file: H5File | undefined,
    private readonly datasets: Record<'features' | 'coords' | 'indices' | 'tissue', H5Dataset>,
    private readonly scratchPath: string,
    private readonly publish: (scratch: string) => Promise<void>,
    private readonly discard: () => Promise<void>,
    /** The header as written. */
    readonly header: ResultHeader,
    readonly target: string,
    private readonly scale: Level0Scale,
  ) {
    const d = header.embeddingDimension;
    this.features = new Float32Array(BLOCK_PATCHES * d);
    this.coords = new Int32Array(BLOCK_PATCHES * COORD_AXES);
    this.indices = new Int32Array(BLOCK_PATCHES);
    this.tissue = new Float64Array(BLOCK_PATCHES);
  }

  /**
   * Opens an HDF5 result for `target`: a file path (scratch file beside it, renamed on `finish`)
   * or a sink (scratch file in the OS temp folder, copied into the sink on `finish`).
   */
  static async open(target: string | ResultSink, headerInput: ResultHeaderInput): Promise<Hdf5ResultWriter> {
    const description = typeof target === 'string' ? target : target.description;
    const header = completeResultHeader(headerInput);
    const scale = level0Scale(header);
    const scratch =
      typeof target === 'string'
        ? tempPathBeside(path.resolve(target))
        : tempPathBeside(path.join(tmpdir(), 'pathembed-result.h5'));
    const publish =
      typeof target === 'string'
        ? (file: string) => rename(file, path.resolve(target))
        : (file: string) => publishFile(file, target);
    const discard = async () => {
      await rm(scratch, { force: true }).catch(() => undefined);
      if (typeof target !== 'string') await target.abort();
    };
    let file: H5File | undefined;
    try {
      const module = await h5wasm.ready;
      file = new h5wasm.File(scratch, 'w');
      const d = header.embeddingDimension;
      const datasets = {
        features: file.create_dataset({
          name: 'features',
          data: new Float32Array(0),
          shape: [0, d],
          maxshape: [null, d],
          chunks: [CHUNK_PATCHES, d],
          dtype: '<f',
        }),
        coords: file.create_dataset({
          name: 'coords',
          data: new Int32Array(0),
          shape: [0, COORD_AXES],
          maxshape: [null, COORD_AXES],
          chunks: [CHUNK_PATCHES, COORD_AXES],
          dtype: '<i',
        }),
        indices: file.create_dataset({
          name: 'indices',
          data: new Int32Array(0),
          shape: [0],
          maxshape: [null],
          chunks: [CHUNK_PATCHES],
          dtype: '<i',
        }),
        tissue: file.create_dataset({
          name: 'tissue_fraction',
          data: new Float64Array(0),
          shape: [0],
          maxshape: [null],
          chunks: [CHUNK_PATCHES],
          dtype: '<d',
        }),
      };
      for (const [name, value, dtype] of rootAttributes(header, scale)) {
        file.create_attribute(name, value, null, dtype);
      }
      const level0Size = level0PatchSize(header.parameters.patchSizePx, scale);
      // The names CLAM and TRIDENT read from coords.attrs.
      datasets.coords.create_attribute('patch_size', header.parameters.patchSizePx, null, '<i');
      datasets.coords.create_attribute('patch_size_level0', level0Size.width, null, '<i');
      datasets.coords.create_attribute('patch_level', header.level.index, null, '<i');
      return new Hdf5ResultWriter(
        module,
        file,
        datasets,
        scratch,
        publish,
        discard,
        header,
        description,
        scale,
      );
    } catch (err) {
      try {
        file?.close();
      } catch {
        // already failing: the scratch file goes either way
      }
      await discard();
      throw writeFailed(description, err);
    }
  }

  get patchCount(): number {
    return this.written;
  }

  /** Appends one patch (in increasing index order); every BLOCK_PATCHES patches go to the file. */
  async writePatch(patch: ResultPatch): Promise<void> {
    this.assertOpen();
    checkResultPatch(patch, this.lastIndex, this.header.embeddingDimension, 'Hdf5ResultWriter.writePatch');
    const row = this.pending;
    const { x0, y0 } = level0Point(patch.x, patch.y, this.scale);
    this.features.set(patch.embedding, row * this.header.embeddingDimension);
    this.coords[row * COORD_AXES] = x0;
    this.coords[row * COORD_AXES + 1] = y0;
    this.indices[row] = patch.index;
    this.tissue[row] = patch.tissueFraction;
    this.pending++;
    this.lastIndex = patch.index;
    if (this.pending === BLOCK_PATCHES) await this.flush();
  }

  /** Writes the last block and the patch count, closes the file and publishes it. */
  async finish(): Promise<PatchFileSummary> {
    this.assertOpen();
    try {
      await this.flush();
      const file = this.file!;
      file.create_attribute('patch_count', this.written, null, '<i');
      this.file = undefined;
      // A failed final flush (a full disk) is only told by close's status.
      checkStatus(file.close(), 'closing the file');
      this.closed = true;
      const bytes = (await stat(this.scratchPath)).size;
      await this.publish(this.scratchPath);
      await rm(this.scratchPath, { force: true });
      return { patchCount: this.written, bytes };
    } catch (err) {
      await this.abort();
      throw writeFailed(this.target, err);
    }
  }

  /** Drops the file: nothing is published and the scratch file is removed. */
  async abort(): Promise<void> {
    this.closed = true;
    try {
      this.file?.close();
    } catch {
      // the scratch file goes either way
    }
    this.file = undefined;
    await this.discard();
  }

  private async flush(): Promise<void> {
    const n = this.pending;
    if (n === 0) return;
    const d = this.header.embeddingDimension;
    const start = this.written;
    const end = start + n;
    try {
      const { features, coords, indices, tissue } = this.datasets;
      appendRows(this.h5, features, start, n, [d], this.features.subarray(0, n * d));
      appendRows(this.h5, coords, start, n, [COORD_AXES], this.coords.subarray(0, n * COORD_AXES));
      appendRows(this.h5, indices, start, n, [], this.indices.subarray(0, n));
      appendRows(this.h5, tissue, start, n, [], this.tissue.subarray(0, n));
    } catch (err) {
      await this.abort();
      throw writeFailed(this.target, err);
    }
    this.written = end;
    this.pending = 0;
  }

  private assertOpen(): void {
    if (this.closed) {
      throw new PathembedError(
        'INVALID_ARGUMENT',
        `Hdf5ResultWriter for ${this.target} is already finished or aborted`,
        { target: this.target },
      );
    }
  }
}
