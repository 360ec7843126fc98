import { describe, expect, it } from 'vitest';
import { manifestCsv } from '../../src/api/batches-routes.js';
import { canonicalSource, parseSource } from '../../src/api/source-expansion.js';
import {
  formatStudyUrl,
  GOOGLE_HEALTHCARE_API_BASE,
  looksLikeStudyReference,
  parseAllowList,
  parseSearchSpec,
  parseStudyReference,
  SEARCH_FILTER_KEYS,
} from '../../src/dicomweb/index.js';
import { PathembedError } from '../../src/errors.js';
import { batchIdFor } from '../../src/queue/batch-record.js';
import { storeAsking } from '../../src/queue/store-pause.js';

const STUDY = '1.2.276.0.7230010.3.1.2.8323328.12053.1795923530.681923';
const SERIES = '1.2.276.0.7230010.3.1.3.8323328.12053.1795923530.681924';
const GOOGLE_STORE = 'projects/my-proj/locations/us-central1/datasets/ds1/dicomStores/store-a/dicomWeb';
const LIMITS = { defaultLimit: 1000, maxLimit: 5000 };
const CONFIG = { PATHEMBED_MAX_BATCH_SLIDES: 5000, PATHEMBED_SEARCH_DEFAULT_LIMIT: 1000 };

function caught(fn: () => unknown): PathembedError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(PathembedError);
    return err as PathembedError;
  }
  throw new Error('expected a refusal');
}

describe('study references', () => {
  it('reads a DICOMweb study URL, the Google URL and the Google short form', () => {
    expect(parseStudyReference(`http://127.0.0.1:8042/dicom-web/studies/${STUDY}/`)).toEqual({
      baseUrl: 'http://127.0.0.1:8042/dicom-web',
      studyUid: STUDY,
    });
    const google = parseStudyReference(`${GOOGLE_STORE}/studies/${STUDY}`);
    expect(google.baseUrl).toBe(`${GOOGLE_HEALTHCARE_API_BASE}/${GOOGLE_STORE}`);
    expect(parseStudyReference(`${GOOGLE_HEALTHCARE_API_BASE}/${GOOGLE_STORE}/studies/${STUDY}`)).toEqual(
      google,
    );
    expect(parseStudyReference({ baseUrl: 'https://pacs.example/dicomweb/', studyUid: STUDY })).toEqual({
      baseUrl: 'https://pacs.example/dicomweb',
      studyUid: STUDY,
    });
    expect(formatStudyUrl(google)).toBe(`${GOOGLE_HEALTHCARE_API_BASE}/${GOOGLE_STORE}/studies/${STUDY}`);
  });

  it('tells studies from series', () => {
    expect(looksLikeStudyReference(`http://h/dicom-web/studies/${STUDY}`)).toBe(true);
    expect(looksLikeStudyReference(`${GOOGLE_STORE}/studies/${STUDY}/`)).toBe(true);
    expect(looksLikeStudyReference(`http://h/dicom-web/studies/${STUDY}/series/${SERIES}`)).toBe(false);
  });

  it('refuses bad study references with the study forms and the problem', () => {
    const badUid = caught(() => parseStudyReference('http://h/dicom-web/studies/1.2.abc'));
    expect(badUid.code).toBe('INVALID_SERIES_REFERENCE');
    expect(badUid.message).toContain('Invalid study reference');
    expect(badUid.message).toContain('is not a DICOM UID');
    expect(badUid.message).toContain('<base>/studies/<study uid>');
    const creds = caught(() => parseStudyReference(`http://u:secret@h/dicom-web/studies/${STUDY}`));
    expect(creds.message).toContain('credentials');
    expect(creds.message).not.toContain('secret');
    const google = caught(() =>
      parseStudyReference(`https://healthcare.googleapis.com/v1/projects/p/studies/${STUDY}`),
    );
    expect(google.message).toContain('dicomStores/S/dicomWeb');
    expect(
      caught(() => parseStudyReference({ baseUrl: `http://h/studies/${STUDY}`, studyUid: STUDY })).message,
    ).toContain('store root');
  });
});

