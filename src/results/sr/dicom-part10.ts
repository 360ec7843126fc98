/**
 * DICOM Part 10 files (explicit VR little endian) from dcmjs "naturalized" datasets, and back.
 *
 * dcmjs supplies the data dictionary (keyword → tag and VR) and the reader; the writer is our own.
 * dcmjs's DicomDict.write copies every nested item's buffer into its parent and took 8.4 s for an
 * SR of 100 patch groups and 153 s (3 GB resident) for 1,000 (2 cores, Node 20). SR content is
 * almost all nesting (each NUM is an item holding two sequences), so this writer uses undefined
 * lengths for sequences and items: every element is written once, straight into one growing
 * buffer, with no length to compute before its content; 1,000 patch groups encode in about a second.
 */
import { createRequire } from 'node:module';
import os from 'node:os';
import { PathembedError } from '../../errors.js';
import { TransferSyntax } from '../../uids.js';
import type { Dataset } from './content-items.js';
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from './derived-uids.js';

type DicomJson = Record<string, unknown>;
interface DictionaryEntry {
  readonly tag: string;
  readonly vr: string;
}
interface DcmjsData {
  DicomMetaDictionary: {
    nameMap: Record<string, DictionaryEntry | undefined>;
    naturalizeDataset(json: DicomJson): Dataset;
  };
  DicomMessage: { readFile(buffer: ArrayBuffer, options?: unknown): { meta: DicomJson; dict: DicomJson } };
}

// createRequire: the CommonJS build loads without a type declaration for the ESM entry.
const dcmjs = createRequire(import.meta.url)('dcmjs') as { data: DcmjsData };
export const dcmjsData: DcmjsData = dcmjs.data;

const PREAMBLE_BYTES = 128;
const INITIAL_CAPACITY_BYTES = 1 << 20;
const UNDEFINED_LENGTH = 0xffffffff;
const ITEM_GROUP = 0xfffe;
const ITEM = 0xe000;
const ITEM_DELIMITATION = 0xe00d;
const SEQUENCE_DELIMITATION = 0xe0dd;
/** VRs with a 4-byte length after two reserved bytes (PS3.5 7.1.2); all others have 2. */
const LONG_LENGTH_VRS = new Set([
  'OB',
  'OD',
  'OF',
  'OL',
  'OV',
  'OW',
  'SQ',
  'SV',
  'UC',
  'UN',
  'UR',
  'UT',
  'UV',
]);
const TEXT_VRS = new Set([
  'AE',
  'AS',
  'CS',
  'DA',
  'DS',
  'DT',
  'IS',
  'LO',
  'LT',
  'PN',
  'SH',
  'ST',
  'TM',
  'UC',
  'UR',
  'UT',
  'UI',
]);
/** Most characters of one value, per VR (PS3.5 6.2); a longer value makes an invalid file. */
export const MAX_VALUE_CHARS: Readonly<Record<string, number>> = {
  AE: 16,
  AS: 4,
  CS: 16,
  DA: 8,
  DS: 16,
  DT: 26,
  IS: 12,
  LO: 64,
  LT: 10240,
  PN: 64 * 3 + 2,
  SH: 16,
  ST: 1024,
  TM: 16,
  UI: 64,
};
const FILE_META_VERSION = new Uint8Array([0, 1]);
/**
 * Binary values at least this long (bulk annotation coordinates and measurement columns) are not
 * copied into the writer's buffer but passed on as parts of their own, so a file of N x 4-byte
 * columns costs the columns once, not again for a growing buffer.
 */
const ATTACH_MIN_BYTES = 64 * 1024;
/** Typed arrays are written as they lie in memory only where memory is little endian, as the file. */
const LITTLE_ENDIAN = os.endianness() === 'LE';
/** Binary VRs whose value may be given as a typed array, and the width of one number. */
const TYPED_VRS: Readonly<
  Record<string, { size: number; set: (d: DataView, o: number, v: number) => void }>
> = {
  OF: { size: 4, set: (d, o, v) => d.setFloat32(o, v, true) },
  OD: { size: 8, set: (d, o, v) => d.setFloat64(o, v, true) },
  OL: { size: 4, set: (d, o, v) => d.setUint32(o, v, true) },
};
const UTF8_CHARACTER_SET = 'ISO_IR 192';

