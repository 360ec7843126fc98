/**
 * DICOM JSON (PS3.18 F.2) as the wire and dcmjs give it, with typed accessors that name the
 * attribute when it is missing or malformed. Tags are 8 upper-case hex digits ("00280010").
 */

import { Tag } from './dicom-tags.js';
import { PathembedError } from './errors.js';

export interface DicomJsonElement {
  vr: string;
  Value?: unknown[];
  BulkDataURI?: string;
  InlineBinary?: string;
}

export type DicomJsonDataset = Record<string, DicomJsonElement>;

/** The first value of a tag, or undefined. */
export function value<T = unknown>(ds: DicomJsonDataset, tag: string): T | undefined {
  return ds[tag]?.Value?.[0] as T | undefined;
}

/** All values of a tag (empty when absent). */
export function values<T = unknown>(ds: DicomJsonDataset, tag: string): T[] {
  return (ds[tag]?.Value ?? []) as T[];
}

export function str(ds: DicomJsonDataset, tag: string): string | undefined {
  const v = value(ds, tag);
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'object' && v !== null && 'Alphabetic' in v)
    return String((v as { Alphabetic: unknown }).Alphabetic);
  return String(v);
}

export function num(ds: DicomJsonDataset, tag: string): number | undefined {
  const v = value(ds, tag);
  if (v === undefined || v === null || v === '') return undefined;
  const n = typeof v === 'number' ? v : Number(v);
  return Number.isFinite(n) ? n : undefined;
}

/** Items of a sequence (SQ) attribute. */
export function items(ds: DicomJsonDataset, tag: string): DicomJsonDataset[] {
  return values<DicomJsonDataset>(ds, tag);
}

/** A required number; throws INVALID_DICOM naming the attribute and the instance. */
export function requireNum(ds: DicomJsonDataset, tag: string, name: string): number {
  const n = num(ds, tag);
  if (n === undefined) {
    throw new PathembedError(
      'INVALID_DICOM',
      `Required attribute ${name} (${tag}) is missing or not a number`,
      {
        tag,
        attribute: name,
        sopInstanceUid: str(ds, Tag.SOPInstanceUID),
      },
    );
  }
  return n;
}

export function requireStr(ds: DicomJsonDataset, tag: string, name: string): string {
  const s = str(ds, tag);
  if (s === undefined || s === '') {
    throw new PathembedError('INVALID_DICOM', `Required attribute ${name} (${tag}) is missing`, {
      tag,
      attribute: name,
      sopInstanceUid: str(ds, Tag.SOPInstanceUID),
    });
  }
  return s;
}
