import { describe, expect, it } from 'vitest';
import { isPathembedError } from '../../src/errors.js';
import { isFailedPatch, type PatchOutcome } from '../../src/pipeline/index.js';
import { decodeChunk, encodeChunk } from '../../src/queue/chunk-file.js';

/** index and values of an embedding, or index and code of a failed patch. */
const shown = (e: PatchOutcome) => [e.index, isFailedPatch(e) ? e.failed.code : Array.from(e.embedding)];

const embeddings = [0, 1, 2].map((i) => ({ index: 10 + i, embedding: Float32Array.of(i, i + 0.5) }));

describe('chunk files', () => {
  it("carry the chunk's stage busy times with its embeddings", () => {
    const stages = { fetchMs: 12.5, decodeMs: 3.25, inferMs: 40.125 };
    const chunk = decodeChunk(encodeChunk(10, embeddings, stages), 'c');
    expect(chunk.stageMs).toEqual(stages);
    expect(chunk).toMatchObject({ start: 10, count: 3, width: 2 });
    expect(chunk.embeddings.map(shown)).toEqual([
      [10, [0, 0.5]],
      [11, [1, 1.5]],
      [12, [2, 2.5]],
    ]);
    expect(decodeChunk(encodeChunk(0, embeddings.slice(0, 0)), 'empty').stageMs).toEqual({
      fetchMs: 0,
      decodeMs: 0,
      inferMs: 0,
    });
  });

  it('still read version 1 files (written before an upgrade) with zero stage times', () => {
    const v2 = encodeChunk(10, embeddings, { fetchMs: 1, decodeMs: 2, inferMs: 3 });
    // A version 1 file: the same header without the three float64 stage times.
    const v1 = Buffer.concat([v2.subarray(0, 20), v2.subarray(44)]);
    v1.writeUInt32LE(1, 4);
    const chunk = decodeChunk(v1, 'v1');
    expect(chunk.stageMs).toEqual({ fetchMs: 0, decodeMs: 0, inferMs: 0 });
    expect(chunk.embeddings.map((e) => e.index)).toEqual([10, 11, 12]);
    expect(shown(chunk.embeddings[2])).toEqual([12, [2, 2.5]]);
  });

  it('keep failed patches (frameErrors: skip) in place, with their code and message', () => {
    const failure = { code: 'FRAME_DECODE_ERROR', message: 'Frame index 3 of instance 1.2.3: corrupt' };
    const outcomes: PatchOutcome[] = [embeddings[0], { index: 11, failed: failure }, embeddings[2]];
    const stages = { fetchMs: 1, decodeMs: 2, inferMs: 3 };
    const data = encodeChunk(10, outcomes, stages);
    expect(data.readUInt32LE(4)).toBe(3);
    const chunk = decodeChunk(data, 'v3');
    expect(chunk).toMatchObject({ start: 10, count: 3, width: 2, stageMs: stages });
    expect(chunk.embeddings.map(shown)).toEqual([
      [10, [0, 0.5]],
      [11, 'FRAME_DECODE_ERROR'],
      [12, [2, 2.5]],
    ]);
    expect(chunk.embeddings[1]).toEqual({ index: 11, failed: failure });
    // Without failures the file is version 2, byte for byte as written before failures existed.
    expect(encodeChunk(10, embeddings, stages).readUInt32LE(4)).toBe(2);
    // A version 3 file that lost bytes is refused.
    expect(() => decodeChunk(data.subarray(0, data.length - 1), 'cut')).toThrow(
      /not a version|truncated|unreadable/,
    );
    expect(() => decodeChunk(Buffer.concat([data.subarray(0, 52), data.subarray(56)]), 'cut')).toThrow();
  });

  it('refuse other versions and truncated files', () => {
    const v2 = encodeChunk(10, embeddings);
    const v9 = Buffer.from(v2);
    v9.writeUInt32LE(9, 4);
    for (const bad of [v9, v2.subarray(0, v2.length - 1), v2.subarray(0, 30)]) {
      expect(() => decodeChunk(bad, 'bad')).toThrow();
      try {
        decodeChunk(bad, 'bad');
      } catch (err) {
        expect(isPathembedError(err, 'INTERNAL')).toBe(true);
      }
    }
  });
});