interface TagInfo {
  readonly group: number;
  readonly element: number;
  /** group << 16 | element, for ordering. */
  readonly order: number;
  readonly vr: string;
}

const tagCache = new Map<string, TagInfo>();

function tagInfo(keyword: string): TagInfo {
  let info = tagCache.get(keyword);
  if (info) return info;
  const entry = dcmjsData.DicomMetaDictionary.nameMap[keyword];
  const match = entry ? /^\(([0-9A-F]{4}),([0-9A-F]{4})\)$/i.exec(entry.tag) : null;
  if (!entry || !match) {
    throw new PathembedError(
      'INTERNAL',
      `DICOM writer: '${keyword}' is not a DICOM keyword with a fixed tag`,
      {
        keyword,
      },
    );
  }
  const group = Number.parseInt(match[1]!, 16);
  const element = Number.parseInt(match[2]!, 16);
  // "US or SS", "OB or OW": the first is right for every attribute this project writes.
  const vr = entry.vr.split(' ')[0]!;
  info = { group, element, order: group * 0x10000 + element, vr };
  tagCache.set(keyword, info);
  return info;
}

class ByteWriter {
  private bytes = new Uint8Array(INITIAL_CAPACITY_BYTES);
  private view = new DataView(this.bytes.buffer);
  length = 0;
  /** Finished parts before `bytes`: flushed buffers and attached values, in file order. */
  private readonly parts: Uint8Array[] = [];

  private reserve(n: number): void {
    if (this.length + n <= this.bytes.length) return;
    let capacity = this.bytes.length * 2;
    while (capacity < this.length + n) capacity *= 2;
    const grown = new Uint8Array(capacity);
    grown.set(this.bytes.subarray(0, this.length));
    this.bytes = grown;
    this.view = new DataView(grown.buffer);
  }

  u16(v: number): void {
    this.reserve(2);
    this.view.setUint16(this.length, v, true);
    this.length += 2;
  }

  u32(v: number): void {
    this.reserve(4);
    this.view.setUint32(this.length, v, true);
    this.length += 4;
  }

  raw(data: Uint8Array): void {
    this.reserve(data.length);
    this.bytes.set(data, this.length);
    this.length += data.length;
  }

  ascii(s: string): void {
    this.reserve(s.length);
    for (let i = 0; i < s.length; i++) this.bytes[this.length + i] = s.charCodeAt(i);
    this.length += s.length;
  }

  /** Appends `data` without copying it (the caller must not change it until the file is written). */
  attach(data: Uint8Array): void {
    if (data.length < ATTACH_MIN_BYTES) {
      this.raw(data);
      return;
    }
    if (this.length > 0) this.parts.push(this.bytes.subarray(0, this.length));
    this.parts.push(data);
    this.bytes = new Uint8Array(INITIAL_CAPACITY_BYTES);
    this.view = new DataView(this.bytes.buffer);
    this.length = 0;
  }

  /** Everything written, as parts in order (one part when nothing was attached). */
  resultParts(): Uint8Array[] {
    return this.length > 0 || this.parts.length === 0
      ? [...this.parts, this.bytes.subarray(0, this.length)]
      : [...this.parts];
  }

  result(): Uint8Array {
    const parts = this.resultParts();
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }
}

function textOf(value: unknown): string {
  if (value === undefined || value === null) return '';
  if (typeof value === 'object') {
    // PN as DICOM JSON gives it: {Alphabetic, Ideographic, Phonetic}
    const pn = value as { Alphabetic?: string; Ideographic?: string; Phonetic?: string };
    return [pn.Alphabetic ?? '', pn.Ideographic ?? '', pn.Phonetic ?? ''].join('=').replace(/=+$/, '');
  }
  return String(value);
}

interface WriteState {
  /** Set when a text value needed more than ASCII (then the file must declare UTF-8). */
  nonAscii: boolean;
}

