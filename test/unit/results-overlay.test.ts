/**
 * The patch overlay (results/patch-overlay.ts) is drawn over the slide's level 0 and clicked into
 * /v1/search with level-0 points, so its rectangles must be level-0 rectangles even when the
 * result's grid is coarser than level 0 (a 0.5 µm/px grid on a 0.25 µm/px scan).
 */
import { describe, expect, it } from 'vitest';
import { buildPatchOverlay } from '../../src/results/patch-overlay.js';
import type { ResultHeader } from '../../src/results/result-document.js';
import type { ResultStream, ResultSummary } from '../../src/results/result-reader.js';
import type { ResultPatch } from '../../src/results/result-writer.js';

const DIM = 16;

function stream(levelUm: number, baseUm: number, patches: ResultPatch[]): ResultStream {
  const header = {
    embeddingDimension: DIM,
    level: {
      index: 1,
      widthPx: 1000,
      heightPx: 800,
      pixelSpacingUm: { x: levelUm, y: levelUm },
      scaleFromGrid: 1,
    },
    baseLevel: { widthPx: 2000, heightPx: 1600, pixelSpacingUm: { x: baseUm, y: baseUm } },
  } as unknown as ResultHeader;
  return {
    header,
    async *patches() {
      yield* patches;
    },
    summary: async () => ({}) as ResultSummary,
  };
}

function patch(index: number, x: number, y: number): ResultPatch {
  const embedding = new Float32Array(DIM).map((_, i) => Math.sin(index * 7 + i * 3));
  return { index, x, y, width: 224, height: 224, tissueFraction: 1, embedding };
}

describe('patch overlay', () => {
  it('states each patch as its level-0 rectangle', async () => {
    const patches = [patch(0, 0, 0), patch(1, 224, 0), patch(2, 0, 224), patch(3, 448, 224)];
    // A 0.5 um/px grid read from a 0.25 um/px level 0: every coordinate doubles.
    const coarse = await buildPatchOverlay(async () => stream(0.5, 0.25, patches));
    expect(coarse.count).toBe(4);
    expect(coarse.x).toEqual(patches.map((p) => p.x * 2));
    expect(coarse.y).toEqual(patches.map((p) => p.y * 2));
    expect(coarse.width).toEqual([448, 448, 448, 448]);
    expect(coarse.height).toEqual([448, 448, 448, 448]);
    // The grid at level 0's own spacing: as the result states them.
    const same = await buildPatchOverlay(async () => stream(0.25, 0.25, patches));
    expect(same.x).toEqual(patches.map((p) => p.x));
    expect(same.width).toEqual([224, 224, 224, 224]);
    // The colours and scores do not depend on where the patches are.
    expect(coarse.rgb).toEqual(same.rgb);
    expect(coarse.scores).toEqual(same.scores);
  });
});