describe('search sources', () => {
  it('accepts keywords and tags, sorts them and fills the default limit', () => {
    const spec = parseSearchSpec(
      {
        store: 'http://127.0.0.1:8042/dicom-web/',
        filters: { StudyDate: '20240101-20241231', '00100020': 'P-1', '(0040,0512)': 'SLIDE-9' },
      },
      LIMITS,
    );
    expect(spec).toEqual({
      baseUrl: 'http://127.0.0.1:8042/dicom-web',
      filters: { ContainerIdentifier: 'SLIDE-9', PatientID: 'P-1', StudyDate: '20240101-20241231' },
      limit: 1000,
    });
    expect(Object.keys(spec.filters)).toEqual(['ContainerIdentifier', 'PatientID', 'StudyDate']);
  });

  it('refuses a key off the allow-list, naming it and listing the allowed ones', () => {
    const err = caught(() =>
      parseSearchSpec({ store: 'http://h/dw', filters: { PatientsAge: '040Y' } }, LIMITS),
    );
    expect(err.code).toBe('INVALID_SEARCH_FILTER');
    expect(err.message).toContain('"PatientsAge"');
    for (const key of Object.keys(SEARCH_FILTER_KEYS)) expect(err.message).toContain(key);
    expect(err.details.key).toBe('PatientsAge');
    expect(err.details.allowed).toEqual(Object.keys(SEARCH_FILTER_KEYS));
    // A tag off the list, and Modality (always SM, not the caller's to change), are refused too.
    expect(
      caught(() => parseSearchSpec({ store: 'http://h/dw', filters: { '00101010': '040Y' } }, LIMITS)).details
        .key,
    ).toBe('00101010');
    expect(
      caught(() => parseSearchSpec({ store: 'http://h/dw', filters: { Modality: 'CT' } }, LIMITS)).code,
    ).toBe('INVALID_SEARCH_FILTER');
  });

  it('refuses empty or twice-given values, a bad limit and a store below the root', () => {
    expect(
      caught(() => parseSearchSpec({ store: 'http://h/dw', filters: { PatientID: ' ' } }, LIMITS)).code,
    ).toBe('INVALID_SEARCH_FILTER');
    expect(
      caught(() =>
        parseSearchSpec({ store: 'http://h/dw', filters: { PatientID: 'a', '00100020': 'b' } }, LIMITS),
      ).message,
    ).toContain('given twice');
    const limit = caught(() => parseSearchSpec({ store: 'http://h/dw', limit: 5001 }, LIMITS));
    expect(limit.code).toBe('INVALID_ARGUMENT');
    expect(limit.message).toContain('5000');
    expect(
      caught(() => parseSearchSpec({ store: `http://h/dw/studies/${STUDY}` }, LIMITS)).message,
    ).toContain('store root');
    expect(caught(() => parseSearchSpec({ store: 'ftp://h/dw' }, LIMITS)).code).toBe(
      'INVALID_SERIES_REFERENCE',
    );
  });
});