/** The little-endian bytes of an OF, OD or OL value given as a typed array or a list of numbers. */
function typedValueBytes(keyword: string, vr: string, value: unknown): Uint8Array {
  const { size, set } = TYPED_VRS[vr]!;
  const bytesPer = ArrayBuffer.isView(value)
    ? (value as unknown as { BYTES_PER_ELEMENT?: number }).BYTES_PER_ELEMENT
    : 0;
  if (LITTLE_ENDIAN && bytesPer === size && !(value instanceof DataView)) {
    const view = value as ArrayBufferView;
    return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
  }
  const numbers = ArrayBuffer.isView(value)
    ? Array.from(value as unknown as ArrayLike<number>)
    : Array.isArray(value)
      ? (value as number[])
      : undefined;
  if (!numbers) {
    throw new PathembedError('INTERNAL', `DICOM writer: ${keyword} (${vr}) needs a typed array or numbers`, {
      keyword,
      vr,
    });
  }
  const out = new Uint8Array(numbers.length * size);
  const dv = new DataView(out.buffer);
  numbers.forEach((v, i) => {
    set(dv, i * size, Number(v));
  });
  return out;
}

function valueBytes(keyword: string, vr: string, value: unknown, state: WriteState): Uint8Array {
  if (vr in TYPED_VRS) return typedValueBytes(keyword, vr, value);
  const values = Array.isArray(value)
    ? value
    : value === undefined || value === null || value === ''
      ? []
      : [value];
  if (TEXT_VRS.has(vr)) {
    const texts = values.map(textOf);
    const max = MAX_VALUE_CHARS[vr];
    const tooLong = max === undefined ? undefined : texts.find((t) => t.length > max);
    if (tooLong !== undefined) {
      throw new PathembedError(
        'INVALID_ARGUMENT',
        `DICOM writer: ${keyword} (${vr}) value is ${tooLong.length} characters, more than the ${max} its VR allows: "${tooLong.slice(0, 80)}"`,
        { keyword, vr, length: tooLong.length, max },
      );
    }
    const text = texts.join('\\');
    const encoded = Buffer.from(text, 'utf8');
    if (encoded.length !== text.length) state.nonAscii = true;
    if (encoded.length % 2 === 0) return encoded;
    // Even length: UIDs pad with NUL, text with a space (PS3.5 6.2).
    return Buffer.concat([encoded, Buffer.from([vr === 'UI' ? 0 : 0x20])]);
  }
  const numbers = values as number[];
  const fixed = (size: number, set: (view: DataView, offset: number, v: number) => void) => {
    const out = new Uint8Array(numbers.length * size);
    const view = new DataView(out.buffer);
    numbers.forEach((v, i) => {
      set(view, i * size, Number(v));
    });
    return out;
  };
  switch (vr) {
    case 'US':
      return fixed(2, (d, o, v) => d.setUint16(o, v, true));
    case 'SS':
      return fixed(2, (d, o, v) => d.setInt16(o, v, true));
    case 'UL':
      return fixed(4, (d, o, v) => d.setUint32(o, v, true));
    case 'SL':
      return fixed(4, (d, o, v) => d.setInt32(o, v, true));
    case 'FL':
      return fixed(4, (d, o, v) => d.setFloat32(o, v, true));
    case 'FD':
      return fixed(8, (d, o, v) => d.setFloat64(o, v, true));
    case 'OB':
    case 'UN': {
      const data = values[0];
      const bytes =
        data instanceof ArrayBuffer
          ? new Uint8Array(data)
          : ArrayBuffer.isView(data)
            ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
            : new Uint8Array(0);
      return bytes.length % 2 === 0 ? bytes : Buffer.concat([bytes, Buffer.from([0])]);
    }
    default:
      throw new PathembedError('INTERNAL', `DICOM writer: VR ${vr} of ${keyword} is not supported`, {
        keyword,
        vr,
      });
  }
}

function writeHeader(out: ByteWriter, info: TagInfo, vr: string, length: number): void {
  out.u16(info.group);
  out.u16(info.element);
  out.ascii(vr);
  if (LONG_LENGTH_VRS.has(vr)) {
    out.u16(0);
    out.u32(length);
  } else {
    if (length > 0xffff) {
      throw new PathembedError(
        'INTERNAL',
        `DICOM writer: value of (${info.group.toString(16)},${info.element.toString(16)}) is ${length} bytes, too long for ${vr}`,
      );
    }
    out.u16(length);
  }
}

