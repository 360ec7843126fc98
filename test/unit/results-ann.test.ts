/**
 * The ANN builder and the Part 10 writer's typed-array values, without external tools: long
 * columns are written by reference (not copied) and decode to the same numbers with dcmjs's reader;
 * bad input names the argument. The integration tests check the files with dciodvfy and pydicom.
 */
import { describe, expect, it } from 'vitest';
import type { DicomJsonDataset } from '../../src/dicom-json.js';
import { buildAnnForPlan, type PatchOutcome, type SlidePlan } from '../../src/pipeline/index.js';
import { buildBulkAnnotations, COORDINATES_PER_PATCH } from '../../src/results/ann/bulk-annotations.js';
import { ANN_CODES, principalComponentCode, UCUM } from '../../src/results/ann/codes.js';
import { annUidsFor } from '../../src/results/sr/derived-uids.js';
import { decodePart10, encodePart10Parts } from '../../src/results/sr/dicom-part10.js';
import { SopClass } from '../../src/uids.js';
import { thrownPathembedError } from '../helpers/errors.js';

// biome-ignore lint/suspicious/noExplicitAny: decoded DICOM datasets are walked freely in assertions
type Ds = Record<string, any>;

const SOURCE: DicomJsonDataset = {
  '0020000D': { vr: 'UI', Value: ['1.2.826.0.1.1'] },
  '0020000E': { vr: 'UI', Value: ['1.2.826.0.1.2'] },
  '00080016': { vr: 'UI', Value: [SopClass.VLWholeSlideMicroscopyImage] },
  '00080018': { vr: 'UI', Value: ['1.2.826.0.1.3'] },
  '00100020': { vr: 'LO', Value: ['PATIENT-1'] },
};
const IMAGE = { sopClassUid: SopClass.VLWholeSlideMicroscopyImage, sopInstanceUid: '1.2.826.0.1.3' };
/** Enough annotations that a column (4 bytes each) passes the writer's 64 KiB attach threshold. */
const N = 20_000;

function input(n: number, points: Float32Array | Float64Array) {
  return {
    jobKey: 'unit-ann',
    sourceMetadata: SOURCE,
    referencedImage: IMAGE,
    evidence: [IMAGE],
    model: { name: 'm', version: '1', sha256: 'c'.repeat(64) },
    parameters: { pixelSpacingUm: 0.5 },
    annotationCount: n,
    points,
    measurements: [
      {
        name: ANN_CODES.tissueFraction,
        unit: UCUM.noUnits,
        values: Float32Array.from({ length: n }, (_, i) => i / n),
      },
      {
        name: principalComponentCode(0),
        unit: UCUM.noUnits,
        values: Float32Array.from({ length: n }, (_, i) => -i),
      },
    ],
    withEmbedding: false,
  };
}

