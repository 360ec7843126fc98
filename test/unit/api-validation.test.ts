import { describe, expect, it } from 'vitest';
import { ApiKeyVerifier, keyIdOf } from '../../src/api/api-keys.js';
import { PREDICT_CODE_OF, toPredictError } from '../../src/api/predict-errors.js';
import { createJobsRequestSchema } from '../../src/api/schemas.js';
import { fieldIssues, parseOrThrow } from '../../src/api/validation.js';
import { canonicalJson } from '../../src/canonical-json.js';
import { ERROR_CODES, PathembedError } from '../../src/errors.js';
import { jobIdFor, requestFingerprint } from '../../src/queue/job-id.js';
import { chunkRanges } from '../../src/queue/queue-jobs.js';

const SERIES = 'http://127.0.0.1:8042/dicom-web/studies/1.2.3/series/4.5.6';

function issuesOf(body: unknown) {
  const r = createJobsRequestSchema.safeParse(body);
  if (r.success) throw new Error('expected a validation error');
  return fieldIssues(r.error.issues);
}

describe('POST /v1/jobs request schema', () => {
  it('fills defaults for a minimal request', () => {
    const body = parseOrThrow(createJobsRequestSchema, { sources: [SERIES] }, 'body');
    expect(body).toMatchObject({ outputs: ['json'], priority: 5, recompute: false, options: {} });
  });

  it('refuses unknown fields at their own path', () => {
    expect(issuesOf({ sources: [SERIES], options: { minTisue: 0.2 } })).toEqual([
      { path: 'options.minTisue', reason: 'unknown field' },
    ]);
    expect(issuesOf({ sources: [SERIES], extra: 1 })).toEqual([{ path: 'extra', reason: 'unknown field' }]);
    const nested = issuesOf({
      sources: [{ baseUrl: 'http://h/dw', studyUid: '1.2', seriesUid: '3.4', x: 1 }],
    });
    expect(nested).toEqual([{ path: 'sources.0.x', reason: 'unknown field' }]);
  });

  it('names the field path and the reason of a bad value', () => {
    const issues = issuesOf({ sources: [SERIES], options: { stridePx: 0 }, priority: 11 });
    expect(issues.map((i) => i.path).sort()).toEqual(['options.stridePx', 'priority']);
    expect(issues.every((i) => i.reason.length > 0)).toBe(true);
    const err = (() => {
      try {
        parseOrThrow(createJobsRequestSchema, { sources: [] }, 'request body');
      } catch (e) {
        return e as PathembedError;
      }
    })();
    expect(err?.code).toBe('INVALID_ARGUMENT');
    expect(err?.message).toMatch(/sources/);
    expect(err?.details.issues).toEqual([{ path: 'sources', reason: expect.any(String) }]);
  });
});

describe('Path Foundation error mapping', () => {
  it('maps every registry code to a Path Foundation code', () => {
    for (const code of Object.keys(ERROR_CODES)) expect(PREDICT_CODE_OF, code).toHaveProperty(code);
  });

  it('uses the API codes the brief lists', () => {
    expect(toPredictError(new PathembedError('UNAPPROVED_DICOM_STORE', 'x')).code).toBe(
      'UNAPPROVED_DICOM_STORE_ERROR',
    );
    expect(toPredictError(new PathembedError('PATCH_OUTSIDE_IMAGE', 'x')).code).toBe(
      'PATCH_OUTSIDE_OF_IMAGE_DIMENSIONS_ERROR',
    );
    expect(toPredictError(new PathembedError('DICOMWEB_UNAUTHORIZED', 'x')).code).toBe(
      'INVALID_CREDENTIALS_ERROR',
    );
    expect(toPredictError(new PathembedError('INVALID_SERIES_REFERENCE', 'x')).code).toBe('DICOM_PATH_ERROR');
    expect(toPredictError(new Error('boom')).code).toBe('INTERNAL_ERROR');
    // Path Foundation has no code for these; the description carries ours.
    expect(toPredictError(new PathembedError('PREDICT_TIMEOUT', 'PREDICT_TIMEOUT: waited')).code).toBe(
      'INTERNAL_ERROR',
    );
    expect(toPredictError(new PathembedError('SERVICE_UNAVAILABLE', 'x')).code).toBe('INTERNAL_ERROR');
    expect(toPredictError(new PathembedError('INTERNAL', 'y'.repeat(5000))).description.length).toBe(1024);
  });
});

describe('API keys', () => {
  it('accepts configured keys only and identifies them by a hash', () => {
    const v = new ApiKeyVerifier(['key-one', 'key-two']);
    expect(v.enabled).toBe(true);
    expect(v.verify('key-two')).toBe(keyIdOf('key-two'));
    expect(v.verify('key-two ')).toBeUndefined();
    expect(v.verify('')).toBeUndefined();
    expect(keyIdOf('key-two')).not.toContain('key-two');
    expect(new ApiKeyVerifier(undefined).enabled).toBe(false);
  });
});

describe('job ids', () => {
  const input = {
    source: { kind: 'dicomweb' as const, baseUrl: 'http://h/dw', studyUid: '1.2', seriesUid: '3.4' },
    options: { pixelSpacingUm: 0.5, stridePx: 224, minTissue: 0.5 },
    outputs: ['json' as const],
    modelSha256: 'a'.repeat(64),
    keyId: 'k',
  };

  it('are stable for equal requests and differ when the source, options, model or key differ', () => {
    const base = requestFingerprint(input);
    expect(
      requestFingerprint({ ...input, options: { minTissue: 0.5, stridePx: 224, pixelSpacingUm: 0.5 } }),
    ).toBe(base);
    expect(requestFingerprint({ ...input, source: { ...input.source, baseUrl: 'http://h/dw/' } })).toBe(base);
    expect(requestFingerprint({ ...input, modelSha256: 'b'.repeat(64) })).not.toBe(base);
    expect(requestFingerprint({ ...input, keyId: 'other' })).not.toBe(base);
    expect(requestFingerprint({ ...input, options: { ...input.options, stridePx: 448 } })).not.toBe(base);
    // frameErrors "fail" is what every job did before the option existed: their ids stay as they were.
    expect(requestFingerprint({ ...input, options: { ...input.options, frameErrors: 'fail' } })).toBe(base);
    expect(requestFingerprint({ ...input, options: { ...input.options, frameErrors: 'skip' } })).not.toBe(
      base,
    );
    expect(jobIdFor(base)).toBe(jobIdFor(base));
    expect(jobIdFor(base, true)).not.toBe(jobIdFor(base));
    expect(jobIdFor(base)).toMatch(/^j[0-9a-f]{32}$/);
    expect(canonicalJson({ b: 1, a: [2, { d: 1, c: undefined }] })).toBe('{"a":[2,{"d":1}],"b":1}');
  });

  it('cut a plan into chunks covering every patch once', () => {
    expect(chunkRanges(0, 4)).toEqual([]);
    expect(chunkRanges(10, 4)).toEqual([
      { start: 0, end: 4 },
      { start: 4, end: 8 },
      { start: 8, end: 10 },
    ]);
  });
});
