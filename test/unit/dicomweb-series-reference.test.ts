import { describe, expect, it } from 'vitest';
import {
  describeSeriesReference,
  formatSeriesUrl,
  GOOGLE_HEALTHCARE_API_BASE,
  isValidUid,
  parseSeriesReference,
} from '../../src/dicomweb/index.js';
import { PathembedError } from '../../src/errors.js';

const STUDY = '1.2.276.0.7230010.3.1.2.8323328.12053.1795923530.681923';
const SERIES = '1.2.276.0.7230010.3.1.3.8323328.12053.1795923530.681924';
const INSTANCE = '1.2.276.0.7230010.3.1.4.8323328.12053.1795923531.681927';
const GOOGLE_STORE = 'projects/my-proj/locations/us-central1/datasets/ds1/dicomStores/store-a/dicomWeb';

function refusal(input: Parameters<typeof parseSeriesReference>[0]): PathembedError {
  try {
    parseSeriesReference(input);
  } catch (err) {
    expect(err).toBeInstanceOf(PathembedError);
    expect((err as PathembedError).code).toBe('INVALID_SERIES_REFERENCE');
    return err as PathembedError;
  }
  throw new Error(`expected ${JSON.stringify(input)} to be refused`);
}

describe('parseSeriesReference', () => {
  it('reads a DICOMweb series URL, with or without a trailing slash', () => {
    const url = `http://127.0.0.1:8042/dicom-web/studies/${STUDY}/series/${SERIES}`;
    expect(parseSeriesReference(url)).toEqual({
      baseUrl: 'http://127.0.0.1:8042/dicom-web',
      studyUid: STUDY,
      seriesUid: SERIES,
    });
    expect(parseSeriesReference(`${url}/`).baseUrl).toBe('http://127.0.0.1:8042/dicom-web');
    expect(parseSeriesReference(`  ${url}  `).seriesUid).toBe(SERIES);
  });

  it('reads a store at the host root and an instance URL', () => {
    const ref = parseSeriesReference(
      `https://pacs.example.org/studies/${STUDY}/series/${SERIES}/instances/${INSTANCE}`,
    );
    expect(ref).toEqual({
      baseUrl: 'https://pacs.example.org',
      studyUid: STUDY,
      seriesUid: SERIES,
      instanceUids: [INSTANCE],
    });
  });

  it('reads Google Healthcare URLs and the short projects/... form alike', () => {
    const full = `https://healthcare.googleapis.com/v1/${GOOGLE_STORE}/studies/${STUDY}/series/${SERIES}`;
    const expected = {
      baseUrl: `${GOOGLE_HEALTHCARE_API_BASE}/${GOOGLE_STORE}`,
      studyUid: STUDY,
      seriesUid: SERIES,
    };
    expect(parseSeriesReference(full)).toEqual(expected);
    expect(parseSeriesReference(`${GOOGLE_STORE}/studies/${STUDY}/series/${SERIES}`)).toEqual(expected);
    expect(parseSeriesReference(`/${GOOGLE_STORE}/studies/${STUDY}/series/${SERIES}`)).toEqual(expected);
  });

  it('reads base+study+series objects and drops repeated instance UIDs', () => {
    expect(
      parseSeriesReference({
        baseUrl: 'http://localhost:8042/dicom-web/',
        studyUid: STUDY,
        seriesUid: SERIES,
        instanceUids: [INSTANCE, INSTANCE, '1.2.3'],
      }),
    ).toEqual({
      baseUrl: 'http://localhost:8042/dicom-web',
      studyUid: STUDY,
      seriesUid: SERIES,
      instanceUids: [INSTANCE, '1.2.3'],
    });
  });

  it('round-trips through formatSeriesUrl', () => {
    const url = `http://127.0.0.1:8042/dicom-web/studies/${STUDY}/series/${SERIES}`;
    expect(formatSeriesUrl(parseSeriesReference(url))).toBe(url);
    const one = parseSeriesReference(`${url}/instances/${INSTANCE}`);
    expect(formatSeriesUrl(one)).toBe(url);
    expect(describeSeriesReference(one)).toBe(`${url}/instances/${INSTANCE}`);
  });

  it('refuses malformed UIDs, naming which one and why', () => {
    const base = 'http://127.0.0.1/dicom-web';
    expect(refusal(`${base}/studies/1.2.x/series/${SERIES}`).message).toMatch(
      /study UID "1\.2\.x" is not a DICOM UID/,
    );
    expect(refusal(`${base}/studies/${STUDY}/series/1..2`).message).toMatch(/series UID "1\.\.2"/);
    const long = `1.${'2'.repeat(64)}`;
    expect(refusal(`${base}/studies/${long}/series/${SERIES}`).message).toMatch(
      /66 characters long; a DICOM UID has at most 64/,
    );
    expect(
      refusal({ baseUrl: base, studyUid: STUDY, seriesUid: SERIES, instanceUids: ['1.2', 'abc'] }).message,
    ).toMatch(/instance UID #2 "abc"/);
    expect(refusal({ baseUrl: base, studyUid: STUDY, seriesUid: '' }).message).toMatch(
      /series UID is missing/,
    );
  });

  it('refuses paths that are not a series, and shows the accepted forms', () => {
    const err = refusal(`http://127.0.0.1/dicom-web/studies/${STUDY}`);
    expect(err.message).toMatch(/does not end in \/studies\/<study uid>\/series\/<series uid>/);
    expect(err.message).toContain('Accepted forms:');
    expect(err.message).toContain('projects/P/locations/L/datasets/D/dicomStores/S/dicomWeb');
    expect(refusal('').message).toMatch(/it is empty/);
    expect(refusal(`ftp://host/studies/${STUDY}/series/${SERIES}`).message).toMatch(
      /scheme ftp is not http or https/,
    );
    expect(refusal(`host/studies/${STUDY}/series/${SERIES}`).message).toMatch(/neither an http\(s\) URL/);
    expect(
      refusal(`https://healthcare.googleapis.com/v1/projects/p/studies/${STUDY}/series/${SERIES}`).message,
    ).toMatch(/must name the store as \/v1\/projects/);
    expect(
      refusal({ baseUrl: `http://h/dicom-web/studies/${STUDY}`, studyUid: STUDY, seriesUid: SERIES }).message,
    ).toMatch(/store root, without \/studies/);
    expect(
      refusal({ baseUrl: 'http://h', studyUid: STUDY, seriesUid: SERIES, instanceUids: [] }).message,
    ).toMatch(/instanceUids is empty/);
  });

  it('refuses credentials and queries in the URL without echoing the secret', () => {
    const withUser = refusal(`http://admin:s3cret-pw@127.0.0.1/dicom-web/studies/${STUDY}/series/${SERIES}`);
    expect(withUser.message).toMatch(/carries credentials/);
    expect(withUser.message).not.toContain('s3cret-pw');
    const withQuery = refusal(
      `http://127.0.0.1/dicom-web/studies/${STUDY}/series/${SERIES}?access_token=ya29.SECRET`,
    );
    expect(withQuery.message).toMatch(/query string/);
    expect(withQuery.message).not.toContain('ya29.SECRET');
    expect(JSON.stringify(withQuery.details)).not.toContain('ya29.SECRET');
  });
});

describe('isValidUid', () => {
  it('accepts digits in dot-separated components up to 64 characters', () => {
    expect(isValidUid('1.2.840.10008.1.2.4.50')).toBe(true);
    expect(isValidUid('2.25.1')).toBe(true);
    expect(isValidUid(`1.${'2'.repeat(62)}`)).toBe(true);
    expect(isValidUid(`1.${'2'.repeat(63)}`)).toBe(false);
    for (const bad of ['', '.1', '1.', '1..2', '1.2a', '1 2', '1/2']) expect(isValidUid(bad)).toBe(false);
  });
});
