/**
 * The failed patches of one run under `frameErrors: skip`: counted as the stream passes, so that
 * a slide whose every patch failed ends the job with the frames' error instead of an empty result
 * that would look like a slide without tissue.
 */
import { PathembedError } from '../errors.js';
import type { PatchFailure } from './job-types.js';

export class PatchFailureTally {
  count = 0;
  private first: PatchFailure | undefined;

  add(failure: PatchFailure): void {
    this.count++;
    this.first ??= failure;
  }

  /** Throws the first failure's error when patches failed and none was embedded. */
  assertSomeEmbedded(embedded: number): void {
    if (embedded > 0 || !this.first) return;
    // Only frame decode errors are ever skipped (embed-plan.ts), so the job fails with that code.
    throw new PathembedError(
      'FRAME_DECODE_ERROR',
      `Every one of the ${this.count} planned patches failed, so the job has no embedding; the first: ${this.first.message}`,
      { failedPatches: this.count },
    );
  }
}
