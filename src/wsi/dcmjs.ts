/**
 * The slice of dcmjs (0.52, no type declarations of its own) this service uses, typed here: reading
 * a Part 10 header into DICOM JSON, and writing a Part 10 file from DICOM JSON. dcmjs's in-memory
 * "dict" is DICOM JSON with extras (`_rawValue`, ArrayBuffers for binary values, numbers for AT);
 * `dcmjsDictToDicomJson` turns it into the PS3.18 F.2 form WADO-RS returns.
 */
import { createRequire } from 'node:module';
import type { DicomJsonDataset, DicomJsonElement } from '../dicom-json.js';
import { Tag } from '../dicom-tags.js';

interface DcmjsElement {
  vr: string;
  Value?: unknown[];
}
type DcmjsDict = Record<string, DcmjsElement>;

interface DcmjsDicomDict {
  meta: DcmjsDict;
  dict: DcmjsDict;
  write(options?: { allowInvalidVRLength?: boolean }): ArrayBuffer;
}

interface DcmjsModule {
  data: {
    DicomMessage: {
      readFile(
        buffer: ArrayBuffer,
        options?: {
          ignoreErrors?: boolean;
          untilTag?: string | null;
          includeUntilTagValue?: boolean;
          noCopy?: boolean;
        },
      ): DcmjsDicomDict;
    };
    DicomDict: new (meta: DcmjsDict) => DcmjsDicomDict;
  };
  log?: { setLevel?(level: string): void; getLogger?(name: string): { setLevel(level: string): void } };
}

const require = createRequire(import.meta.url);
const dcmjs = require('dcmjs') as DcmjsModule;
// dcmjs logs warnings and VR validation complaints to the console; the service logs through pino only,
// and reports what matters as errors it throws.
dcmjs.log?.setLevel?.('silent');
dcmjs.log?.getLogger?.('validation.dcmjs').setLevel('silent');

/** Binary values up to this size are kept inline (base64); larger ones are dropped, as bulk data. */
const INLINE_BINARY_LIMIT = 64 * 1024;
const BINARY_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'UN']);

function toUint8(v: unknown): Uint8Array | undefined {
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  return undefined;
}

function convertElement(el: DcmjsElement): DicomJsonElement | undefined {
  const vr = el.vr;
  const raw = Array.isArray(el.Value) ? el.Value : [];
  if (BINARY_VRS.has(vr)) {
    const chunks = raw.map(toUint8).filter((c): c is Uint8Array => c !== undefined);
    const total = chunks.reduce((n, c) => n + c.byteLength, 0);
    if (total === 0) return { vr };
    if (total > INLINE_BINARY_LIMIT) return { vr };
    return { vr, InlineBinary: Buffer.concat(chunks).toString('base64') };
  }
  if (vr === 'SQ') {
    return { vr, Value: raw.map((item) => dcmjsDictToDicomJson(item as DcmjsDict)) };
  }
  let values: unknown[] = raw;
  if (vr === 'AT') {
    values = raw.map((v) => (typeof v === 'number' ? v.toString(16).toUpperCase().padStart(8, '0') : v));
  }
  if (values.length === 0 || (values.length === 1 && (values[0] === '' || values[0] === null))) return { vr };
  return { vr, Value: values };
}

/** dcmjs's dict (one dataset or sequence item) as plain DICOM JSON; pixel data is never included. */
export function dcmjsDictToDicomJson(dict: DcmjsDict): DicomJsonDataset {
  const out: DicomJsonDataset = {};
  for (const [tag, el] of Object.entries(dict)) {
    const key = tag.toUpperCase();
    if (key.startsWith('7FE0') || !el || typeof el.vr !== 'string') continue;
    const converted = convertElement(el);
    if (converted) out[key] = converted;
  }
  return out;
}

/**
 * Parses the bytes of a Part 10 file up to (not including) its pixel data: file meta and dataset
 * as DICOM JSON. Throws dcmjs's error when the bytes are not DICOM.
 */
export function readPart10Header(bytes: Uint8Array): { meta: DicomJsonDataset; dataset: DicomJsonDataset } {
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  const parsed = dcmjs.data.DicomMessage.readFile(buffer, { untilTag: Tag.PixelData, ignoreErrors: false });
  return { meta: dcmjsDictToDicomJson(parsed.meta), dataset: dcmjsDictToDicomJson(parsed.dict) };
}

/** DICOM JSON (with ArrayBuffer/Uint8Array values for binary VRs) as dcmjs's dict. */
function toDcmjsDict(ds: DicomJsonDataset): DcmjsDict {
  const out: DcmjsDict = {};
  for (const [tag, el] of Object.entries(ds)) {
    if (el.vr === 'SQ') {
      out[tag] = { vr: 'SQ', Value: (el.Value ?? []).map((item) => toDcmjsDict(item as DicomJsonDataset)) };
    } else if (BINARY_VRS.has(el.vr)) {
      const bytes =
        el.InlineBinary !== undefined ? Buffer.from(el.InlineBinary, 'base64') : toUint8(el.Value?.[0]);
      out[tag] = {
        vr: el.vr,
        Value: bytes ? [bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)] : [],
      };
    } else if (el.vr === 'AT') {
      out[tag] = {
        vr: 'AT',
        Value: (el.Value ?? []).map((v) => (typeof v === 'string' ? Number.parseInt(v, 16) : v)),
      };
    } else {
      out[tag] = { vr: el.vr, Value: el.Value ?? [] };
    }
  }
  return out;
}

/**
 * A Part 10 file (preamble, file meta, dataset) from DICOM JSON, without pixel data: the caller
 * appends the Pixel Data element, which must be the dataset's last element. `meta` holds the
 * group 0002 elements; the group length is computed.
 */
export function writePart10Header(meta: DicomJsonDataset, dataset: DicomJsonDataset): Uint8Array {
  const dict = new dcmjs.data.DicomDict(toDcmjsDict(meta));
  dict.dict = toDcmjsDict(dataset);
  return new Uint8Array(dict.write());
}