describe('batch sources and ids', () => {
  const allow = parseAllowList(['http://127.0.0.1']);

  it('parses each kind and checks the allow-list, naming the source', () => {
    expect(parseSource(`http://127.0.0.1:8042/dw/studies/${STUDY}`, 0, allow, CONFIG).kind).toBe('study');
    expect(
      parseSource(`http://127.0.0.1:8042/dw/studies/${STUDY}/series/${SERIES}`, 0, allow, CONFIG).kind,
    ).toBe('series');
    expect(parseSource({ baseUrl: 'http://127.0.0.1:8042/dw', studyUid: STUDY }, 0, allow, CONFIG).kind).toBe(
      'study',
    );
    expect(
      parseSource({ search: { store: 'http://127.0.0.1:8042/dw', filters: {} } }, 0, allow, CONFIG).kind,
    ).toBe('search');
    const outside = caught(() => parseSource(`http://10.0.0.1/dw/studies/${STUDY}`, 3, allow, CONFIG));
    expect(outside.code).toBe('UNAPPROVED_DICOM_STORE');
    expect(outside.message).toMatch(/^sources\.3: /);
    const filter = caught(() =>
      parseSource({ search: { store: 'http://127.0.0.1/dw', filters: { Bogus: 'x' } } }, 1, allow, CONFIG),
    );
    expect(filter.message).toMatch(/^sources\.1: search\.filters: "Bogus"/);
  });

  it('gives equal content the same id whatever the spelling, and another key another id', () => {
    const a = canonicalSource(
      parseSource(
        { search: { store: 'http://127.0.0.1/dw/', filters: { '00100020': 'P' } } },
        0,
        allow,
        CONFIG,
      ),
    );
    const b = canonicalSource(
      parseSource(
        { search: { store: 'http://127.0.0.1/dw', filters: { PatientID: 'P' } } },
        0,
        allow,
        CONFIG,
      ),
    );
    expect(a).toEqual(b);
    const id = batchIdFor({ sources: [a] }, 'k1');
    expect(id).toMatch(/^b[0-9a-f]{32}$/);
    expect(batchIdFor({ sources: [b] }, 'k1')).toBe(id);
    expect(batchIdFor({ sources: [b] }, 'k2')).not.toBe(id);
  });
});

describe('manifest CSV', () => {
  it('writes one row per slide, quoting what needs it', () => {
    const csv = manifestCsv([
      {
        jobId: 'j1',
        state: 'completed',
        studyUid: '1.2',
        seriesUid: '1.3',
        seriesUrl: 'http://h/dw/studies/1.2/series/1.3',
        patches: 12,
        errorCode: null,
        files: [
          { output: 'json', bytes: 34, sha256: 'ab'.repeat(32) },
          { output: 'hdf5', bytes: 56, sha256: 'cd'.repeat(32) },
        ],
      },
      {
        jobId: 'j2',
        state: 'failed',
        studyUid: '1.2',
        seriesUid: '1.4',
        seriesUrl: 'http://h/dw/studies/1.2/series/1.4,"x"',
        patches: null,
        errorCode: 'NOT_A_WSI',
        files: [],
      },
    ]);
    const lines = csv.trimEnd().split('\r\n');
    expect(lines[0]).toBe(
      'job_id,state,study_uid,series_uid,series_url,patches,error_code,json_url,json_bytes,json_sha256,sr_url,sr_bytes,sr_sha256,ann_url,ann_bytes,ann_sha256,hdf5_url,hdf5_bytes,hdf5_sha256,parquet_url,parquet_bytes,parquet_sha256',
    );
    expect(lines[1]).toBe(
      `j1,completed,1.2,1.3,http://h/dw/studies/1.2/series/1.3,12,,/v1/jobs/j1/result,34,${'ab'.repeat(32)},,,,,,,/v1/jobs/j1/result?format=hdf5,56,${'cd'.repeat(32)},,,`,
    );
    expect(lines[2]).toBe(
      `j2,failed,1.2,1.4,"http://h/dw/studies/1.2/series/1.4,""x""",,NOT_A_WSI${','.repeat(15)}`,
    );
  });
});

describe('the store a 429 came from', () => {
  const err = (url?: string) =>
    new PathembedError('DICOMWEB_UNAVAILABLE', 'x', url ? { url, status: 429 } : { status: 429 });
  it('is the job store the failed request went to, else the job’s first store', () => {
    const stores = ['http://a:1/dicom-web', 'http://b:2/dw'];
    expect(storeAsking(err('http://b:2/dw/studies/1/series/2/instances/3/frames/1'), stores)).toBe(
      'http://b:2/dw',
    );
    expect(storeAsking(err('http://a:1/dicom-web/studies/1'), stores)).toBe('http://a:1/dicom-web');
    // A prefix of the base URL's path is not the store: /dw-other is another store.
    expect(storeAsking(err('http://b:2/dw-other/studies/1'), stores)).toBe('http://a:1/dicom-web');
    expect(storeAsking(err(), stores)).toBe('http://a:1/dicom-web');
    expect(storeAsking(err('http://b:2/dw/x'), [])).toBeUndefined();
  });
});
