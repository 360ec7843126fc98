/**
 * What every DICOM instance pathembed writes (the SR and the bulk annotations) states the same
 * way: the SOP Common attributes with the creation time in UTC and the private coding scheme, the
 * Patient and General Study modules copied from the slide (so the result files with it), DA/TM
 * values, and LO values cut to fit.
 */
import type { DicomJsonDataset } from '../../dicom-json.js';
import { copyModules, GENERAL_STUDY_MODULE, PATIENT_MODULE } from '../../dicom-modules.js';
import { PRIVATE_SCHEME, PRIVATE_SCHEME_NAME, PRIVATE_SCHEME_ORGANIZATION } from './codes.js';
import type { Dataset } from './content-items.js';
import { naturalize } from './dicom-part10.js';

/** Longest LO (Long String) value, in characters (PS3.5 6.2). */
const LO_MAX_CHARS = 64;
const ELLIPSIS = '...';

/** A LO value: `text`, shortened with "..." (ASCII, so no character set is needed) when too long. */
export function fitLo(text: string): string {
  return text.length <= LO_MAX_CHARS ? text : `${text.slice(0, LO_MAX_CHARS - ELLIPSIS.length)}${ELLIPSIS}`;
}

/** A DA value (YYYYMMDD), in UTC. */
export function dicomDate(d: Date): string {
  return d.toISOString().slice(0, 10).replace(/-/g, '');
}

/** A TM value (HHMMSS), in UTC. */
export function dicomTime(d: Date): string {
  return d.toISOString().slice(11, 19).replace(/:/g, '');
}

/** Patient and General Study copied from the source; absent type 2 attributes written empty. */
export function copyPatientAndStudy(source: DicomJsonDataset): Dataset {
  const { present, emptyType2 } = copyModules(source, [PATIENT_MODULE, GENERAL_STUDY_MODULE]);
  const copied = naturalize(present);
  for (const keyword of emptyType2) copied[keyword] = '';
  return copied;
}

/** SOP Common: class, instance, creation date and time (UTC, so the offset is +0000), our coding scheme. */
export function sopCommon(sopClassUid: string, sopInstanceUid: string, now: Date): Dataset {
  return {
    SOPClassUID: sopClassUid,
    SOPInstanceUID: sopInstanceUid,
    InstanceCreationDate: dicomDate(now),
    InstanceCreationTime: dicomTime(now),
    TimezoneOffsetFromUTC: '+0000',
    CodingSchemeIdentificationSequence: [
      {
        CodingSchemeDesignator: PRIVATE_SCHEME,
        CodingSchemeName: PRIVATE_SCHEME_NAME,
        CodingSchemeResponsibleOrganization: PRIVATE_SCHEME_ORGANIZATION,
      },
    ],
  };
}
