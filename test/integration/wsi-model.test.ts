import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { CMU, REPO_ROOT } from '../../scripts/dev-services/fixtures.js';
import { loadConfig } from '../../src/config.js';
import { Tag } from '../../src/dicom-tags.js';
import { dicomWebClient } from '../../src/domain-options.js';
import { TransferSyntax } from '../../src/uids.js';
import { DicomWebFrameSource } from '../../src/wsi/dicomweb-frame-source.js';
import { LocalFrameSource } from '../../src/wsi/local-frame-source.js';
import { pixelSpacingUm } from '../../src/wsi/pixel-spacing.js';
import { pyramidFromJson, pyramidToJson } from '../../src/wsi/pyramid-json.js';
import { openSlide } from '../../src/wsi/slide.js';
import { slideInfo } from '../../src/wsi/slide-info.js';
import type { SlidePyramid } from '../../src/wsi/slide-level.js';
import { buildSlidePyramid } from '../../src/wsi/slide-pyramid.js';
import { tileFrame } from '../../src/wsi/tile-index.js';
import { fixture } from '../helpers/services.js';

const run = promisify(execFile);
const client = dicomWebClient(loadConfig({}));
const opened: Array<{ close?(): Promise<void> }> = [];

afterAll(async () => {
  await Promise.all(opened.map((s) => s.close?.()));
});

function remote(name: string): DicomWebFrameSource {
  return new DicomWebFrameSource(client, fixture(name).seriesUrl);
}

async function local(name: string): Promise<LocalFrameSource> {
  const source = await LocalFrameSource.open(fixture(name).dir);
  opened.push(source);
  return source;
}

/** The pyramid without transfer syntaxes, which Orthanc 1.10's metadata omits and files state. */
function withoutTransferSyntax(p: SlidePyramid): unknown {
  return JSON.parse(JSON.stringify(p, (key, v) => (key === 'transferSyntaxUid' ? undefined : v)));
}

describe('slide model over DICOMweb (Orthanc)', () => {
  for (const name of ['cmu-jpeg', 'cmu-jpeg2000', 'cmu-raw']) {
    it(`reads ${name}: 4 levels, 2220 x 2967 at 0.499 um/px (spacing not swapped), per-frame positions`, async () => {
      const slide = await openSlide(remote(name));
      const p = slide.pyramid;
      expect(p.levels.map((l) => [l.widthPx, l.heightPx, l.frameCount])).toEqual([
        [2220, 2967, 130],
        [1110, 1484, 35],
        [555, 742, 12],
        [278, 371, 4],
      ]);
      expect(p.levels.every((l) => l.tiling === 'UNSPECIFIED')).toBe(true);
      const spacing = pixelSpacingUm(p.levels[0]);
      expect(spacing.x).toBeCloseTo(CMU.mppUm, 6);
      expect(spacing.y).toBeCloseTo(CMU.mppUm, 6);
      expect(p.seriesInstanceUid).toBe(fixture(name).seriesUid);
      // The same model as from the files themselves.
      const fromFiles = buildSlidePyramid(await (await local(name)).seriesMetadata());
      expect(withoutTransferSyntax(p)).toEqual(withoutTransferSyntax(fromFiles));
    });
  }

  it('reads the CMU concatenation as 4 levels with the right frame counts', async () => {
    const p = (await openSlide(remote('cmu-jpeg-concat'))).pyramid;
    expect(fixture('cmu-jpeg-concat').instanceCount).toBe(5);
    expect(p.levels.map((l) => [l.tileWidthPx, l.frameCount, l.instances.length])).toEqual([
      [120, 475, 2],
      [120, 130, 1],
      [120, 35, 1],
      [120, 12, 1],
    ]);
    // The split point varies between conversions (compressed sizes in write order); the second part
    // must start where the first ends.
    const [first, second] = p.levels[0].instances;
    expect([first.concatenationFrameOffset, second.concatenationFrameOffset]).toEqual([0, first.frameCount]);
    expect(first.frameCount + second.frameCount).toBe(475);
  });

  for (const name of [
    'synthetic-full',
    'synthetic-sparse',
    'synthetic-noorg',
    'synthetic-concat',
    'synthetic-jpeg',
  ]) {
    it(`${name}: the same model over DICOMweb as from the files, and the same frame bytes`, async () => {
      const source = remote(name);
      const p = buildSlidePyramid(await source.seriesMetadata());
      const files = await local(name);
      const fromFiles = buildSlidePyramid(await files.seriesMetadata());
      expect(withoutTransferSyntax(p)).toEqual(withoutTransferSyntax(fromFiles));
      expect(pyramidFromJson(pyramidToJson(p))).toEqual(p);
      const level = p.levels[p.levels.length - 1];
      for (let row = 0; row < level.tilesDown; row++) {
        for (let col = 0; col < level.tilesAcross; col++) {
          const tf = tileFrame(level, col, row);
          if (!tf) continue;
          const [wire] = await source.fetchFrames(tf.instanceUid, [tf.frameIndex]);
          const [disk] = await files.fetchFrames(tf.instanceUid, [tf.frameIndex]);
          expect(wire.transferSyntaxUid).toBe(disk.transferSyntaxUid);
          expect(Buffer.from(wire.data).equals(Buffer.from(disk.data))).toBe(true);
        }
      }
    });
  }
});

