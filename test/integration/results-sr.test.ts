import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DicomJsonDataset } from '../../src/dicom-json.js';
import { isPathembedError } from '../../src/errors.js';
import { embeddingComponentCode } from '../../src/results/sr/codes.js';
import { deviceUidFor, srUidsFor, uidFromName, uuidV5 } from '../../src/results/sr/derived-uids.js';
import { decodePart10, encodePart10 } from '../../src/results/sr/dicom-part10.js';
import { buildEmbeddingSr, type EmbeddingSrInput, patchRegion } from '../../src/results/sr/embedding-sr.js';
import { algorithmIdentification, planarRoiMeasurementGroup } from '../../src/results/sr/templates.js';
import { SopClass } from '../../src/uids.js';
import { readPart10Header } from '../../src/wsi/dcmjs.js';
import { fixture } from '../helpers/services.js';
import { validateSrFile } from '../helpers/sr-validation.js';

// biome-ignore lint/suspicious/noExplicitAny: decoded DICOM datasets are walked freely in assertions
type Ds = Record<string, any>;
const DIM = 384;
let dir: string;
let source: DicomJsonDataset;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'pathembed-sr-'));
  const bytes = await readFile(path.join(fixture('camelyon').dir, 'camelyon.dcm'));
  source = readPart10Header(new Uint8Array(bytes)).dataset;
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** dciodvfy must report no error and dsrdump must parse the SR; returns dsrdump's listing with codes. */
async function validateSr(bytes: Uint8Array, name: string): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, bytes);
  return validateSrFile(file, ['+Pc', '+Pt']);
}

const embedding = (seed: number) =>
  Float32Array.from({ length: DIM }, (_, i) => Math.sin(i * 0.37 + seed) * 0.5);

function input(overrides: Partial<EmbeddingSrInput> = {}): EmbeddingSrInput {
  const sop = source['00080018'].Value![0] as string;
  const ref = { sopClassUid: SopClass.VLWholeSlideMicroscopyImage, sopInstanceUid: sop };
  const patches = [0, 1, 2].map((i) => ({
    index: i * 3,
    x: i * 224,
    y: 224,
    width: 224,
    height: 224,
    embedding: embedding(i),
  }));
  return {
    jobKey: 'unit-test-job',
    sourceMetadata: source,
    evidence: [ref],
    regionImage: { ...ref, scaleFromGrid: { x: 2, y: 2 } },
    model: { name: 'path-foundation-synthetic', version: '1.0.0', sha256: 'c'.repeat(64) },
    parameters: { pixelSpacingUm: 0.5, stridePx: 224, minTissue: 0.5 },
    pixelSpacingUm: 0.5,
    patchSizePx: 224,
    patchCount: 3,
    meanEmbedding: embedding(9),
    patches,
    maxPatches: 1000,
    jsonResultName: 'results/slide.json',
    ...overrides,
  };
}

describe('deterministic UIDs', () => {
  it('derives RFC 9562 v5 UUIDs and 2.25 UIDs from names', () => {
    // RFC 9562 appendix A.4: v5 of "www.example.com" in the DNS namespace.
    expect(uuidV5('www.example.com', '6ba7b810-9dad-11d1-80b4-00c04fd430c8')).toBe(
      '2ed6657d-e927-568b-95e1-2665a8aea6a2',
    );
    expect(uidFromName('x')).toBe(uidFromName('x'));
    expect(uidFromName('x')).not.toBe(uidFromName('y'));
    expect(uidFromName('x')).toMatch(/^2\.25\.[1-9][0-9]{0,38}$/);
    expect(srUidsFor('a').sopInstanceUid).not.toBe(srUidsFor('b').sopInstanceUid);
    expect(deviceUidFor('c'.repeat(64)).length).toBeLessThanOrEqual(64);
  });
});

