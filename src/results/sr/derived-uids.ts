/**
 * UIDs derived from names rather than drawn at random (PS3.5 B.2: "2.25." + a UUID as one
 * decimal integer, here a name-based UUID v5). The SR of a job gets UIDs from the job's key, so
 * writing the same result twice stores the same instance again instead of a duplicate.
 */
import { createHash } from 'node:crypto';
import { UUID_UID_ROOT } from '../../uids.js';

/** The namespace of every name this project turns into a UUID (a fixed random UUID). */
export const PATHEMBED_UUID_NAMESPACE = '4f1c6a0e-8a53-4d2e-9a71-0b8c1f6c2d57';

const UUID_BYTES = 16;
const VERSION_BYTE = 6;
const VARIANT_BYTE = 8;
const UUID_V5 = 0x50;

function uuidBytes(uuid: string): Buffer {
  return Buffer.from(uuid.replace(/-/g, ''), 'hex');
}

/** RFC 9562 UUID version 5 (SHA-1, name-based) of `name` in `namespace`. */
export function uuidV5(name: string, namespace: string = PATHEMBED_UUID_NAMESPACE): string {
  const hash = createHash('sha1').update(uuidBytes(namespace)).update(name, 'utf8').digest();
  const bytes = hash.subarray(0, UUID_BYTES);
  bytes[VERSION_BYTE] = (bytes[VERSION_BYTE]! & 0x0f) | UUID_V5;
  bytes[VARIANT_BYTE] = (bytes[VARIANT_BYTE]! & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** "2.25.<decimal UUID>" (at most 44 characters) for a name. */
export function uidFromName(name: string): string {
  return `${UUID_UID_ROOT}.${BigInt(`0x${uuidV5(name).replace(/-/g, '')}`).toString(10)}`;
}

/** This implementation's Implementation Class UID (file meta information). */
export const IMPLEMENTATION_CLASS_UID = uidFromName('pathembed/implementation-class');
export const IMPLEMENTATION_VERSION_NAME = 'PATHEMBED_0_1';

/** The UIDs of one job's SR, all functions of the job key. */
export function srUidsFor(jobKey: string) {
  return {
    seriesInstanceUid: uidFromName(`${jobKey}/sr/series`),
    sopInstanceUid: uidFromName(`${jobKey}/sr/instance`),
    meanGroupUid: uidFromName(`${jobKey}/sr/group/mean`),
    patchGroupUid: (index: number) => uidFromName(`${jobKey}/sr/group/patch/${index}`),
  };
}

/** The device observer of SRs made with a model: one UID per model bytes. */
export function deviceUidFor(modelSha256: string): string {
  return uidFromName(`pathembed/device/${modelSha256}`);
}

/**
 * The UIDs of one job's Microscopy Bulk Simple Annotations (ANN), all functions of the job key and
 * of whether the embedding columns are in it: a series of its own beside the SR's, so viewers list
 * the annotations apart from the report.
 */
export function annUidsFor(jobKey: string, withEmbedding: boolean) {
  // With and without the embedding columns are two different objects, so two instances.
  const root = `${jobKey}/ann${withEmbedding ? '+embedding' : ''}`;
  return {
    seriesInstanceUid: uidFromName(`${jobKey}/ann/series`),
    sopInstanceUid: uidFromName(`${root}/instance`),
    patchGroupUid: uidFromName(`${root}/group/patches`),
  };
}
