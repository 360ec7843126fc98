/**
 * ICC transforms for transform_imaging_to_icc_profile (wsi/icc-transform.ts): LittleCMS through
 * lcms-wasm, checked against libvips' own ICC transform of the same pixels (an independent
 * implementation path: sharp converts an sRGB image to the target profile when it is written), and
 * where the target profiles come from. The SRGB target (a v4 LUT profile) is checked against
 * Pillow, Google's own path, in test/integration/predict-compat.test.ts.
 */

import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { Tag } from '../../src/dicom-tags.js';
import { isPathembedError } from '../../src/errors.js';
import { syntheticSlideIccProfile } from '../../src/sample/synthetic-wsi-writer.js';
import { IccTransforms, iccProfileOf, targetProfile } from '../../src/wsi/icc-transform.js';

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

const COLORD = '/usr/share/color/icc/colord';
const BUILTIN = path.resolve('src/wsi/icc-profiles');

/** The profile the synthetic slides carry (libvips' sRGB), as bytes. */
async function libvipsSrgb(): Promise<Uint8Array> {
  return new Uint8Array(await syntheticSlideIccProfile());
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

describe('ICC transforms', () => {
  const icc = new IccTransforms('');

  it('moves sRGB pixels into the Adobe RGB, ROMM RGB and Display P3 targets as libvips does', async () => {
    const srgb = await libvipsSrgb();
    const rgb = gradient();
    for (const [target, file] of [
      ['ADOBERGB', `${COLORD}/AdobeRGB1998.icc`],
      ['ROMMRGB', `${BUILTIN}/ISO22028-2_ROMM-RGB.icc`],
      ['DISPLAYP3', `${BUILTIN}/displayp3.icc`],
    ] as const) {
      const ours = (await icc.transform(srgb, target))(rgb);
      const reference = await libvipsConvert(rgb, file);
      expect(ours).toHaveLength(rgb.length);
      // Both are LittleCMS under the hood; 8-bit rounding may differ by one level.
      expect(maxDiff(ours, reference)).toBeLessThanOrEqual(1);
      // And the transform does something: saturated colours move.
      expect(maxDiff(ours, rgb)).toBeGreaterThan(10);
    }
  });

  it("uses the profiles Google's client ships unless PATHEMBED_ICC_PROFILE_DIR names others, as EZ-WSI's plugin folder", async () => {
    // The built-ins are the published files, byte for byte (src/wsi/icc-profiles/LICENSES.md).
    expect(sha256(await targetProfile('SRGB', ''))).toBe(
      '83174717332326ddc198d9df188a4daec27b8979ba152cebbfc470c793d0bb11',
    );
    expect(sha256(await targetProfile('ROMMRGB', ''))).toBe(
      '96b2f2987f83e2a545e607799fbfdff43ef8158fb9b215b187c574db8f145aaf',
    );
    const colordAdobe = new Uint8Array(await fs.readFile(`${COLORD}/AdobeRGB1998.icc`));
    expect(await targetProfile('ADOBERGB', '')).toEqual(colordAdobe);

    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pathembed-icc-plugin-'));
    try {
      // Names match case-insensitively; a folder of the profile's name holding one .icc counts too.
      await fs.copyFile(`${COLORD}/sRGB.icc`, path.join(dir, 'SRGB.ICC'));
      await fs.mkdir(path.join(dir, 'adobergb'));
      await fs.copyFile(`${COLORD}/ProPhotoRGB.icc`, path.join(dir, 'adobergb', 'any-name.icc'));
      await fs.writeFile(path.join(dir, 'rommrgb.txt'), 'not a profile');
      expect(await targetProfile('SRGB', dir)).toEqual(
        new Uint8Array(await fs.readFile(`${COLORD}/sRGB.icc`)),
      );
      expect(await targetProfile('ADOBERGB', dir)).toEqual(
        new Uint8Array(await fs.readFile(`${COLORD}/ProPhotoRGB.icc`)),
      );
      // Not in the folder: the built-in one.
      expect(sha256(await targetProfile('ROMMRGB', dir))).toBe(
        '96b2f2987f83e2a545e607799fbfdff43ef8158fb9b215b187c574db8f145aaf',
      );
      // A transform built through the folder's sRGB differs from one through the built-in v4 profile.
      const rgb = gradient();
      const viaFolder = (await new IccTransforms(dir).transform(colordAdobe, 'SRGB'))(rgb);
      const viaBuiltin = (await icc.transform(colordAdobe, 'SRGB'))(rgb);
      expect(maxDiff(viaFolder, viaBuiltin)).toBeGreaterThan(0);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses a source that is not an ICC profile and a profile folder that cannot be read', async () => {
    const bad = await icc.transform(new Uint8Array([1, 2, 3, 4]), 'SRGB').catch((e: unknown) => e);
    expect(isPathembedError(bad) && bad.code).toBe('ICC_TRANSFORM_FAILED');
    const missing = await targetProfile('ADOBERGB', '/nonexistent').catch((e: unknown) => e);
    expect(isPathembedError(missing) && missing.code).toBe('ICC_TRANSFORM_FAILED');
    expect((missing as Error).message).toMatch(/PATHEMBED_ICC_PROFILE_DIR \/nonexistent/);
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