describe('slide info', () => {
  it('reads transfer syntaxes Orthanc omits from one frame per instance', async () => {
    const source = remote('cmu-jpeg-concat');
    const metadata = await source.seriesMetadata();
    const statedTransferSyntax = metadata.some((ds) => ds[Tag.TransferSyntaxUID] !== undefined);
    const info = await slideInfo(source);
    expect(info.levels.map((l) => l.transferSyntaxUids)).toEqual(
      Array(4).fill([TransferSyntax.JpegBaseline]),
    );
    expect(info.levels[0].instances.map((i) => i.transferSyntaxUid)).toEqual([
      TransferSyntax.JpegBaseline,
      TransferSyntax.JpegBaseline,
    ]);
    // One frame request per instance when the metadata lacks the transfer syntax, none otherwise.
    expect(source.stats.frames).toBe(statedTransferSyntax ? 0 : 5);
    expect(info.label).toBeNull();
    expect(info.thumbnail).toBeNull();
  });

  it('`pathembed info` prints levels and associated images for a DICOMweb series and a folder', async () => {
    const cli = path.join(REPO_ROOT, 'src', 'cli', 'main.ts');
    const tsx = path.join(REPO_ROOT, 'node_modules', '.bin', 'tsx');
    for (const arg of [fixture('synthetic-full').seriesUrl, fixture('synthetic-full').dir]) {
      const { stdout } = await run(tsx, [cli, 'info', arg], {
        cwd: REPO_ROOT,
        env: { ...process.env, LOG_LEVEL: 'silent' },
      });
      const info = JSON.parse(stdout);
      expect(info.seriesInstanceUid).toBe(fixture('synthetic-full').seriesUid);
      expect(
        info.levels.map((l: Record<string, unknown>) => [
          l.widthPx,
          l.heightPx,
          l.tileWidthPx,
          l.frames,
          l.pixelSpacingUm,
          l.transferSyntaxUids,
          l.photometricInterpretation,
          l.tiling,
        ]),
      ).toEqual([
        [
          1000,
          700,
          256,
          12,
          { x: 0.5, y: 0.5 },
          [TransferSyntax.ExplicitVRLittleEndian],
          'RGB',
          'TILED_FULL',
        ],
        [500, 350, 256, 4, { x: 1, y: 1 }, [TransferSyntax.ExplicitVRLittleEndian], 'RGB', 'TILED_FULL'],
        [250, 175, 256, 1, { x: 2, y: 2 }, [TransferSyntax.ExplicitVRLittleEndian], 'RGB', 'TILED_FULL'],
      ]);
      expect(info.label).toMatchObject({ widthPx: 256, heightPx: 128 });
      expect(info.thumbnail).toMatchObject({ widthPx: 256, heightPx: 179 });
      expect(info.overview).toBeNull();
    }
  });

  it('`pathembed info` fails with the error code on stderr for a folder that is not a slide', async () => {
    const cli = path.join(REPO_ROOT, 'src', 'cli', 'main.ts');
    const tsx = path.join(REPO_ROOT, 'node_modules', '.bin', 'tsx');
    const failure = await run(tsx, [cli, 'info', path.join(REPO_ROOT, 'src')], { cwd: REPO_ROOT }).then(
      () => undefined,
      (err: { code: number; stderr: string }) => err,
    );
    expect(failure?.code).toBe(1);
    expect(JSON.parse(failure!.stderr.split('\n')[0]).error.code).toBe('LOCAL_SOURCE_ERROR');
  });
});