describe('embedding SR', () => {
  it('is a valid Comprehensive SR (dciodvfy, dsrdump) with the mean and per-patch embeddings', async () => {
    const sr = buildEmbeddingSr(input());
    expect(sr.includesPatches).toBe(true);
    const bytes = encodePart10(sr.dataset);
    const listing = await validateSr(bytes, 'patches.dcm');
    expect(listing).toContain('Comprehensive SR Document');
    expect(listing).toContain('TID 1500 (DCMR)');
    // mean + 3 patches, each with all 384 components
    for (const i of [0, 1, 383]) {
      const code = embeddingComponentCode(i).value;
      expect(listing.split(`(${code},99PATHEMBED,`).length - 1).toBe(4);
    }
    expect(listing).toContain('(EMBMEAN,99PATHEMBED,"Slide-level mean embedding")');
    expect(listing).toContain('(111001,DCM,"Algorithm Name")="path-foundation-synthetic"');
    expect(listing).toContain('(111030,DCM,"Image Region")=(POLYLINE');

    const ds = decodePart10(bytes) as Ds;
    expect(ds.SOPClassUID).toBe(SopClass.ComprehensiveSR);
    expect(ds.StudyInstanceUID).toBe(source['0020000D'].Value![0]);
    expect(ds.SeriesInstanceUID).not.toBe(source['0020000E'].Value![0]);
    expect(ds.Modality).toBe('SR');
    const evidence = ds.CurrentRequestedProcedureEvidenceSequence[0];
    expect(evidence.ReferencedSeriesSequence[0].SeriesInstanceUID).toBe(source['0020000E'].Value![0]);
    // mean: float32 exact in FloatingPointValue
    const groups = ds.ContentSequence.at(-1).ContentSequence;
    const meanGroup = groups[0].ContentSequence;
    const first = meanGroup.find((it: Ds) => it.ConceptNameCodeSequence[0].CodeValue === 'EMB0000');
    expect(first.MeasuredValueSequence[0].FloatingPointValue).toBe(Math.fround(embedding(9)[0]));
    // region in the level-0 image: target grid x 2, closed rectangle
    const scoord = groups[2].ContentSequence.find((it: Ds) => it.ValueType === 'SCOORD');
    expect(Array.from(scoord.GraphicData as number[])).toEqual([
      448, 448, 896, 448, 896, 896, 448, 896, 448, 448,
    ]);
    expect(scoord.PixelOriginInterpretation).toBe('VOLUME');
  });

  it('above PATHEMBED_SR_MAX_PATCHES carries the slide-level content and names the JSON result', async () => {
    const sr = buildEmbeddingSr(input({ maxPatches: 2 }));
    expect(sr.includesPatches).toBe(false);
    const listing = await validateSr(encodePart10(sr.dataset), 'mean-only.dcm');
    expect(listing.split('(EMB0000,99PATHEMBED,').length - 1).toBe(1);
    expect(listing).not.toContain('Image Region');
    expect(listing).toContain('(121106,DCM,"Comment")');
    const ds = decodePart10(encodePart10(sr.dataset)) as Ds;
    const note = JSON.stringify(ds.ContentSequence);
    expect(note).toContain('results/slide.json');
  });

  it('gives the same job the same UIDs and bytes (except dates), and another job other UIDs', () => {
    const t = new Date('2024-01-02T03:04:05Z');
    const a = encodePart10(buildEmbeddingSr(input({ contentTime: t })).dataset);
    const b = encodePart10(buildEmbeddingSr(input({ contentTime: t })).dataset);
    expect(Buffer.compare(Buffer.from(a), Buffer.from(b))).toBe(0);
    const other = buildEmbeddingSr(input({ jobKey: 'another-job' }));
    expect(other.sopInstanceUid).not.toBe(buildEmbeddingSr(input()).sopInstanceUid);
  });

  it('refuses bad input early, naming the argument', () => {
    const fails = (f: () => unknown, argument: string) => {
      try {
        f();
      } catch (err) {
        expect(isPathembedError(err, 'INVALID_ARGUMENT')).toBe(true);
        expect((err as Error).message).toContain(argument);
        return;
      }
      throw new Error(`expected a failure naming ${argument}`);
    };
    fails(() => buildEmbeddingSr(input({ evidence: [] })), 'evidence');
    fails(
      () => buildEmbeddingSr(input({ model: { name: 'm', version: '1', sha256: 'xyz' } })),
      'model.sha256',
    );
    fails(
      () => buildEmbeddingSr(input({ meanEmbedding: new Float32Array(DIM).fill(Number.NaN) })),
      'meanEmbedding[0]',
    );
    fails(() => buildEmbeddingSr(input({ meanEmbedding: new Float32Array(3) })), 'patches[0].embedding');
    fails(
      () =>
        buildEmbeddingSr(
          input({
            regionImage: { sopClassUid: '1.2', sopInstanceUid: 'abc', scaleFromGrid: { x: 1, y: 1 } },
          }),
        ),
      'sopInstanceUid',
    );
    fails(() => algorithmIdentification({ name: '', version: '1' }), "'name'");
    fails(
      () =>
        planarRoiMeasurementGroup({
          tracking: { identifier: 'p', uid: '1.2' },
          algorithm: { name: 'm', version: '1' },
          measurements: [{}],
          region: [
            [0, 0],
            [1, 0],
            [1, 1],
          ],
          image: { sopClassUid: '1.2', sopInstanceUid: '1.3' },
        }),
      "'region'",
    );
  });

  it('fits a long model name into the 64-character Series Description; the writer refuses over-long values', async () => {
    const long = 'path-foundation-synthetic-vit-s16-with-a-very-long-name';
    const bytes = encodePart10(
      buildEmbeddingSr(input({ model: { name: long, version: '1.0.0', sha256: 'c'.repeat(64) } })).dataset,
    );
    const ds = decodePart10(bytes) as Ds;
    expect(ds.SeriesDescription.length).toBeLessThanOrEqual(64);
    expect(ds.SeriesDescription).toMatch(/\.\.\.$/);
    await validateSr(bytes, 'long-name.dcm');
    expect(() =>
      encodePart10({ SOPClassUID: '1.2', SOPInstanceUID: '1.3', StudyDescription: 'x'.repeat(65) }),
    ).toThrow(/StudyDescription \(LO\) value is 65 characters/);
  });

  it('maps patch rectangles to the region image with its scale', () => {
    expect(
      patchRegion(
        { index: 0, x: 10, y: 20, width: 224, height: 224, embedding: new Float32Array() },
        { x: 0.5, y: 0.5 },
      ),
    ).toEqual([
      [5, 10],
      [117, 10],
      [117, 122],
      [5, 122],
      [5, 10],
    ]);
  });

  it('declares UTF-8 only when a text needs it', async () => {
    const plain = decodePart10(encodePart10(buildEmbeddingSr(input()).dataset)) as Ds;
    expect(plain.SpecificCharacterSet).toBeUndefined();
    const utf8 = buildEmbeddingSr(input({ jsonResultName: 'résultats/lame.json', maxPatches: 0 }));
    const bytes = encodePart10(utf8.dataset);
    const ds = decodePart10(bytes) as Ds;
    expect(ds.SpecificCharacterSet).toBe('ISO_IR 192');
    expect(Buffer.from(bytes).includes(Buffer.from('résultats/lame.json', 'utf8'))).toBe(true);
    await validateSr(bytes, 'utf8.dcm');
  });
});
