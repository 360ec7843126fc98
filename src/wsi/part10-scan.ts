/**
 * Finds where a Part 10 file's frames are without reading it all: walks the element headers (not
 * the values) up to the top-level Pixel Data, then the encapsulated items' headers, and maps frames
 * to byte ranges. Values are read later, one frame at a time, by the local frame source.
 *
 * Encapsulated frames are found, in order of preference, by the Basic Offset Table, by one fragment
 * per frame, or (an empty offset table and more fragments than frames) by the fragments that start a
 * codestream (JPEG SOI, JPEG 2000 SOC or JP2 signature).
 */
import type { FileHandle } from 'node:fs/promises';
import { TransferSyntax } from '../uids.js';

const UNDEFINED_LENGTH = 0xffffffff;
const ITEM = 0xfffee000;
const ITEM_DELIMITATION = 0xfffee00d;
const SEQUENCE_DELIMITATION = 0xfffee0dd;
const PIXEL_DATA = 0x7fe00010;
const FLOAT_PIXEL_DATA = 0x7fe00008;
const DOUBLE_FLOAT_PIXEL_DATA = 0x7fe00009;
/** Explicit VRs with a 2-byte reserved field and a 4-byte length. */
const LONG_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);

/** Thrown for anything that makes the file unreadable; the caller adds the file name. */
export class Part10Error extends Error {}

/** Reads a file through a window, so walking many small headers costs few system calls. */
export class BlockReader {
  private block: Buffer = Buffer.alloc(0);
  private blockStart = 0;

  constructor(
    private readonly fh: FileHandle,
    readonly size: number,
    private readonly blockSize = 1 << 20,
  ) {}

  async bytes(pos: number, length: number): Promise<Buffer> {
    if (pos < 0 || length < 0 || pos + length > this.size) {
      throw new Part10Error(`truncated: needs bytes ${pos}..${pos + length} of a ${this.size}-byte file`);
    }
    if (pos >= this.blockStart && pos + length <= this.blockStart + this.block.length) {
      return this.block.subarray(pos - this.blockStart, pos - this.blockStart + length);
    }
    const size = Math.min(Math.max(length, this.blockSize), this.size - pos);
    this.block = await readExactly(this.fh, pos, size);
    this.blockStart = pos;
    return this.block.subarray(0, length);
  }
}

/** Reads exactly `length` bytes at `pos` (fs reads may return fewer). */
export async function readExactly(fh: FileHandle, pos: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, length - done, pos + done);
    if (bytesRead === 0) throw new Part10Error(`unexpected end of file at byte ${pos + done}`);
    done += bytesRead;
  }
  return buf;
}

export interface Fragment {
  /** File offset of the fragment's value. */
  readonly offset: number;
  readonly length: number;
}

export type PixelDataLayout =
  | { readonly encapsulated: false; readonly valueOffset: number; readonly length: number }
  | {
      readonly encapsulated: true;
      /** Basic Offset Table entries (empty when the table is empty). */
      readonly basicOffsetTable: readonly number[];
      readonly fragments: readonly Fragment[];
      /** Offset of each fragment's item tag from the first fragment's item tag (what BOT entries count). */
      readonly itemOffsets: readonly number[];
      /** Whether each fragment begins with a codestream start marker. */
      readonly startsCodestream: readonly boolean[];
    };

export interface Part10Scan {
  readonly transferSyntaxUid: string;
  /** File offset of the top-level Pixel Data element's tag; the file's size when there is none. */
  readonly headerEnd: number;
  readonly pixelData?: PixelDataLayout;
}

interface ElementHeader {
  tag: number;
  vr?: string;
  length: number;
  headerLength: number;
}