describe('Microscopy Bulk Simple Annotations', () => {
  it('writes long float columns by reference and reads them back number for number', () => {
    const points = Float32Array.from({ length: N * COORDINATES_PER_PATCH }, (_, i) => i * 0.25);
    const built = buildBulkAnnotations(input(N, points));
    const parts = encodePart10Parts(built.dataset);
    // The coordinates and both columns are parts of their own, the very arrays given.
    expect(parts.some((p) => p.buffer === points.buffer)).toBe(true);
    expect(parts.length).toBeGreaterThanOrEqual(4);
    const ds = decodePart10(Buffer.concat(parts)) as Ds;
    expect(ds.SOPClassUID).toBe(SopClass.MicroscopyBulkSimpleAnnotations);
    expect(ds.SOPInstanceUID).toBe(annUidsFor('unit-ann', false).sopInstanceUid);
    expect(ds.AnnotationCoordinateType).toBe('2D');
    expect(ds.PixelOriginInterpretation).toBe('VOLUME');
    const group = ds.AnnotationGroupSequence[0];
    expect(group.GraphicType).toBe('RECTANGLE');
    expect(group.NumberOfAnnotations).toBe(N);
    expect(new Float32Array(group.PointCoordinatesData[0])).toEqual(points);
    const values = group.MeasurementsSequence.map(
      (m: Ds) => new Float32Array(m.MeasurementValuesSequence[0].FloatingPointValues[0]),
    );
    expect(values[0]).toEqual(input(N, points).measurements[0]!.values);
    expect(values[1]![N - 1]).toBe(-(N - 1));
    expect(group.MeasurementsSequence[1].ConceptNameCodeSequence[0].CodeValue).toBe('PCA1');
  });

  it('writes coordinates given as doubles as Double Point Coordinates Data', () => {
    const points = Float64Array.from({ length: 2 * COORDINATES_PER_PATCH }, (_, i) => i + 0.1);
    const ds = decodePart10(
      Buffer.concat(encodePart10Parts(buildBulkAnnotations(input(2, points)).dataset)),
    ) as Ds;
    const group = ds.AnnotationGroupSequence[0];
    expect(group.PointCoordinatesData).toBeUndefined();
    expect(new Float64Array(group.DoublePointCoordinatesData[0])).toEqual(points);
  });

  it('refuses columns and coordinates that do not match the annotation count, naming them', () => {
    const short = thrownPathembedError(() => buildBulkAnnotations(input(3, new Float32Array(8))));
    expect(short.code).toBe('INVALID_ARGUMENT');
    expect(short.message).toContain("'points'");
    expect(short.message).toContain('3 rectangles need 24');
    const bad = input(3, new Float32Array(24));
    const column = thrownPathembedError(() =>
      buildBulkAnnotations({
        ...bad,
        measurements: [{ ...bad.measurements[0]!, values: new Float32Array(2) }],
      }),
    );
    expect(column.message).toContain('Patch tissue area fraction');
    expect(column.message).toContain('has 2 values for 3 annotations');
    const none = thrownPathembedError(() => buildBulkAnnotations(input(0, new Float32Array(0))));
    expect(none.message).toContain('annotationCount');
  });

  it('gives the object with embedding columns UIDs of its own', () => {
    const a = annUidsFor('k', false);
    const b = annUidsFor('k', true);
    expect(a.seriesInstanceUid).toBe(b.seriesInstanceUid);
    expect(a.sopInstanceUid).not.toBe(b.sopInstanceUid);
    expect(a.sopInstanceUid).toMatch(/^2\.25\.\d+$/);
  });

  it('leaves failed patches (frameErrors: skip) out, and fails as the SR does when every patch failed', async () => {
    const spacingMm = { x: 0.00025, y: 0.00025 };
    const plan = {
      version: 1,
      source: { kind: 'local', folder: '/unit' },
      studyInstanceUid: '1.2.826.0.1.1',
      seriesInstanceUid: '1.2.826.0.1.2',
      pixelSpacingUm: 0.5,
      level: { index: 0, pixelSpacingMm: spacingMm, instances: [{ sopInstanceUid: '1.2.826.0.1.3' }] },
      downsample: 2,
      patchSizePx: 224,
      stridePx: 224,
      minTissue: 0.5,
      patchSelection: 'tissue-grid',
      baseLevel: {
        widthPx: 2000,
        heightPx: 2000,
        pixelSpacingMm: spacingMm,
        sopInstanceUid: '1.2.826.0.1.3',
      },
      patches: [0, 1, 2].map((i) => ({
        index: i,
        x: 224 * i,
        y: 0,
        width: 224,
        height: 224,
        tissueFraction: 0.6 + i / 10,
      })),
    } as unknown as SlidePlan;
    const failed = { code: 'FRAME_DECODE_ERROR', message: 'frame 7 is corrupt' };
    const stream = (outcomes: PatchOutcome[]) =>
      async function* () {
        yield* outcomes;
      };
    const embedding = (v: number) => new Float32Array(4).fill(v);
    const options = {
      model: { name: 'm', version: '1', sha256: 'c'.repeat(64) },
      embeddingWidth: 4,
      includeEmbedding: true,
    };
    const out = await buildAnnForPlan(
      plan,
      [SOURCE],
      stream([
        { index: 0, embedding: embedding(1) },
        { index: 1, failed },
        { index: 2, embedding: embedding(3) },
      ]),
      options,
    );
    expect(out.ann.annotationCount).toBe(2);
    const group = (decodePart10(Buffer.concat(out.parts)) as Ds).AnnotationGroupSequence[0];
    // Patches 0 and 2 (grid x 0-224 and 448-672) at 2 level-0 pixels per grid pixel (0.5 / 0.25 um).
    expect(Array.from(new Float32Array(group.PointCoordinatesData[0]))).toEqual([
      0, 0, 448, 0, 448, 448, 0, 448, 896, 0, 1344, 0, 1344, 448, 896, 448,
    ]);
    const columns = group.MeasurementsSequence.map((m: Ds) =>
      Array.from(new Float32Array(m.MeasurementValuesSequence[0].FloatingPointValues[0])),
    );
    expect(columns[0]).toEqual([Math.fround(0.6), Math.fround(0.8)]);
    expect(columns[4]).toEqual([1, 3]);
    const none = await buildAnnForPlan(plan, [SOURCE], stream([{ index: 0, failed }]), options).catch(
      (e) => e,
    );
    expect(none.code).toBe('FRAME_DECODE_ERROR');
  });
});
