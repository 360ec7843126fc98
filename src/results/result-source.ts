/**
 * The `source` block of a result from a job's slide source. A result is a file people share, so
 * it must never carry a credential: tokens travel beside the spec, never in it, and a base URL is
 * written without user information, query or fragment (where signed URLs and
 * `?access_token=` put theirs).
 */
import { PathembedError } from '../errors.js';
import type { SlideSourceSpec } from '../slide-source-spec.js';
import type { ResultSource } from './result-document.js';

/** The URL with user, password, query and fragment removed, and no trailing slash. */
export function publicBaseUrl(baseUrl: string): string {
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    throw new PathembedError('INVALID_ARGUMENT', 'The source base URL is not a URL', { argument: 'baseUrl' });
  }
  url.username = '';
  url.password = '';
  url.search = '';
  url.hash = '';
  return url.toString().replace(/\/+$/, '');
}

export interface SourceIdentity {
  readonly studyInstanceUid?: string;
  readonly seriesInstanceUid?: string;
  /** The instances the patches were read from. */
  readonly instanceUids: readonly string[];
}

export function resultSource(spec: SlideSourceSpec, identity: SourceIdentity): ResultSource {
  if (spec.kind === 'dicomweb') {
    return {
      kind: 'dicomweb',
      baseUrl: publicBaseUrl(spec.baseUrl),
      studyInstanceUid: spec.studyUid,
      seriesInstanceUid: spec.seriesUid,
      instanceUids: [...identity.instanceUids],
    };
  }
  return {
    kind: 'local',
    folder: spec.folder,
    ...(identity.studyInstanceUid ? { studyInstanceUid: identity.studyInstanceUid } : {}),
    ...(identity.seriesInstanceUid ? { seriesInstanceUid: identity.seriesInstanceUid } : {}),
    instanceUids: [...identity.instanceUids],
  };
}
