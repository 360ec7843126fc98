/**
 * Exact nearest-patch search over one result held in memory, for the local viewer (a demo slide's
 * few hundred patches: brute force takes well under a millisecond). It answers POST /v1/search in
 * the service's shape: the k patches nearest by cosine distance, the query patch itself first.
 */
import { PathembedError } from '../errors.js';
import type { ResultPatch } from '../results/result-reader.js';

export interface SearchNeighbour {
  readonly jobId: string;
  readonly patchIndex: number;
  readonly x: number;
  readonly y: number;
  readonly width: number;
  readonly height: number;
  readonly distance: number;
  readonly source: Readonly<Record<string, unknown>>;
}

export interface SearchAnswer {
  readonly index: { readonly kind: string; readonly size: number };
  readonly query: Readonly<Record<string, unknown>>;
  readonly neighbours: SearchNeighbour[];
}

/** Most neighbours one query may ask for. */
export const MAX_NEIGHBOURS = 1000;

export class ExactPatchSearch {
  readonly #unit: Float32Array[];

  constructor(
    private readonly jobId: string,
    private readonly patches: readonly ResultPatch[],
    private readonly source: Readonly<Record<string, unknown>>,
  ) {
    this.#unit = patches.map((p) => unit(p.embedding));
  }

  /** The patch whose rectangle holds level-0 point (x, y); NOT_FOUND when none does. */
  patchAt(x: number, y: number): ResultPatch {
    const hit =
      this.patches.find((p) => p.x === x && p.y === y) ??
      this.patches.find((p) => x >= p.x && x < p.x + p.width && y >= p.y && y < p.y + p.height);
    if (!hit)
      throw new PathembedError('NOT_FOUND', `No patch of job ${this.jobId} at x=${x} y=${y}`, { x, y });
    return hit;
  }

  search(query: Float32Array, k: number, described: Readonly<Record<string, unknown>>): SearchAnswer {
    if (!Number.isInteger(k) || k < 1 || k > MAX_NEIGHBOURS) {
      throw new PathembedError('INVALID_ARGUMENT', `k must be 1..${MAX_NEIGHBOURS}, got ${k}`, { k });
    }
    const q = unit(query);
    const scored = this.#unit.map((v, i) => {
      let dot = 0;
      for (let d = 0; d < v.length; d++) dot += v[d]! * q[d]!;
      return { i, distance: Math.max(0, 1 - dot) };
    });
    scored.sort((a, b) => a.distance - b.distance || a.i - b.i);
    return {
      index: { kind: 'exact', size: this.patches.length },
      query: described,
      neighbours: scored.slice(0, k).map(({ i, distance }) => {
        const p = this.patches[i]!;
        return {
          jobId: this.jobId,
          patchIndex: p.index,
          x: p.x,
          y: p.y,
          width: p.width,
          height: p.height,
          distance,
          source: this.source,
        };
      }),
    };
  }
}

function unit(v: Float32Array): Float32Array {
  let s = 0;
  for (const x of v) s += x * x;
  const n = Math.sqrt(s) || 1;
  return v.map((x) => x / n);
}
