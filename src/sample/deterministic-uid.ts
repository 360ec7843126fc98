/**
 * Reproducible DICOM UIDs for synthetic data: the same seed and name always give the same UID, so a
 * rebuilt fixture is byte-identical and tests can name instances. Form: "2.25." followed by a UUID
 * (RFC 9562 version 8, its 122 free bits taken from SHA-256 of seed and name) as one decimal
 * integer (PS3.5 B.2), at most 44 characters.
 */
import crypto from 'node:crypto';
import { UUID_UID_ROOT } from '../uids.js';

export function deterministicUid(seed: string, name: string): string {
  const bytes = crypto.createHash('sha256').update(`${seed}\u0000${name}`).digest().subarray(0, 16);
  bytes[6] = (bytes[6]! & 0x0f) | 0x80; // version 8 (custom)
  bytes[8] = (bytes[8]! & 0x3f) | 0x80; // RFC 9562 variant
  return `${UUID_UID_ROOT}.${BigInt(`0x${bytes.toString('hex')}`).toString(10)}`;
}
