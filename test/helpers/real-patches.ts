/**
 * Real H&E patches for model tests and benchmarks that need tissue but no services: a grid of
 * 224x224 RGB patches cut by vips from CMU-1-Small-Region.svs (../shared/testdata), in row-major
 * order. vips is a required tool of the project (.ci/run installs it); a missing vips fails loudly.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { CMU, CMU_SVS } from '../../scripts/dev-services/fixtures.js';
import { PATCH_BYTES, PATCH_CHANNELS, PATCH_SIZE_PX } from '../../src/embed/index.js';

const run = promisify(execFile);
/** Top-left of the cut, in level-0 pixels: inside the tissue of the CMU region. */
const ORIGIN_PX = { x: 200, y: 250 } as const;

/** `side` x `side` real patches (at most 8 x 8 fit the CMU region from ORIGIN_PX). */
export async function realPatches(side: number): Promise<Uint8Array[]> {
  const extent = side * PATCH_SIZE_PX;
  if (ORIGIN_PX.x + extent > CMU.widthPx || ORIGIN_PX.y + extent > CMU.heightPx) {
    throw new Error(`${side}x${side} patches do not fit the CMU region`);
  }
  const dir = await mkdtemp(path.join(os.tmpdir(), 'pathembed-real-patches-'));
  try {
    const png = path.join(dir, 'region.png');
    await run('vips', [
      'crop',
      CMU_SVS,
      png,
      String(ORIGIN_PX.x),
      String(ORIGIN_PX.y),
      String(extent),
      String(extent),
    ]);
    const { data, info } = await sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    if (info.channels !== PATCH_CHANNELS || info.width !== extent) {
      throw new Error(`vips gave ${info.width}x${info.height}x${info.channels}`);
    }
    const patches: Uint8Array[] = [];
    for (let py = 0; py < side; py++) {
      for (let px = 0; px < side; px++) {
        const patch = new Uint8Array(PATCH_BYTES);
        for (let row = 0; row < PATCH_SIZE_PX; row++) {
          const src = ((py * PATCH_SIZE_PX + row) * extent + px * PATCH_SIZE_PX) * PATCH_CHANNELS;
          patch.set(
            data.subarray(src, src + PATCH_SIZE_PX * PATCH_CHANNELS),
            row * PATCH_SIZE_PX * PATCH_CHANNELS,
          );
        }
        patches.push(patch);
      }
    }
    return patches;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
