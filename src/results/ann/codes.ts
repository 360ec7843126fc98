/**
 * Coded concepts of the bulk annotations (ANN): what the annotation group is (SNOMED CT), how it
 * was made (DCM), and the measurement names under the project's private scheme 99PATHEMBED where no
 * standard code exists (tissue fraction, principal component scores). Embedding components reuse
 * the SR's codes EMB0000…, so one code names one component in both objects. docs/ann.md lists them.
 */
import { type Code, code, PRIVATE_SCHEME } from '../sr/codes.js';

export { embeddingComponentCode, PRIVATE_SCHEME, UCUM } from '../sr/codes.js';

export const ANN_CODES = {
  /** CID 7150 Segmentation Property Categories. */
  anatomicalStructure: code('91723000', 'SCT', 'Anatomical Structure'),
  /** CID 7151-style property type: the patch is a region of tissue. */
  tissue: code('85756007', 'SCT', 'Tissue'),
  /** CID 7162 Surface Processing Algorithm Families: the embedding model is a neural network. */
  artificialIntelligence: code('123110', 'DCM', 'Artificial Intelligence'),
  /** Share of the patch's area that the tissue mask covers (0-1). */
  tissueFraction: code('TISSUEFRAC', PRIVATE_SCHEME, 'Patch tissue area fraction'),
} as const;

/** Principal component scores are PCA1, PCA2, … (1-based, as they are usually named). */
export function principalComponentCode(i: number): Code {
  return code(`PCA${i + 1}`, PRIVATE_SCHEME, `Embedding principal component ${i + 1} score`);
}
