/**
 * The page's calls to the API: same-origin fetches that carry the session cookie (never a key in
 * a URL). A 401 sends the browser to the login form.
 */

export interface JobStatus {
  readonly id: string;
  readonly state: string;
  readonly source: { readonly url?: string | null };
  readonly progress: {
    readonly planned: number | null;
    readonly done: number;
    readonly patchesPerSecond: number | null;
  };
  readonly error: { readonly code: string; readonly message: string } | null;
}

export interface SessionInfo {
  readonly mode: 'service' | 'local';
  readonly authRequired: boolean;
  readonly signedIn: boolean;
  readonly queues: boolean;
  readonly localJobId: string | null;
}

export interface SlideLayout {
  readonly jobId: string;
  readonly widthPx: number;
  readonly heightPx: number;
  readonly tileSizePx: number;
  readonly maxLevel: number;
  readonly tiles: string;
}

export type { PatchOverlay } from '../../results/patch-overlay-columns.js';

export interface Neighbour {
  readonly jobId: string;
  readonly patchIndex: number;
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
  readonly distance: number;
}

export interface SearchAnswer {
  readonly index: { readonly kind: string; readonly size: number };
  readonly neighbours: Neighbour[];
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export async function api<T>(path: string, init: { method?: string; body?: unknown } = {}): Promise<T> {
  const res = await fetch(path, {
    method: init.method ?? 'GET',
    credentials: 'same-origin',
    headers: init.body === undefined ? {} : { 'content-type': 'application/json' },
    ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
  });
  if (res.status === 401) {
    window.location.assign('/ui/login');
    throw new ApiError(401, 'UNAUTHORIZED', 'Sign in first');
  }
  const text = await res.text();
  const json = text ? (JSON.parse(text) as unknown) : undefined;
  if (!res.ok) {
    const error = (json as { error?: { code?: string; message?: string } } | undefined)?.error;
    throw new ApiError(res.status, error?.code ?? String(res.status), error?.message ?? res.statusText);
  }
  return json as T;
}

/** A level-0 region of a job's slide as a JPEG URL (patch thumbnails). */
export function regionUrl(
  jobId: string,
  r: { x: number; y: number; width: number; height: number },
  size: number,
): string {
  const q = new URLSearchParams({
    x: String(r.x),
    y: String(r.y),
    width: String(r.width),
    height: String(r.height),
    size: String(size),
  });
  return `/v1/jobs/${encodeURIComponent(jobId)}/region?${q}`;
}
