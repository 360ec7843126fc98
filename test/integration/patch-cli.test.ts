/**
 * The slide-reading commands as a user runs them: `pathembed patch | tissue | grid` in a child
 * process, against the test Orthanc (DICOMweb) and a local folder.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CMU } from '../../scripts/dev-services/fixtures.js';
import { encodeCoordinatePixel } from '../../src/sample/pixel-patterns.js';
import { fixture } from '../helpers/services.js';

const run = promisify(execFile);
const CLI = ['--import', 'tsx', path.resolve('src/cli/main.ts')];

let dir: string;

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI with a clean PATHEMBED_* environment plus `env`. */
async function pathembed(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PATHEMBED_')));
  try {
    const { stdout, stderr } = await run(process.execPath, [...CLI, ...args], {
      env: { ...clean, ...env },
      maxBuffer: 64 << 20,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

async function rgbOf(file: string): Promise<{ data: Buffer; width: number; height: number }> {
  const { data, info } = await sharp(file).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height };
}

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pathembed-cli-'));
});

afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

describe('pathembed patch', () => {
  it('writes a level region over DICOMweb as PNG, pixel for pixel, and a JSON summary', async () => {
    const out = path.join(dir, 'level.png');
    const args = ['--x', '240', '--y', '200', '--width', '40', '--height', '90', '--level', '0', '-o', out];
    const res = await pathembed(['patch', fixture('synthetic-full').seriesUrl, ...args]);
    expect(res.code, res.stderr).toBe(0);
    const summary = JSON.parse(res.stdout);
    expect(summary).toMatchObject({ output: out, level: 0, scale: 1, x: 240, y: 200, width: 40, height: 90 });
    expect(summary.frames.requests).toBeGreaterThan(0);
    const png = await rgbOf(out);
    expect([png.width, png.height]).toEqual([40, 90]);
    for (let j = 0; j < 90; j++) {
      for (let i = 0; i < 40; i++) {
        const p = (j * 40 + i) * 3;
        expect([...png.data.subarray(p, p + 3)]).toEqual([...encodeCoordinatePixel(240 + i, 200 + j)]);
      }
    }
  });

  it('reads at a pixel spacing from a local folder, and refuses an outside patch with --require-inside', async () => {
    const out = path.join(dir, 'spacing.png');
    const res = await pathembed([
      'patch',
      fixture('synthetic-full').dir,
      '--x',
      '10',
      '--y',
      '20',
      '--pixel-spacing',
      '1',
      '-o',
      out,
    ]);
    expect(res.code, res.stderr).toBe(0);
    expect(JSON.parse(res.stdout)).toMatchObject({
      level: 1,
      scale: 1,
      pixelSpacingUm: 1,
      width: 224,
      height: 224,
    });
    const png = await rgbOf(out);
    expect([...png.data.subarray(0, 3)]).toEqual([...encodeCoordinatePixel(10, 20)]);

    const refused = await pathembed([
      'patch',
      fixture('synthetic-full').dir,
      '--x',
      '900',
      '--y',
      '0',
      '--level',
      '0',
      '--require-inside',
      '-o',
      path.join(dir, 'never.png'),
    ]);
    expect(refused.code).not.toBe(0);
    expect(JSON.parse(refused.stderr.split('\n')[0]).error.code).toBe('PATCH_OUTSIDE_IMAGE');
    await expect(fs.access(path.join(dir, 'never.png'))).rejects.toThrow();
  });

  it('refuses a store off the allow-list unless --allow adds it', async () => {
    const url = fixture('synthetic-full').seriesUrl;
    const env = { PATHEMBED_ALLOWED_STORES: 'https://store.example.org' };
    const out = path.join(dir, 'allowed.png');
    const args = ['patch', url, '--x', '0', '--y', '0', '--level', '2', '-o', out];
    const refused = await pathembed(args, env);
    expect(refused.code).not.toBe(0);
    expect(JSON.parse(refused.stderr.split('\n')[0]).error.code).toBe('UNAPPROVED_DICOM_STORE');
    const allowed = await pathembed(
      [...args, '--allow', new URL(url).origin, '--token', 'not-checked-by-orthanc'],
      env,
    );
    expect(allowed.code, allowed.stderr).toBe(0);
    expect(allowed.stdout + allowed.stderr).not.toContain('not-checked-by-orthanc');
  });
});

describe('pathembed tissue and grid', () => {
  it('writes the tissue mask of the real CMU slide as PNG', async () => {
    const out = path.join(dir, 'mask.png');
    const res = await pathembed(['tissue', fixture('cmu-jpeg').seriesUrl, '-o', out]);
    expect(res.code, res.stderr).toBe(0);
    const summary = JSON.parse(res.stdout);
    expect(summary).toMatchObject({ output: out, method: 'otsu-saturation', spacingUm: 8 });
    expect(summary.fraction).toBeGreaterThan(0.27);
    expect(summary.fraction).toBeLessThan(0.38);
    const meta = await sharp(out).metadata();
    expect([meta.width, meta.height, meta.channels]).toEqual([summary.widthPx, summary.heightPx, 1]);
  });

  it('prints the grid as JSON, or writes it with -o; the same either way', async () => {
    const url = fixture('cmu-jpeg').seriesUrl;
    const res = await pathembed(['grid', url, '--min-tissue', '0.8', '--stride', '224']);
    expect(res.code, res.stderr).toBe(0);
    const grid = JSON.parse(res.stdout);
    expect(grid).toMatchObject({
      pixelSpacingUm: 0.5,
      level: 0,
      downsample: 1,
      widthPx: CMU.widthPx,
      heightPx: CMU.heightPx,
    });
    expect(grid.patches.length).toBeGreaterThan(10);
    expect(grid.patches.every((p: { tissueFraction: number }) => p.tissueFraction >= 0.8)).toBe(true);

    const out = path.join(dir, 'grid.json');
    const written = await pathembed(['grid', url, '--min-tissue', '0.8', '-o', out]);
    expect(written.code, written.stderr).toBe(0);
    expect(JSON.parse(written.stdout)).toMatchObject({ output: out, patchCount: grid.patches.length });
    expect(JSON.parse(await fs.readFile(out, 'utf8'))).toEqual(grid);
  });

  it('refuses a bad option value with INVALID_ARGUMENT', async () => {
    const res = await pathembed(['grid', fixture('cmu-jpeg').dir, '--min-tissue', '1.5']);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toContain('INVALID_ARGUMENT');
  });
});
