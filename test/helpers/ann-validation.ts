/**
 * The checks every bulk annotations (ANN) file the project writes goes through: dicom3tools'
 * dciodvfy reports no error (its warnings are returned, for the test to compare with the ones
 * docs/ann.md justifies), and pydicom, a reader pathembed does not write with, decodes it.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { expect } from 'vitest';
import { requireBinary } from '../../scripts/dev-services/binaries.js';
import { pythonEnv } from './python-env.js';

const run = promisify(execFile);
const DCIODVFY_OUTPUT_BYTES = 256 << 20;

/**
 * The one error dciodvfy (dicom3tools 1.00~20220618, Debian bookworm's) gives every 2D ANN: its
 * module table verifies Common Z Coordinate Value with "Only valid for AnnotationCoordinateType of
 * 3D" whenever the type is not 3D, whether the attribute is there or not (it is not in ours; the
 * same file with type 3D does not get it). A defect of the validator, not of the file: docs/ann.md.
 */
export const DCIODVFY_2D_ANN_DEFECT =
  'Error - Only valid for AnnotationCoordinateType of 3D - attribute <CommonZCoordinateValue> = <>';

/**
 * Warnings dciodvfy gives the ANNs we write, each justified in docs/ann.md: the private coding
 * scheme is not one it knows, Laterality is empty (unknown) as a slide seldom says, and a slide
 * without Patient ID or Study Date (synthetic ones) passes that lack on.
 */
export const KNOWN_ANN_WARNINGS: readonly RegExp[] = [
  /^Warning - Unrecognized defined term <99PATHEMBED> for value 1 of attribute <Coding Scheme Designator>$/,
  /^Warning - is only permitted to be empty when actually unknown; .* attribute <Laterality>$/,
  /^Warning - Missing attribute or value that would be needed to build DICOMDIR/,
];

/**
 * dciodvfy's warnings for `file`, after asserting it reports no error (but the defect above) and
 * no warning outside KNOWN_ANN_WARNINGS.
 */
export async function validateAnnFile(file: string): Promise<string[]> {
  // dciodvfy exits non-zero on warnings too; its "Error" lines are what must be absent.
  const r = await run(requireBinary('dciodvfy'), [file], { maxBuffer: DCIODVFY_OUTPUT_BYTES }).catch(
    (e) => e,
  );
  const lines = `${r.stdout ?? ''}${r.stderr ?? ''}`.split('\n').filter((l) => l.trim());
  expect(
    lines.filter((l) => l.startsWith('Error') && l.trim() !== DCIODVFY_2D_ANN_DEFECT),
    lines.join('\n'),
  ).toEqual([]);
  const warnings = lines.filter((l) => l.startsWith('Warning'));
  expect(
    warnings.filter((w) => !KNOWN_ANN_WARNINGS.some((k) => k.test(w.trim()))),
    lines.join('\n'),
  ).toEqual([]);
  return warnings;
}

export interface AnnReadBack {
  readonly sopClassUid: string;
  readonly modality: string;
  readonly studyUid: string;
  readonly seriesUid: string;
  readonly sopInstanceUid: string;
  readonly coordinateType: string;
  readonly pixelOrigin: string;
  readonly referencedImage: string;
  readonly graphicType: string;
  readonly count: number;
  readonly pointsVr: 'OF' | 'OD';
  /** Decoded Point Coordinates Data: count x 4 x (column, row). */
  readonly points: number[][][];
  readonly measurements: Array<{ code: string; scheme: string; unit: string; values: number[] }>;
  /** Computed by numpy from the JSON result, independently of pathembed. */
  readonly expected: {
    readonly corners: number[][][];
    readonly tissue: number[];
    readonly pcs: number[][];
    readonly embeddings: number[][];
  };
}

/**
 * Reads the ANN with pydicom and, from the JSON result with Python's json and numpy, what it should
 * hold: each patch's level-0 corners (target grid x level spacing x scale / level-0 spacing), its
 * tissue fraction, and the first three principal component scores (eigh of the population
 * covariance, each component's sign set so its largest coordinate is positive, as pathembed does).
 */
export async function readAnnWithPydicom(annPath: string, jsonPath: string): Promise<AnnReadBack> {
  const py = await pythonEnv();
  const out = await py.run(
    `
import json, sys
import numpy as np
import pydicom
ds = pydicom.dcmread(sys.argv[1])
g = ds.AnnotationGroupSequence[0]
n = int(g.NumberOfAnnotations)
if 'PointCoordinatesData' in g:
    vr, pts = 'OF', np.frombuffer(g.PointCoordinatesData, '<f4')
else:
    vr, pts = 'OD', np.frombuffer(g.DoublePointCoordinatesData, '<f8')
meas = []
for m in g.MeasurementsSequence:
    assert 'AnnotationIndexList' not in m.MeasurementValuesSequence[0]
    vals = np.frombuffer(m.MeasurementValuesSequence[0].FloatingPointValues, '<f4')
    meas.append({'code': m.ConceptNameCodeSequence[0].CodeValue,
                 'scheme': m.ConceptNameCodeSequence[0].CodingSchemeDesignator,
                 'unit': m.MeasurementUnitsCodeSequence[0].CodeValue,
                 'values': vals.astype(float).tolist()})
doc = json.load(open(sys.argv[2]))
lvl, base = doc['level'], doc['baseLevel']
sx = lvl['pixelSpacingUm']['x'] * lvl['scaleFromGrid'] / base['pixelSpacingUm']['x']
sy = lvl['pixelSpacingUm']['y'] * lvl['scaleFromGrid'] / base['pixelSpacingUm']['y']
corners, tissue, emb = [], [], []
for p in doc['patches']:
    x0, y0 = p['x'] * sx, p['y'] * sy
    x1, y1 = (p['x'] + p['width']) * sx, (p['y'] + p['height']) * sy
    corners.append([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    tissue.append(p['tissueFraction'])
    emb.append(p['embedding'])
E = np.array(emb, dtype=np.float32).astype(np.float64)
mean = E.mean(axis=0)
w, v = np.linalg.eigh(np.cov(E.T, bias=True))
order = np.argsort(w)[::-1][:3]
pcs = []
for k in order:
    c = v[:, k]
    if c[np.argmax(np.abs(c))] < 0: c = -c
    pcs.append(((E - mean) @ c).tolist())
print(json.dumps({
  'sopClassUid': ds.SOPClassUID, 'modality': ds.Modality, 'studyUid': ds.StudyInstanceUID,
  'seriesUid': ds.SeriesInstanceUID, 'sopInstanceUid': ds.SOPInstanceUID,
  'coordinateType': ds.AnnotationCoordinateType, 'pixelOrigin': ds.PixelOriginInterpretation,
  'referencedImage': ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID,
  'graphicType': g.GraphicType, 'count': n, 'pointsVr': vr,
  'points': pts.astype(float).reshape(n, 4, 2).tolist(), 'measurements': meas,
  'expected': {'corners': corners, 'tissue': tissue, 'pcs': pcs, 'embeddings': E.tolist()},
}))
`,
    [annPath, jsonPath],
  );
  return JSON.parse(out) as AnnReadBack;
}
