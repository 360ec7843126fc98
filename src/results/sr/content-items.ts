/**
 * SR content items (PS3.3 C.17.3) as dcmjs "naturalized" datasets: one constructor per value
 * type, each checking its arguments and naming the bad one, so a malformed SR fails while it is
 * built, not in a validator or a viewer months later.
 */
import { PathembedError } from '../../errors.js';
import { float32ToDecimal } from '../embedding-codec.js';
import type { Code } from './codes.js';

export type RelationshipType =
  | 'CONTAINS'
  | 'HAS OBS CONTEXT'
  | 'HAS CONCEPT MOD'
  | 'HAS PROPERTIES'
  | 'HAS ACQ CONTEXT'
  | 'INFERRED FROM'
  | 'SELECTED FROM';

/** A content item (or any dataset) in dcmjs's naturalized form: keyword → value. */
export type Dataset = Record<string, unknown>;

/** UIDs are at most 64 characters of digits and dots (PS3.5 9.1). */
const UID_PATTERN = /^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$/;
const MAX_UID_CHARS = 64;

export function invalidArgument(where: string, argument: string, problem: string): PathembedError {
  return new PathembedError('INVALID_ARGUMENT', `${where}: '${argument}' ${problem}`, { argument, where });
}

export function assertUid(where: string, argument: string, uid: unknown): asserts uid is string {
  if (typeof uid !== 'string' || uid.length > MAX_UID_CHARS || !UID_PATTERN.test(uid)) {
    throw invalidArgument(where, argument, `is not a DICOM UID (${JSON.stringify(uid)})`);
  }
}

export function assertText(where: string, argument: string, text: unknown): asserts text is string {
  if (typeof text !== 'string' || text.length === 0) {
    throw invalidArgument(where, argument, 'must be a non-empty string');
  }
}

export function codeSequence(c: Code): Dataset[] {
  return [{ CodeValue: c.value, CodingSchemeDesignator: c.scheme, CodeMeaning: c.meaning }];
}

function item(
  valueType: string,
  name: Code | undefined,
  relationship: RelationshipType | undefined,
): Dataset {
  return {
    ...(relationship ? { RelationshipType: relationship } : {}),
    ValueType: valueType,
    ...(name ? { ConceptNameCodeSequence: codeSequence(name) } : {}),
  };
}

export function containerItem(
  relationship: RelationshipType | undefined,
  name: Code,
  children: readonly Dataset[],
  options: { templateId?: string } = {},
): Dataset {
  return {
    ...item('CONTAINER', name, relationship),
    ContinuityOfContent: 'SEPARATE',
    ...(options.templateId
      ? { ContentTemplateSequence: [{ MappingResource: 'DCMR', TemplateIdentifier: options.templateId }] }
      : {}),
    ...(children.length > 0 ? { ContentSequence: [...children] } : {}),
  };
}

export function textItem(relationship: RelationshipType, name: Code, text: string): Dataset {
  assertText(`TEXT ${name.meaning}`, 'text', text);
  return { ...item('TEXT', name, relationship), TextValue: text };
}

export function codeItem(relationship: RelationshipType, name: Code, value: Code): Dataset {
  return { ...item('CODE', name, relationship), ConceptCodeSequence: codeSequence(value) };
}

export function uidrefItem(relationship: RelationshipType, name: Code, uid: string): Dataset {
  assertUid(`UIDREF ${name.meaning}`, 'uid', uid);
  return { ...item('UIDREF', name, relationship), UID: uid };
}

/**
 * A NUM item. NumericValue (DS, 16 characters) holds the shortest decimal of the float32 value and
 * FloatingPointValue (FD) the value itself, so readers get it exactly whichever they read.
 */
export function numItem(relationship: RelationshipType, name: Code, value: number, units: Code): Dataset {
  if (!Number.isFinite(value))
    throw invalidArgument(`NUM ${name.meaning}`, 'value', `must be finite, got ${value}`);
  return {
    ...item('NUM', name, relationship),
    MeasuredValueSequence: [
      {
        MeasurementUnitsCodeSequence: codeSequence(units),
        NumericValue: float32ToDecimal(value),
        FloatingPointValue: Math.fround(value),
      },
    ],
  };
}

export interface ImageReference {
  readonly sopClassUid: string;
  readonly sopInstanceUid: string;
}

export function imageItem(
  relationship: RelationshipType,
  name: Code | undefined,
  image: ImageReference,
): Dataset {
  assertUid('IMAGE', 'sopClassUid', image.sopClassUid);
  assertUid('IMAGE', 'sopInstanceUid', image.sopInstanceUid);
  return {
    ...item('IMAGE', name, relationship),
    ReferencedSOPSequence: [
      { ReferencedSOPClassUID: image.sopClassUid, ReferencedSOPInstanceUID: image.sopInstanceUid },
    ],
  };
}

export type GraphicType = 'POINT' | 'MULTIPOINT' | 'POLYLINE' | 'CIRCLE' | 'ELLIPSE';

/**
 * A 2D SCOORD on one image. Points are (column, row) in the image's pixel matrix with (0, 0) at
 * the top-left corner of the top-left pixel (PS3.3 C.18.6.1.1); for a tiled whole-slide image with
 * `VOLUME` origin, the matrix is the total pixel matrix, not one frame.
 */
export function scoordItem(
  relationship: RelationshipType,
  name: Code,
  graphicType: GraphicType,
  points: ReadonlyArray<readonly [number, number]>,
  image: ImageReference,
  pixelOrigin: 'VOLUME' | 'FRAME',
): Dataset {
  const where = `SCOORD ${name.meaning}`;
  if (points.length === 0) throw invalidArgument(where, 'points', 'must not be empty');
  for (const [i, p] of points.entries()) {
    if (!Number.isFinite(p[0]) || !Number.isFinite(p[1]) || p[0] < 0 || p[1] < 0) {
      throw invalidArgument(
        where,
        `points[${i}]`,
        `must be non-negative finite (column, row), got ${JSON.stringify(p)}`,
      );
    }
  }
  if (graphicType === 'POLYLINE' && points.length < 2)
    throw invalidArgument(where, 'points', 'a POLYLINE needs 2+');
  return {
    ...item('SCOORD', name, relationship),
    GraphicType: graphicType,
    GraphicData: points.flatMap((p) => [p[0], p[1]]),
    PixelOriginInterpretation: pixelOrigin,
    ContentSequence: [imageItem('SELECTED FROM', undefined, image)],
  };
}
