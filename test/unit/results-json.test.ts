import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isPathembedError } from '../../src/errors.js';
import { decodeEmbedding, embeddingToBase64, float32ToDecimal } from '../../src/results/embedding-codec.js';
import { resultJsonSchema } from '../../src/results/result-document.js';
import { readResult, streamResult } from '../../src/results/result-reader.js';
import { publicBaseUrl, resultSource } from '../../src/results/result-source.js';
import { type ResultHeaderInput, ResultWriter } from '../../src/results/result-writer.js';

const DIM = 384;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'pathembed-results-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Deterministic pseudo-random embedding (mulberry32) so failures reproduce. */
function embedding(seed: number): Float32Array {
  let a = seed >>> 0;
  const out = new Float32Array(DIM);
  for (let i = 0; i < DIM; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out[i] = (((t ^ (t >>> 14)) >>> 0) / 4294967296 - 0.5) * 10 ** ((i % 7) - 3);
  }
  return out;
}

function header(encoding: 'float32-array' | 'float32-base64'): ResultHeaderInput {
  return {
    jobKey: 'test-job',
    source: resultSource(
      {
        kind: 'dicomweb',
        baseUrl: 'http://user:secret@127.0.0.1:8042/dicom-web/?access_token=abc',
        studyUid: '1.2.3',
        seriesUid: '1.2.3.4',
      },
      { instanceUids: ['1.2.3.4.5'] },
    ),
    model: { name: 'm', version: '1', sha256: 'a'.repeat(64) },
    parameters: {
      pixelSpacingUm: 0.5,
      stridePx: 224,
      minTissue: 0.5,
      patchSizePx: 224,
      patchSelection: 'tissue-grid',
      requirePatchesInside: false,
      batchSize: 32,
    },
    range: null,
    level: {
      index: 0,
      widthPx: 2220,
      heightPx: 2967,
      pixelSpacingUm: { x: 0.499, y: 0.499 },
      scaleFromGrid: 1.002,
    },
    baseLevel: { widthPx: 2220, heightPx: 2967, pixelSpacingUm: { x: 0.499, y: 0.499 } },
    grid: {
      coordinates: 'target-grid',
      description: 'x',
      pixelSpacingUm: 0.5,
      widthPx: 2215,
      heightPx: 2961,
    },
    tissue: { method: 'otsu', spacingUm: 8, fraction: 0.4 },
    embeddingDimension: DIM,
    embeddingEncoding: encoding,
  };
}

const timings = { planMs: 1, fetchMs: 2, decodeMs: 3, inferMs: 4, totalMs: 10 };

async function writeSample(file: string, encoding: 'float32-array' | 'float32-base64', n: number) {
  const writer = await ResultWriter.create(file, header(encoding));
  for (let i = 0; i < n; i++) {
    await writer.writePatch({
      index: i * 2,
      x: i * 224,
      y: 0,
      width: 224,
      height: 224,
      tissueFraction: 0.75,
      embedding: embedding(i),
    });
  }
  return writer.finish({ plannedPatchCount: n * 2, timings });
}

describe('embedding codec', () => {
  it('writes the shortest decimal that reads back to the same float32', () => {
    expect(float32ToDecimal(Math.fround(0.1))).toBe('0.1');
    expect(float32ToDecimal(0)).toBe('0');
    expect(float32ToDecimal(-2.5)).toBe('-2.5');
    const e = embedding(7);
    for (const v of e) expect(Math.fround(Number(float32ToDecimal(v)))).toBe(v);
  });

  it('round-trips base64 little-endian float32 and names bad input', () => {
    const e = embedding(3);
    expect(decodeEmbedding(embeddingToBase64(e), 'float32-base64', DIM, 'here')).toEqual(e);
    // little-endian: 1.0f is 00 00 80 3f
    expect(Buffer.from(embeddingToBase64(Float32Array.of(1)), 'base64')).toEqual(
      Buffer.from([0, 0, 0x80, 0x3f]),
    );
    expect(() => decodeEmbedding('AAAA', 'float32-base64', DIM, 'patches[3]')).toThrow(/patches\[3\]/);
    expect(() => float32ToDecimal(Number.NaN)).toThrow(/not finite/);
  });
});

