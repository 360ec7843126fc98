/**
 * QIDO paging against the answers stores give: pages capped below the limit asked, stores that
 * ignore `offset`, overlapping pages. The store here is a function over a list of datasets, which
 * is all a QIDO page is; the HTTP side is tested in dicomweb-http-exchange.test.ts.
 */
import { describe, expect, it } from 'vitest';
import type { DicomJsonDataset } from '../../src/dicom-json.js';
import { pageQido } from '../../src/dicomweb/qido-paging.js';

const UID = '0020000E';
const item = (n: number): DicomJsonDataset => ({ [UID]: { vr: 'UI', Value: [`1.2.${n}`] } });
const keyOf = (ds: DicomJsonDataset) => ds[UID]?.Value?.[0] as string | undefined;
const list = (n: number) => Array.from({ length: n }, (_, i) => item(i));

/** A store holding `all`, answering at most `cap` a page, honouring offset unless told not to. */
function store(all: DicomJsonDataset[], cap: number, ignoresOffset = false) {
  const asked: Array<[number, number]> = [];
  const fetchPage = async (offset: number, limit: number) => {
    asked.push([offset, limit]);
    const from = ignoresOffset ? 0 : offset;
    return all.slice(from, from + Math.min(limit, cap));
  };
  return { fetchPage, asked };
}

describe('pageQido', () => {
  it('pages past a store that caps every page below the limit asked, to the last item', async () => {
    const s = store(list(250), 100);
    const result = await pageQido(s.fetchPage, { pageSize: 1000, keyOf });
    expect(result.items.map(keyOf)).toEqual(list(250).map(keyOf));
    expect(s.asked).toEqual([
      [0, 1000],
      [100, 1000],
      [200, 1000],
    ]);
    expect(result.repeated).toBe(false);
  });

  it('stops after one short page when the next page is empty (a store that does not cap)', async () => {
    const s = store(list(7), 1000);
    const result = await pageQido(s.fetchPage, { pageSize: 1000, keyOf });
    expect(result.items).toHaveLength(7);
    expect(result.requests).toBe(2);
    expect(result.repeated).toBe(false);
  });

  it('ends, and says so, when a store ignores the offset and answers a full first page again', async () => {
    const s = store(list(5000), 1000, true);
    const result = await pageQido(s.fetchPage, { pageSize: 1000, keyOf });
    expect(result.items).toHaveLength(1000);
    expect(result.requests).toBe(2);
    expect(result.repeated).toBe(true);
  });

  it('ends without alarm when a store that ignores the offset had everything in its first, short page', async () => {
    const s = store(list(3), 1000, true);
    const result = await pageQido(s.fetchPage, { pageSize: 10, keyOf });
    expect(result.items).toHaveLength(3);
    expect(result.repeated).toBe(false);
  });

  it('keeps each item once when pages overlap', async () => {
    // Each page starts one item early: offset 4 answers items 3-6.
    const all = list(10);
    const fetchPage = async (offset: number, limit: number) => {
      const from = Math.max(0, offset - 1);
      return all.slice(from, from + limit);
    };
    const result = await pageQido(fetchPage, { pageSize: 4, keyOf });
    expect(result.items.map(keyOf)).toEqual(all.map(keyOf));
    expect(result.repeated).toBe(false);
  });

  it('asks for no more than maxItems, the last page only for what is missing', async () => {
    const s = store(list(50), 1000);
    const result = await pageQido(s.fetchPage, { pageSize: 20, maxItems: 25, keyOf });
    expect(result.items.map(keyOf)).toEqual(list(25).map(keyOf));
    expect(s.asked).toEqual([
      [0, 20],
      [20, 5],
    ]);
  });

  it('leaves out items without a key, and a page of only such items ends the search', async () => {
    const keyless: DicomJsonDataset = {};
    const result = await pageQido(async () => [keyless, keyless], { pageSize: 2, keyOf });
    expect(result.items).toEqual([]);
    expect(result.requests).toBe(1);
  });
});