async function readHeader(r: BlockReader, pos: number, explicit: boolean): Promise<ElementHeader> {
  const head = await r.bytes(pos, Math.min(12, r.size - pos));
  if (head.length < 8) throw new Part10Error(`truncated element header at byte ${pos}`);
  const tag = ((head.readUInt16LE(0) << 16) | head.readUInt16LE(2)) >>> 0;
  if (tag >>> 16 === 0xfffe || !explicit) return { tag, length: head.readUInt32LE(4), headerLength: 8 };
  const vr = head.toString('latin1', 4, 6);
  if (LONG_VRS.has(vr)) {
    if (head.length < 12) throw new Part10Error(`truncated element header at byte ${pos}`);
    return { tag, vr, length: head.readUInt32LE(8), headerLength: 12 };
  }
  return { tag, vr, length: head.readUInt16LE(6), headerLength: 8 };
}

/** Skips the items of an undefined-length sequence starting at `pos`; returns the position after it. */
async function skipUndefinedSequence(r: BlockReader, pos: number, explicit: boolean): Promise<number> {
  for (;;) {
    const h = await readHeader(r, pos, false);
    if (h.tag === SEQUENCE_DELIMITATION) return pos + 8;
    if (h.tag !== ITEM) throw new Part10Error(`expected an item or sequence delimiter at byte ${pos}`);
    if (h.length !== UNDEFINED_LENGTH) {
      pos += 8 + h.length;
      continue;
    }
    pos += 8;
    for (;;) {
      const e = await readHeader(r, pos, explicit);
      if (e.tag === ITEM_DELIMITATION) {
        pos += 8;
        break;
      }
      pos = await skipElement(r, pos, e, explicit);
    }
  }
}

async function skipElement(
  r: BlockReader,
  pos: number,
  h: ElementHeader,
  explicit: boolean,
): Promise<number> {
  if (h.length !== UNDEFINED_LENGTH) return pos + h.headerLength + h.length;
  // An undefined-length UN holds implicit VR little endian content (PS3.5 6.2.2).
  return skipUndefinedSequence(r, pos + h.headerLength, explicit && h.vr !== 'UN');
}

function startsCodestream(head: Buffer): boolean {
  if (head.length >= 3 && head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff) return true; // JPEG, JPEG-LS
  if (head.length >= 4 && head[0] === 0xff && head[1] === 0x4f && head[2] === 0xff && head[3] === 0x51)
    return true; // J2K
  return head.length >= 8 && head.readUInt32BE(0) === 12 && head.toString('latin1', 4, 8) === 'jP  '; // JP2
}

async function scanEncapsulated(r: BlockReader, pos: number): Promise<PixelDataLayout> {
  const bot = await readHeader(r, pos, false);
  if (bot.tag !== ITEM || bot.length === UNDEFINED_LENGTH) {
    throw new Part10Error(
      `encapsulated pixel data at byte ${pos} does not start with the Basic Offset Table item`,
    );
  }
  const table = await r.bytes(pos + 8, bot.length);
  const basicOffsetTable: number[] = [];
  for (let i = 0; i + 4 <= table.length; i += 4) basicOffsetTable.push(table.readUInt32LE(i));
  pos += 8 + bot.length;
  const firstItem = pos;
  const fragments: Fragment[] = [];
  const itemOffsets: number[] = [];
  const starts: boolean[] = [];
  for (;;) {
    if (pos + 8 > r.size) throw new Part10Error('encapsulated pixel data ends without a sequence delimiter');
    const h = await readHeader(r, pos, false);
    if (h.tag === SEQUENCE_DELIMITATION) break;
    if (h.tag !== ITEM || h.length === UNDEFINED_LENGTH) {
      throw new Part10Error(`expected a fragment item at byte ${pos} of the encapsulated pixel data`);
    }
    fragments.push({ offset: pos + 8, length: h.length });
    itemOffsets.push(pos - firstItem);
    starts.push(startsCodestream(await r.bytes(pos + 8, Math.min(8, h.length))));
    pos += 8 + h.length;
  }
  return { encapsulated: true, basicOffsetTable, fragments, itemOffsets, startsCodestream: starts };
}

