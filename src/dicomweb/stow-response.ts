/**
 * The STOW-RS answer (PS3.18 §10.5.3): which instances the store took (ReferencedSOPSequence,
 * with any WarningReason) and which it refused (FailedSOPSequence with FailureReason), turned into
 * a result or a STOW_FAILED error that names each refused instance and why.
 */

import type { DicomJsonDataset } from '../dicom-json.js';
import { Tag } from '../dicom-tags.js';
import { PathembedError } from '../errors.js';
import { collapse, ERROR_EXCERPT_CHARS } from './store-request.js';

/** PS3.4 / PS3.18 status codes a FailureReason may hold. */
const FAILURE_REASONS: Readonly<Record<number, string>> = {
  272: 'processing failure',
  290: 'SOP class not supported',
  292: 'not authorized',
  42752: 'out of resources',
  43264: 'data set does not match SOP class',
  49152: 'cannot understand',
  49442: 'transfer syntax not supported',
};

export interface StowReference {
  readonly sopClassUid: string | undefined;
  readonly sopInstanceUid: string | undefined;
  readonly retrieveUrl: string | undefined;
  /** Set when the store accepted the instance with a warning (e.g. coerced attributes). */
  readonly warningReason?: number;
}

export interface StowFailure {
  readonly sopClassUid: string | undefined;
  readonly sopInstanceUid: string | undefined;
  readonly failureReason: number | undefined;
  /** "0xA900 data set does not match SOP class". */
  readonly reason: string;
}

export interface StowResult {
  /** HTTP status of the answer (200, or 202 when some instances carry warnings). */
  readonly status: number;
  readonly stored: readonly StowReference[];
}

function firstString(ds: DicomJsonDataset, tag: string): string | undefined {
  const v = ds[tag]?.Value?.[0];
  return v === undefined || v === null ? undefined : String(v);
}

function firstNumber(ds: DicomJsonDataset, tag: string): number | undefined {
  const v = ds[tag]?.Value?.[0];
  const n = typeof v === 'number' ? v : Number(v);
  return v === undefined || v === null || Number.isNaN(n) ? undefined : n;
}

export function hex4(code: number): string {
  return `0x${code.toString(16).toUpperCase().padStart(4, '0')}`;
}

/**
 * Interprets a STOW-RS answer. `ok` is whether the HTTP status was 2xx; a refusal (400/409) or any
 * FailedSOPSequence item throws STOW_FAILED. `what` names the request for messages.
 */
export function parseStowResponse(
  status: number,
  ok: boolean,
  text: string,
  what: string,
  sentCount: number,
): StowResult {
  let ds: DicomJsonDataset = {};
  if (text.trim() !== '') {
    try {
      const parsed = JSON.parse(text) as unknown;
      ds = ((Array.isArray(parsed) ? parsed[0] : parsed) ?? {}) as DicomJsonDataset;
    } catch {
      if (ok) {
        throw new PathembedError(
          'DICOMWEB_BAD_RESPONSE',
          `${what}: HTTP ${status} with a body that is not DICOM JSON: "${collapse(text).slice(0, ERROR_EXCERPT_CHARS)}".`,
          { status },
        );
      }
    }
  }
  const items = (tag: string) => (ds[tag]?.Value ?? []) as DicomJsonDataset[];
  const stored: StowReference[] = items(Tag.ReferencedSOPSequence).map((item) => {
    const warningReason = firstNumber(item, Tag.WarningReason);
    return {
      sopClassUid: firstString(item, Tag.ReferencedSOPClassUID),
      sopInstanceUid: firstString(item, Tag.ReferencedSOPInstanceUID),
      retrieveUrl: firstString(item, Tag.RetrieveURL),
      ...(warningReason !== undefined ? { warningReason } : {}),
    };
  });
  const failed: StowFailure[] = items(Tag.FailedSOPSequence).map((item) => {
    const code = firstNumber(item, Tag.FailureReason);
    return {
      sopClassUid: firstString(item, Tag.ReferencedSOPClassUID),
      sopInstanceUid: firstString(item, Tag.ReferencedSOPInstanceUID),
      failureReason: code,
      reason:
        code === undefined
          ? 'no FailureReason given'
          : `${hex4(code)} ${FAILURE_REASONS[code] ?? 'failure (see the PS3.4 status codes)'}`,
    };
  });
  if (failed.length === 0 && ok) return { status, stored };
  const listed = failed.map((f) => `${f.sopInstanceUid ?? '(unknown instance)'}: ${f.reason}`).join('; ');
  const bodyHint =
    text.trim() !== '' && listed === '' ? `: "${collapse(text).slice(0, ERROR_EXCERPT_CHARS)}"` : '';
  throw new PathembedError(
    'STOW_FAILED',
    `${what}: the store refused ${failed.length > 0 ? `${failed.length} of ${sentCount} object(s)` : 'the upload'} (HTTP ${status})` +
      `${listed ? `: ${listed}` : bodyHint}. ` +
      'Check that the objects are valid (dciodvfy), that the store accepts their SOP class and transfer syntax, and that the instances do not already exist with different content.',
    { status, failed, stored },
  );
}