function writeDataset(out: ByteWriter, dataset: Dataset, state: WriteState): void {
  // dcmjs's naturalize adds `_vrMap` (the VRs the source used for ambiguous ones like "US or SS").
  const vrMap = (dataset._vrMap ?? {}) as Record<string, string>;
  const entries = Object.entries(dataset)
    .filter(([keyword, v]) => v !== undefined && !keyword.startsWith('_'))
    .map(([keyword, v]) => {
      const info = tagInfo(keyword);
      const vr = vrMap[keyword] ?? info.vr;
      return [vr === info.vr ? info : { ...info, vr }, keyword, v] as const;
    })
    .sort((a, b) => a[0].order - b[0].order);
  for (const [info, keyword, value] of entries) {
    if (info.vr === 'SQ') {
      writeHeader(out, info, 'SQ', UNDEFINED_LENGTH);
      for (const item of value as Dataset[]) {
        out.u16(ITEM_GROUP);
        out.u16(ITEM);
        out.u32(UNDEFINED_LENGTH);
        writeDataset(out, item, state);
        out.u16(ITEM_GROUP);
        out.u16(ITEM_DELIMITATION);
        out.u32(0);
      }
      out.u16(ITEM_GROUP);
      out.u16(SEQUENCE_DELIMITATION);
      out.u32(0);
    } else {
      const bytes = valueBytes(keyword, info.vr, value, state);
      writeHeader(out, info, info.vr, bytes.length);
      out.attach(bytes);
    }
  }
}

/**
 * The Part 10 bytes of a naturalized dataset that has SOPClassUID and SOPInstanceUID. Without a
 * SpecificCharacterSet the default repertoire (ASCII) is declared; should any text need more, the
 * dataset is written again declaring UTF-8 (ISO_IR 192), so plain files stay readable by tools
 * that know no other character sets.
 */
export function encodePart10(dataset: Dataset): Uint8Array {
  const parts = encodePart10Parts(dataset);
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

/**
 * The Part 10 bytes as parts in file order: long binary values (OF, OD, OL typed arrays of bulk
 * annotations) are parts of their own, not copied, so a large file can be written to a sink part
 * by part without ever being one buffer.
 */
export function encodePart10Parts(dataset: Dataset): Uint8Array[] {
  const state: WriteState = { nonAscii: false };
  const meta = new ByteWriter();
  writeDataset(
    meta,
    {
      FileMetaInformationVersion: FILE_META_VERSION,
      MediaStorageSOPClassUID: dataset.SOPClassUID,
      MediaStorageSOPInstanceUID: dataset.SOPInstanceUID,
      TransferSyntaxUID: TransferSyntax.ExplicitVRLittleEndian,
      ImplementationClassUID: IMPLEMENTATION_CLASS_UID,
      ImplementationVersionName: IMPLEMENTATION_VERSION_NAME,
    },
    state,
  );
  const metaBytes = meta.result();
  const out = new ByteWriter();
  out.raw(new Uint8Array(PREAMBLE_BYTES));
  out.ascii('DICM');
  writeHeader(out, tagInfo('FileMetaInformationGroupLength'), 'UL', 4);
  out.u32(metaBytes.length);
  out.raw(metaBytes);
  writeDataset(out, dataset, state);
  if (state.nonAscii && dataset.SpecificCharacterSet === undefined) {
    return encodePart10Parts({ ...dataset, SpecificCharacterSet: UTF8_CHARACTER_SET });
  }
  return out.resultParts();
}

/** Parses Part 10 bytes into a naturalized dataset (tests, tools). */
export function decodePart10(bytes: Uint8Array): Dataset {
  const copy = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  const file = dcmjsData.DicomMessage.readFile(copy);
  return dcmjsData.DicomMetaDictionary.naturalizeDataset(file.dict);
}

/** DICOM JSON (PS3.18 F.2, as stores return metadata) to a naturalized dataset. */
export function naturalize(json: DicomJson): Dataset {
  return dcmjsData.DicomMetaDictionary.naturalizeDataset(json);
}