/** Walks a Part 10 file's structure; values other than the transfer syntax are not read. */
export async function scanPart10(r: BlockReader): Promise<Part10Scan> {
  if (r.size < 132 || (await r.bytes(128, 4)).toString('latin1') !== 'DICM') {
    throw new Part10Error('not a DICOM Part 10 file (no DICM marker after the 128-byte preamble)');
  }
  let pos = 132;
  let transferSyntaxUid: string | undefined;
  while (pos + 8 <= r.size) {
    const h = await readHeader(r, pos, true);
    if (h.tag >>> 16 !== 0x0002) break;
    if (h.tag === 0x00020010) {
      transferSyntaxUid = (await r.bytes(pos + h.headerLength, h.length))
        .toString('latin1')
        .replace(/[\0 ]+$/, '');
    }
    pos = await skipElement(r, pos, h, true);
  }
  if (!transferSyntaxUid) throw new Part10Error('the file meta information has no TransferSyntaxUID');
  if (transferSyntaxUid === TransferSyntax.DeflatedExplicitVRLittleEndian) {
    throw new Part10Error('deflated transfer syntax is not supported');
  }
  if (transferSyntaxUid === TransferSyntax.ExplicitVRBigEndian) {
    throw new Part10Error('big endian transfer syntax is not supported');
  }
  const explicit = transferSyntaxUid !== TransferSyntax.ImplicitVRLittleEndian;
  while (pos + 8 <= r.size) {
    const h = await readHeader(r, pos, explicit);
    if (h.tag === FLOAT_PIXEL_DATA || h.tag === DOUBLE_FLOAT_PIXEL_DATA) {
      throw new Part10Error('float pixel data is not supported');
    }
    if (h.tag === PIXEL_DATA) {
      const valueOffset = pos + h.headerLength;
      const pixelData =
        h.length === UNDEFINED_LENGTH
          ? await scanEncapsulated(r, valueOffset)
          : ({ encapsulated: false, valueOffset, length: h.length } as const);
      return { transferSyntaxUid, headerEnd: pos, pixelData };
    }
    pos = await skipElement(r, pos, h, explicit);
  }
  return { transferSyntaxUid, headerEnd: r.size };
}

/**
 * Frame `i`'s fragments are `fragments[frameStarts[i] .. frameStarts[i + 1])`. Throws Part10Error
 * when the encapsulated items cannot be divided into `frameCount` frames.
 */
export function frameFragmentStarts(
  layout: Extract<PixelDataLayout, { encapsulated: true }>,
  frameCount: number,
): Uint32Array {
  const n = layout.fragments.length;
  const starts = new Uint32Array(frameCount + 1);
  starts[frameCount] = n;
  if (layout.basicOffsetTable.length > 0) {
    if (layout.basicOffsetTable.length !== frameCount) {
      throw new Part10Error(
        `the Basic Offset Table has ${layout.basicOffsetTable.length} entries for ${frameCount} frames`,
      );
    }
    const byItemOffset = new Map(layout.itemOffsets.map((offset, i) => [offset, i]));
    for (let f = 0; f < frameCount; f++) {
      const fragment = byItemOffset.get(layout.basicOffsetTable[f]!);
      if (fragment === undefined || (f > 0 && fragment <= starts[f - 1]!)) {
        throw new Part10Error(
          `Basic Offset Table entry ${f} (${layout.basicOffsetTable[f]}) is not a fragment start`,
        );
      }
      starts[f] = fragment;
    }
    return starts;
  }
  if (n === frameCount) {
    for (let f = 0; f < frameCount; f++) starts[f] = f;
    return starts;
  }
  if (frameCount === 1 && n > 0) {
    starts[0] = 0;
    return starts;
  }
  const codestreamStarts = layout.startsCodestream.flatMap((s, i) => (s ? [i] : []));
  if (codestreamStarts.length === frameCount && codestreamStarts[0] === 0) {
    codestreamStarts.forEach((fragment, f) => {
      starts[f] = fragment;
    });
    return starts;
  }
  throw new Part10Error(
    `cannot divide ${n} fragments into ${frameCount} frames: the Basic Offset Table is empty and ${codestreamStarts.length} fragments start a codestream`,
  );
}
