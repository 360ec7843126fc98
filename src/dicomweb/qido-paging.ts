/**
 * Paging through a QIDO-RS search as stores really answer it, for every paged search the client
 * makes (a series' instances, a study's or a store's slide series).
 *
 * - A store may cap a page below the `limit` asked (PS3.18 §8.3.4.4 allows it; Google Healthcare
 *   caps series searches), so a page shorter than asked ends the search only when it is empty or
 *   also shorter than the longest page the store has given.
 * - A store may ignore `offset` and answer the first page again (or pages that overlap). Items are
 *   told apart by a key (a UID): a page that brings nothing new ends the search instead of asking
 *   the same thing forever, and says so (`repeated`), since a caller that must list everything
 *   cannot tell then whether the answer was complete.
 */
import type { DicomJsonDataset } from '../dicom-json.js';

export interface QidoPagingOptions {
  /** Items asked for per page (`limit`). */
  readonly pageSize: number;
  /** Stop once this many distinct items are found; default no bound. */
  readonly maxItems?: number;
  /** What tells two items apart (a UID); items without one are left out. */
  keyOf(ds: DicomJsonDataset): string | undefined;
}

export interface QidoPages {
  /** Distinct items, first seen first. */
  readonly items: DicomJsonDataset[];
  /** Pages asked for. */
  readonly requests: number;
  /**
   * The search ended on a page as long as asked that held nothing new: the store ignores `offset`
   * (or repeats itself), so items past that page, if any, could not be had.
   */
  readonly repeated: boolean;
}

/** Asks `fetchPage(offset, limit)` page after page until the search is done (module doc). */
export async function pageQido(
  fetchPage: (offset: number, limit: number) => Promise<readonly DicomJsonDataset[]>,
  options: QidoPagingOptions,
): Promise<QidoPages> {
  const maxItems = options.maxItems ?? Number.POSITIVE_INFINITY;
  const items: DicomJsonDataset[] = [];
  const seen = new Set<string>();
  let offset = 0;
  let longestPage = 0;
  let requests = 0;
  while (items.length < maxItems) {
    const asked = Math.min(options.pageSize, maxItems - items.length);
    const page = await fetchPage(offset, asked);
    requests++;
    let fresh = 0;
    for (const ds of page) {
      const key = options.keyOf(ds);
      if (key === undefined || seen.has(key)) continue;
      seen.add(key);
      fresh++;
      items.push(ds);
      if (items.length >= maxItems) break;
    }
    if (page.length === 0) break;
    if (fresh === 0) return { items, requests, repeated: page.length >= asked };
    offset += page.length;
    if (page.length < asked && page.length < longestPage) break;
    longestPage = Math.max(longestPage, page.length);
  }
  return { items, requests, repeated: false };
}
