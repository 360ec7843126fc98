/**
 * The one rule for a job's token leaving its store (mayForwardToken, on isSameStore), and the
 * SlideOpener's refusals, with no store needed: lookalike hosts, ports, schemes, paths and
 * credentials in URLs are all other stores.
 */
import { describe, expect, it } from 'vitest';
import { isSameStore } from '../../src/dicomweb/index.js';
import { isPathembedError } from '../../src/errors.js';
import type { SlideSourceSpec } from '../../src/slide-source-spec.js';
import { mayForwardToken, SlideOpener } from '../../src/wsi/slide-opener.js';

const STORE = 'https://pacs.example.org/dicom-web';
const source: SlideSourceSpec = { kind: 'dicomweb', baseUrl: STORE, studyUid: '1.2.3', seriesUid: '4.5.6' };

describe('mayForwardToken', () => {
  it.each([
    [STORE, 'the same base URL'],
    [`${STORE}/`, 'a trailing slash'],
    ['https://PACS.example.org/dicom-web', 'another case of the host'],
    ['https://pacs.example.org:443/dicom-web', 'the default port written out'],
    [`${STORE}?x=1#frag`, 'a query and fragment (not part of the store)'],
  ])('forwards to %s (%s)', (destination) => {
    expect(mayForwardToken(source, destination)).toBe(true);
  });

  it.each([
    ['https://pacs.example.org.evil.net/dicom-web', 'a lookalike host'],
    ['https://evil.net/pacs.example.org/dicom-web', 'the host in the path'],
    ['https://pacs.example.org@evil.net/dicom-web', 'the store as user information'],
    ['http://pacs.example.org/dicom-web', 'plain http'],
    ['https://pacs.example.org:8443/dicom-web', 'another port'],
    ['https://pacs.example.org/dicom-web-other', 'a path that merely starts the same'],
    ['https://pacs.example.org/other/dicom-web', 'another path on the same host'],
    ['https://pacs.example.org', 'the host root'],
    ['not a url', 'garbage'],
  ])('refuses %s (%s)', (destination) => {
    expect(mayForwardToken(source, destination)).toBe(false);
  });

  it('never forwards the token of a local slide', () => {
    expect(mayForwardToken({ kind: 'local', folder: '/tmp/slide' }, STORE)).toBe(false);
  });

  it('isSameStore is symmetric and refuses credentials on either side', () => {
    expect(isSameStore('https://a.example/x', 'https://a.example/x/')).toBe(true);
    expect(isSameStore('https://a.example/x/', 'https://a.example/x')).toBe(true);
    expect(isSameStore('https://a.example/x', 'https://user:pw@a.example/x')).toBe(true);
    expect(isSameStore('https://a.example/x', 'https://b.example/x')).toBe(false);
  });
});

describe('SlideOpener', () => {
  const opener = (allowLocal?: boolean) =>
    new SlideOpener({
      dicomWeb: {
        allowedStores: ['https://pacs.example.org'],
        retry: {
          maxAttempts: 1,
          baseDelayMs: 1,
          maxDelayMs: 1,
          maxTotalMs: 1,
          requestTimeoutMs: 1000,
          retryOnStatus: [],
          retryOnErrorCodes: [],
        },
        framesPerRequest: 8,
        storeConcurrency: 1,
      },
      reading: { frameCacheBytes: 1 << 20, decodeThreads: 1, levelTolerance: 0.1 },
      ...(allowLocal === undefined ? {} : { allowLocal }),
    });

  it('refuses local folders where only DICOMweb series may be read', async () => {
    await expect(opener(false).openSource({ kind: 'local', folder: '/tmp' })).rejects.toSatisfy(
      (err) =>
        isPathembedError(err, 'INVALID_ARGUMENT') && /DICOMweb series only/.test((err as Error).message),
    );
  });

  it('refuses a malformed series reference before anything is fetched', async () => {
    await expect(opener().openSource('https://pacs.example.org/dicom-web/studies/1.2')).rejects.toSatisfy(
      (err) => isPathembedError(err, 'INVALID_SERIES_REFERENCE'),
    );
  });

  it('opens a DICOMweb source described by the series URL, never with credentials in it', async () => {
    const src = await opener().openSource(source, { token: 'secret-token' });
    expect(src.description).toBe(`${STORE}/studies/1.2.3/series/4.5.6`);
    expect(src.description).not.toContain('secret');
  });
});
