/**
 * A folder of DICOM Part 10 files as a FrameSource: the same DICOM JSON metadata a DICOMweb store
 * would return (read with dcmjs, pixel data left out, the file's transfer syntax added as
 * (0002,0010)), and frames read from disk on demand.
 *
 * Each file is parsed once when the source opens: its header through dcmjs, its pixel data only as
 * far as item headers go, so the source keeps byte ranges, never pixels. File handles stay open
 * until `close()`.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { type DicomJsonDataset, num, str } from '../dicom-json.js';
import { Tag } from '../dicom-tags.js';
import { PathembedError } from '../errors.js';
import { SopClass } from '../uids.js';
import { readPart10Header } from './dcmjs.js';
import type { EncodedFrame, FrameSource, FrameSourceStats } from './frame-source.js';
import {
  BlockReader,
  type Fragment,
  frameFragmentStarts,
  Part10Error,
  readExactly,
  scanPart10,
} from './part10-scan.js';

/** Files parsed at once when a folder is opened. */
const OPEN_CONCURRENCY = 8;

interface LocalInstance {
  readonly file: string;
  readonly sopInstanceUid: string;
  readonly transferSyntaxUid: string;
  readonly frameCount: number;
  /** Byte range(s) of frame i: fragments[frameStarts[i] .. frameStarts[i + 1]). */
  readonly fragments: readonly Fragment[];
  readonly frameStarts: Uint32Array;
}

function localError(message: string, details: Record<string, unknown>, cause?: unknown): PathembedError {
  return new PathembedError('LOCAL_SOURCE_ERROR', message, details, cause ? { cause } : undefined);
}

function nativeFrames(
  file: string,
  ds: DicomJsonDataset,
  frameCount: number,
  valueOffset: number,
  length: number,
): { fragments: Fragment[]; frameStarts: Uint32Array } {
  const rows = num(ds, Tag.Rows) ?? 0;
  const columns = num(ds, Tag.Columns) ?? 0;
  const samples = num(ds, Tag.SamplesPerPixel) ?? 1;
  const bits = num(ds, Tag.BitsAllocated) ?? 8;
  const frameBytes = (rows * columns * samples * bits) / 8;
  if (!Number.isInteger(frameBytes) || frameBytes <= 0 || frameBytes * frameCount > length) {
    throw localError(
      `${file}: native pixel data of ${length} bytes cannot hold ${frameCount} frames of ${columns} x ${rows} x ${samples} samples at ${bits} bits`,
      { file, length, frameCount },
    );
  }
  const fragments: Fragment[] = [];
  const frameStarts = new Uint32Array(frameCount + 1);
  for (let i = 0; i < frameCount; i++) {
    fragments.push({ offset: valueOffset + i * frameBytes, length: frameBytes });
    frameStarts[i] = i;
  }
  frameStarts[frameCount] = frameCount;
  return { fragments, frameStarts };
}

async function parseFile(file: string): Promise<{ dataset: DicomJsonDataset; instance?: LocalInstance }> {
  let fh: fs.FileHandle | undefined;
  try {
    fh = await fs.open(file, 'r');
    const { size } = await fh.stat();
    const reader = new BlockReader(fh, size);
    const scan = await scanPart10(reader);
    const header = await readExactly(fh, 0, scan.headerEnd);
    const { dataset } = readPart10Header(header);
    dataset[Tag.TransferSyntaxUID] = { vr: 'UI', Value: [scan.transferSyntaxUid] };
    const sopInstanceUid = str(dataset, Tag.SOPInstanceUID);
    if (!sopInstanceUid) throw new Part10Error('no SOPInstanceUID');
    if (!scan.pixelData) return { dataset };
    const frameCount = num(dataset, Tag.NumberOfFrames) ?? 1;
    const { fragments, frameStarts } = scan.pixelData.encapsulated
      ? { fragments: scan.pixelData.fragments, frameStarts: frameFragmentStarts(scan.pixelData, frameCount) }
      : nativeFrames(file, dataset, frameCount, scan.pixelData.valueOffset, scan.pixelData.length);
    return {
      dataset,
      instance: {
        file,
        sopInstanceUid,
        transferSyntaxUid: scan.transferSyntaxUid,
        frameCount,
        fragments,
        frameStarts,
      },
    };
  } catch (err) {
    if (err instanceof PathembedError) throw err;
    throw localError(`${file} cannot be read as DICOM: ${(err as Error).message}`, { file }, err);
  } finally {
    await fh?.close();
  }
}

async function mapLimit<T, R>(inputs: readonly T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(inputs.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, inputs.length) }, async () => {
    while (next < inputs.length) {
      const i = next++;
      out[i] = await fn(inputs[i]!);
    }
  });
  await Promise.all(workers);
  return out;
}

export class LocalFrameSource implements FrameSource {
  readonly description: string;
  readonly stats: FrameSourceStats = { requests: 0, frames: 0, bytes: 0 };
  private readonly handles = new Map<string, Promise<fs.FileHandle>>();
  private closed = false;

