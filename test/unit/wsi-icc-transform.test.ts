/**
 * ICC transforms for transform_imaging_to_icc_profile (wsi/icc-transform.ts): LittleCMS through
 * lcms-wasm, checked against libvips' own ICC transform of the same pixels (an independent
 * implementation path: sharp converts an sRGB image to the target profile when it is written).
 */

import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { Tag } from '../../src/dicom-tags.js';
import { isPathembedError } from '../../src/errors.js';
import { IccTransforms, iccProfileOf, targetProfile } from '../../src/wsi/icc-transform.js';

const PROFILE_DIR = '/usr/share/color/icc/colord';
const W = 64;
const H = 48;

function gradient(): Uint8Array {
  const rgb = new Uint8Array(W * H * 3);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const i = (y * W + x) * 3;
      rgb[i] = (x * 4) % 256;
      rgb[i + 1] = (y * 5) % 256;
      rgb[i + 2] = (x * 3 + y * 2) % 256;
    }
  }
  return rgb;
}

/** libvips: the sRGB pixels converted into `profile` (a built-in name or a file), values as stored. */
async function libvipsConvert(rgb: Uint8Array, profile: string): Promise<Uint8Array> {
  const png = await sharp(Buffer.from(rgb), { raw: { width: W, height: H, channels: 3 } })
    .withIccProfile(profile)
    .png()
    .toBuffer();
  return new Uint8Array(await sharp(png).keepIccProfile().raw().toBuffer());
}

function maxDiff(a: Uint8Array, b: Uint8Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('ICC transforms', () => {
  const icc = new IccTransforms(PROFILE_DIR);

  it('moves sRGB pixels into Adobe RGB, ROMM (ProPhoto) and Display P3 as libvips does', async () => {
    const srgb = await targetProfile('SRGB', PROFILE_DIR);
    const rgb = gradient();
    for (const [target, vips] of [
      ['ADOBERGB', `${PROFILE_DIR}/AdobeRGB1998.icc`],
      ['ROMMRGB', `${PROFILE_DIR}/ProPhotoRGB.icc`],
      ['DISPLAYP3', 'p3'],
    ] as const) {
      const ours = (await icc.transform(srgb, target))(rgb);
      const reference = await libvipsConvert(rgb, vips);
      expect(ours).toHaveLength(rgb.length);
      // Both are LittleCMS under the hood; 8-bit rounding may differ by one level.
      expect(maxDiff(ours, reference)).toBeLessThanOrEqual(1);
      // And the transform does something: saturated colours move.
      expect(maxDiff(ours, rgb)).toBeGreaterThan(10);
    }
    // sRGB to the same sRGB profile leaves the pixels as they are.
    expect(maxDiff((await icc.transform(srgb, 'SRGB'))(rgb), rgb)).toBeLessThanOrEqual(1);
  });

  it('refuses a source that is not an ICC profile and a target file that is missing', async () => {
    const bad = await icc.transform(new Uint8Array([1, 2, 3, 4]), 'SRGB').catch((e: unknown) => e);
    expect(isPathembedError(bad) && bad.code).toBe('ICC_TRANSFORM_FAILED');
    const missing = await targetProfile('ADOBERGB', '/nonexistent').catch((e: unknown) => e);
    expect(isPathembedError(missing) && missing.code).toBe('ICC_TRANSFORM_FAILED');
    expect((missing as Error).message).toMatch(/colord-data|PATHEMBED_ICC_PROFILE_DIR/);
  });

  it('finds the slide profile in the optical path, inline or as bulk data, else none', () => {
    const inline = {
      [Tag.OpticalPathSequence]: {
        vr: 'SQ',
        Value: [{ [Tag.ICCProfile]: { vr: 'OB', InlineBinary: 'AQID' } }],
      },
    };
    expect(iccProfileOf(inline as never)).toEqual({ inline: new Uint8Array([1, 2, 3]) });
    const bulk = {
      [Tag.OpticalPathSequence]: {
        vr: 'SQ',
        Value: [{ [Tag.ICCProfile]: { vr: 'OB', BulkDataURI: 'http://s/b/1' } }],
      },
    };
    expect(iccProfileOf(bulk as never)).toEqual({ bulkDataUri: 'http://s/b/1' });
    expect(iccProfileOf({ [Tag.OpticalPathSequence]: { vr: 'SQ', Value: [{}] } } as never)).toBeUndefined();
  });
});
