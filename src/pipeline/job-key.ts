/**
 * The deterministic key of an embedding job: a hash of what determines its output (the slide,
 * the resolved options and the model bytes), never of when or by whom it ran or with which token.
 * Results quote it, and the SR's UIDs derive from it, so running the same job twice writes the
 * same SR instance instead of a second one.
 */

import { createHash } from 'node:crypto';
import { canonicalJson } from '../canonical-json.js';
import { publicBaseUrl } from '../results/result-source.js';
import type { SlidePlan } from './job-types.js';

/** Bumped when what the key covers changes, so old and new keys never collide. */
const JOB_KEY_VERSION = 1;

/** sha256 (hex) of the plan's source and options and the model's sha256. */
export function jobKeyFor(plan: SlidePlan, modelSha256: string): string {
  const source =
    plan.source.kind === 'dicomweb'
      ? {
          kind: 'dicomweb',
          baseUrl: publicBaseUrl(plan.source.baseUrl),
          studyUid: plan.source.studyUid,
          seriesUid: plan.source.seriesUid,
          instanceUids: plan.source.instanceUids ? [...plan.source.instanceUids].sort() : undefined,
        }
      : // A local slide is identified by its study and series UIDs (below): a copied folder is the same slide.
        { kind: 'local' };
  return createHash('sha256')
    .update(
      canonicalJson({
        v: JOB_KEY_VERSION,
        source,
        study: plan.studyInstanceUid,
        series: plan.seriesInstanceUid,
        pixelSpacingUm: plan.pixelSpacingUm,
        patchSelection: plan.patchSelection,
        ...(plan.patchSelection === 'explicit'
          ? { patches: plan.patches.map((p) => [p.x, p.y]), requireInside: plan.requirePatchesInside }
          : { stridePx: plan.stridePx, minTissue: plan.minTissue }),
        // Only when asked, so the keys of jobs without a transform stay what they were.
        ...(plan.iccProfile ? { iccProfile: plan.iccProfile } : {}),
        model: modelSha256,
      }),
    )
    .digest('hex');
}