  private constructor(
    readonly folder: string,
    private readonly metadata: DicomJsonDataset[],
    private readonly instances: ReadonlyMap<string, LocalInstance>,
  ) {
    this.description = folder;
  }

  /**
   * Opens a folder of Part 10 files (hidden files and DICOMDIR skipped, subfolders ignored). Throws
   * LOCAL_SOURCE_ERROR for a missing or empty folder, a file that is not readable DICOM (naming it),
   * or whole-slide images of more than one series.
   */
  static async open(folder: string): Promise<LocalFrameSource> {
    const dir = path.resolve(folder);
    let entries: import('node:fs').Dirent[];
    try {
      entries = await fs.readdir(dir, { withFileTypes: true });
    } catch (err) {
      throw localError(`${dir} is not a readable folder: ${(err as Error).message}`, { folder: dir }, err);
    }
    const files = entries
      .filter((e) => e.isFile() && !e.name.startsWith('.') && e.name.toUpperCase() !== 'DICOMDIR')
      .map((e) => path.join(dir, e.name))
      .sort();
    if (files.length === 0) throw localError(`${dir} holds no files`, { folder: dir });
    const parsed = await mapLimit(files, OPEN_CONCURRENCY, parseFile);
    const metadata = parsed.map((p) => p.dataset);
    const wsiSeries = new Set(
      metadata
        .filter((ds) => str(ds, Tag.SOPClassUID) === SopClass.VLWholeSlideMicroscopyImage)
        .map((ds) => str(ds, Tag.SeriesInstanceUID)),
    );
    if (wsiSeries.size > 1) {
      throw localError(
        `${dir} holds whole-slide images of ${wsiSeries.size} series; put one series per folder`,
        {
          folder: dir,
          seriesInstanceUids: [...wsiSeries],
        },
      );
    }
    const instances = new Map<string, LocalInstance>();
    for (const p of parsed) {
      if (!p.instance) continue;
      const existing = instances.get(p.instance.sopInstanceUid);
      if (existing) {
        throw localError(`${existing.file} and ${p.instance.file} hold the same SOPInstanceUID`, {
          sopInstanceUid: p.instance.sopInstanceUid,
        });
      }
      instances.set(p.instance.sopInstanceUid, p.instance);
    }
    return new LocalFrameSource(dir, metadata, instances);
  }

  /** The datasets parsed at open, one per file (shared, not copied: callers must not modify them). */
  async seriesMetadata(): Promise<DicomJsonDataset[]> {
    return this.metadata;
  }

  /** The file an instance was read from (for messages and tools). */
  fileOf(instanceUid: string): string | undefined {
    return this.instances.get(instanceUid)?.file;
  }

  private handle(file: string): Promise<fs.FileHandle> {
    let h = this.handles.get(file);
    if (!h) {
      h = fs.open(file, 'r');
      this.handles.set(file, h);
    }
    return h;
  }

  async fetchFrames(
    instanceUid: string,
    frameIndices: readonly number[],
    signal?: AbortSignal,
  ): Promise<EncodedFrame[]> {
    if (this.closed) throw localError(`${this.description}: the source is closed`, { folder: this.folder });
    const instance = this.instances.get(instanceUid);
    if (!instance) {
      throw localError(`${this.description} has no instance ${instanceUid} with pixel data`, {
        folder: this.folder,
        sopInstanceUid: instanceUid,
      });
    }
    const fh = await this.handle(instance.file);
    const out: EncodedFrame[] = [];
    for (const frameIndex of frameIndices) {
      signal?.throwIfAborted();
      if (!Number.isInteger(frameIndex) || frameIndex < 0 || frameIndex >= instance.frameCount) {
        throw localError(
          `Frame index ${frameIndex} is outside 0..${instance.frameCount - 1} of ${instance.file}`,
          {
            file: instance.file,
            frameIndex,
            frameCount: instance.frameCount,
          },
        );
      }
      const parts: Buffer[] = [];
      // frameStarts has frameCount + 1 entries, each at most fragments.length (see frameFragmentStarts).
      for (let f = instance.frameStarts[frameIndex]!; f < instance.frameStarts[frameIndex + 1]!; f++) {
        const fragment = instance.fragments[f]!;
        try {
          parts.push(await readExactly(fh, fragment.offset, fragment.length));
        } catch (err) {
          throw localError(
            `${instance.file}: frame ${frameIndex} cannot be read: ${(err as Error).message}`,
            {
              file: instance.file,
              frameIndex,
            },
            err,
          );
        }
        this.stats.requests++;
      }
      const data = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
      this.stats.frames++;
      this.stats.bytes += data.byteLength;
      out.push({
        data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
        transferSyntaxUid: instance.transferSyntaxUid,
      });
    }
    return out;
  }

  async close(): Promise<void> {
    this.closed = true;
    const handles = [...this.handles.values()];
    this.handles.clear();
    await Promise.all(handles.map(async (h) => (await h).close()));
  }
}

/** Opens a folder of Part 10 files as a FrameSource (see LocalFrameSource.open). */
export function openLocalFrameSource(folder: string): Promise<LocalFrameSource> {
  return LocalFrameSource.open(folder);
}