describe('JSON result writer and reader', () => {
  for (const encoding of ['float32-array', 'float32-base64'] as const) {
    it(`round-trips every patch, the mean and the summary (${encoding})`, async () => {
      const file = path.join(dir, `round-trip-${encoding}.json`);
      const n = 5;
      const summary = await writeSample(file, encoding, n);
      const doc = await readResult(file);
      expect(doc.header.schemaVersion).toBe('1.0');
      expect(doc.header.embeddingEncoding).toBe(encoding);
      expect(doc.patches.map((p) => p.index)).toEqual([0, 2, 4, 6, 8]);
      doc.patches.forEach((p, i) => {
        expect(p.embedding).toEqual(embedding(i));
        expect(p).toMatchObject({ x: i * 224, y: 0, width: 224, height: 224, tissueFraction: 0.75 });
      });
      const expectedMean = new Float32Array(DIM);
      for (let c = 0; c < DIM; c++) {
        let s = 0;
        for (let i = 0; i < n; i++) s += embedding(i)[c];
        expectedMean[c] = s / n;
      }
      expect(doc.summary.meanEmbedding).toEqual(expectedMean);
      expect(doc.summary).toMatchObject({ plannedPatchCount: 10, patchCount: 5 });
      expect(doc.summary.timings.writeMs).toBeGreaterThan(0);
      expect(summary.patchCount).toBe(5);

      // streaming gives the same
      const stream = await streamResult(file);
      expect(stream.header).toEqual(doc.header);
      const streamed = [];
      for await (const p of stream.patches()) streamed.push(p);
      expect(streamed).toEqual(doc.patches);
      expect(await stream.summary()).toEqual(doc.summary);
    });
  }

  it('never writes credentials from the source URL', async () => {
    const file = path.join(dir, 'no-token.json');
    await writeSample(file, 'float32-array', 1);
    const text = await readFile(file, 'utf8');
    expect(text).not.toMatch(/secret|access_token|abc|user/);
    expect((await readResult(file)).header.source).toMatchObject({
      baseUrl: 'http://127.0.0.1:8042/dicom-web',
    });
    expect(publicBaseUrl('https://h.example/dicomWeb/?sig=1#x')).toBe('https://h.example/dicomWeb');
  });

  it('publishes nothing until finish, and abort leaves no file', async () => {
    const sub = path.join(dir, 'atomic');
    const file = path.join(sub, 'r.json');
    const writer = await ResultWriter.create(file, header('float32-array'));
    await writer.writePatch({
      index: 0,
      x: 0,
      y: 0,
      width: 224,
      height: 224,
      tissueFraction: 1,
      embedding: embedding(1),
    });
    expect(await readdir(sub)).not.toContain('r.json');
    await writer.abort();
    expect(await readdir(sub)).toEqual([]);
  });

  it('refuses patches out of order, naming the index', async () => {
    const writer = await ResultWriter.create(path.join(dir, 'order.json'), header('float32-array'));
    const p = { x: 0, y: 0, width: 224, height: 224, tissueFraction: 1, embedding: embedding(1) };
    await writer.writePatch({ index: 3, ...p });
    await expect(writer.writePatch({ index: 2, ...p })).rejects.toThrow(/patch index 2/);
    await writer.abort();
  });

  it('lists failed patches in the summary, in order, outside the mean and the patches', async () => {
    const file = path.join(dir, 'failed.json');
    const writer = await ResultWriter.create(file, header('float32-array'));
    const rect = (index: number) => ({
      index,
      x: index * 224,
      y: 0,
      width: 224,
      height: 224,
      tissueFraction: 1,
    });
    const failure = { code: 'FRAME_DECODE_ERROR', message: 'Frame index 4 of instance 1.2.3: corrupt' };
    await writer.writePatch({ ...rect(0), embedding: embedding(1) });
    writer.writeFailedPatch(rect(1), failure);
    await writer.writePatch({ ...rect(2), embedding: embedding(3) });
    expect(() => writer.writeFailedPatch(rect(2), failure)).toThrow(/patch index 2/);
    const summary = await writer.finish({
      plannedPatchCount: 3,
      timings: { planMs: 0, fetchMs: 0, decodeMs: 0, inferMs: 0, totalMs: 1 },
    });
    expect(summary).toMatchObject({ plannedPatchCount: 3, patchCount: 2, failedPatchCount: 1 });
    const doc = await readResult(file);
    expect(doc.patches.map((p) => p.index)).toEqual([0, 2]);
    expect(doc.summary.failedPatches).toEqual([
      { index: 1, x: 224, y: 0, width: 224, height: 224, ...failure },
    ]);
    // The mean is over the embedded patches only.
    const a = embedding(1);
    const b = embedding(3);
    expect(doc.summary.meanEmbedding).not.toBeNull();
    doc.summary.meanEmbedding?.forEach((v, i) => {
      const m = (a[i] + b[i]) / 2;
      // float32 storage: within a relative 1e-6.
      expect(Math.abs(v - m)).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(m)));
    });
  });

  it('streams a large slide (20,000 patches, base64) and reads it back in order', async () => {
    const file = path.join(dir, 'large.json');
    const writer = await ResultWriter.create(file, header('float32-base64'));
    const e = embedding(11);
    const count = 20_000;
    for (let i = 0; i < count; i++) {
      await writer.writePatch({
        index: i,
        x: i,
        y: 0,
        width: 224,
        height: 224,
        tissueFraction: 1,
        embedding: e,
      });
    }
    await writer.finish({ plannedPatchCount: count, timings });
    const stream = await streamResult(file);
    let i = 0;
    for await (const p of stream.patches()) {
      expect(p.index).toBe(i++);
    }
    expect(i).toBe(count);
    expect((await stream.summary()).meanEmbedding).toEqual(e);
  });

  it('rejects a document of another schema version or with a bad field', async () => {
    const file = path.join(dir, 'bad.json');
    await writeSample(file, 'float32-array', 1);
    const text = await readFile(file, 'utf8');
    const { writeFile } = await import('node:fs/promises');
    await writeFile(file, text.replace('"schemaVersion":"1.0"', '"schemaVersion":"2.0"'));
    await expect(readResult(file)).rejects.toThrow(/schemaVersion "2.0"/);
    await writeFile(file, text.replace('"tissueFraction":0.75', '"tissueFraction":7'));
    await expect(readResult(file)).rejects.toThrow(/patches\.0\.tissueFraction/);
    const err = await readResult(path.join(dir, 'none.json')).catch((e) => e);
    expect(isPathembedError(err, 'NOT_FOUND')).toBe(true);
  });

  it('has its JSON Schema committed in docs/result-schema.json', async () => {
    const committed = JSON.parse(
      await readFile(new URL('../../docs/result-schema.json', import.meta.url), 'utf8'),
    );
    // Regenerate with: npx tsx -e "import('./src/results/result-document.ts').then(m => console.log(JSON.stringify(m.resultJsonSchema(), null, 2)))" > docs/result-schema.json
    expect(committed).toEqual(resultJsonSchema());
  });
});
