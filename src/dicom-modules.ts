/**
 * DICOM information-object modules as tables (PS3.3), for every writer that files a new object with
 * a source slide: the attributes to copy from the slide and their type. Type 2 attributes are
 * written empty when the slide lacks them; type 3 are copied only when present. Writers take the
 * tables from here rather than listing tags by hand.
 */
import type { DicomJsonDataset } from './dicom-json.js';
import { Tag, type TagKeyword } from './dicom-tags.js';

export interface ModuleAttribute {
  readonly keyword: TagKeyword;
  /** PS3.5 attribute type: 1 required, 2 required but may be empty, 3 optional. */
  readonly type: 1 | 2 | 3;
}

/** Patient Module (PS3.3 C.7.1.1), the attributes a slide carries that a derived object keeps. */
export const PATIENT_MODULE: readonly ModuleAttribute[] = [
  { keyword: 'PatientName', type: 2 },
  { keyword: 'PatientID', type: 2 },
  { keyword: 'IssuerOfPatientID', type: 3 },
  { keyword: 'IssuerOfPatientIDQualifiersSequence', type: 3 },
  { keyword: 'PatientBirthDate', type: 2 },
  { keyword: 'PatientSex', type: 2 },
  { keyword: 'OtherPatientIDsSequence', type: 3 },
  { keyword: 'PatientComments', type: 3 },
  { keyword: 'PatientIdentityRemoved', type: 3 },
  { keyword: 'DeidentificationMethod', type: 3 },
];

/** General Study Module (PS3.3 C.7.2.1). */
export const GENERAL_STUDY_MODULE: readonly ModuleAttribute[] = [
  { keyword: 'StudyInstanceUID', type: 1 },
  { keyword: 'StudyDate', type: 2 },
  { keyword: 'StudyTime', type: 2 },
  { keyword: 'ReferringPhysicianName', type: 2 },
  { keyword: 'StudyID', type: 2 },
  { keyword: 'AccessionNumber', type: 2 },
  { keyword: 'IssuerOfAccessionNumberSequence', type: 3 },
  { keyword: 'StudyDescription', type: 3 },
];

/**
 * The modules' attributes present in `source` (DICOM JSON, keyed by tag), and each type 2 attribute
 * the source lacks as an empty element, so the derived object files under the slide's patient and
 * study and stays valid.
 */
export function copyModules(
  source: DicomJsonDataset,
  modules: readonly (readonly ModuleAttribute[])[],
): { readonly present: DicomJsonDataset; readonly emptyType2: readonly TagKeyword[] } {
  const present: DicomJsonDataset = {};
  const emptyType2: TagKeyword[] = [];
  for (const attribute of modules.flat()) {
    const tag = Tag[attribute.keyword];
    const element = source[tag];
    if (element?.Value && element.Value.length > 0) present[tag] = element;
    else if (attribute.type === 2) emptyType2.push(attribute.keyword);
  }
  return { present, emptyType2 };
}
