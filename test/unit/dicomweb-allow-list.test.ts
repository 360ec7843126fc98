import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { assertApprovedStore, isApprovedStore, parseAllowList } from '../../src/dicomweb/index.js';
import { PathembedError } from '../../src/errors.js';

const DEFAULTS = parseAllowList(loadConfig({}).PATHEMBED_ALLOWED_STORES);

function approved(url: string, list = DEFAULTS): boolean {
  return isApprovedStore(url, list);
}

describe('store allow-list', () => {
  it('allows every port of a host listed without a port', () => {
    expect(approved('http://127.0.0.1:8042/dicom-web')).toBe(true);
    expect(approved('http://127.0.0.1/dicom-web')).toBe(true);
    expect(approved('http://localhost:1/x')).toBe(true);
    expect(approved('http://[::1]:8042/dicom-web')).toBe(true);
  });

  it('holds a listed port, the default port included', () => {
    const list = parseAllowList(['http://127.0.0.1:8042', 'https://pacs.example.org:443/dicom-web']);
    expect(approved('http://127.0.0.1:8042/dicom-web', list)).toBe(true);
    expect(approved('http://127.0.0.1:8043/dicom-web', list)).toBe(false);
    expect(approved('http://127.0.0.1/dicom-web', list)).toBe(false);
    expect(approved('https://pacs.example.org/dicom-web/studies', list)).toBe(true);
    expect(approved('https://pacs.example.org:8443/dicom-web', list)).toBe(false);
  });

  it('compares the scheme', () => {
    expect(approved('https://127.0.0.1/dicom-web')).toBe(false);
  });

  it('refuses lookalike hosts and userinfo tricks', () => {
    expect(approved('http://127.0.0.1.evil.com/dicom-web')).toBe(false);
    expect(approved('http://127.0.0.1@evil.com/dicom-web')).toBe(false);
    expect(approved('http://evil.com@127.0.0.1/dicom-web')).toBe(false); // credentials are never allowed
    expect(approved('http://user:pw@127.0.0.1/dicom-web')).toBe(false);
    expect(approved('http://localhost.evil.com')).toBe(false);
    expect(approved('http://evil.com/http://127.0.0.1')).toBe(false);
    expect(approved('http://[::1].evil.com')).toBe(false);
    expect(approved('not a url')).toBe(false);
  });

  it('matches path prefixes at segment boundaries, after resolving dot segments', () => {
    const list = parseAllowList(['https://healthcare.googleapis.com/v1/projects/good']);
    expect(approved('https://healthcare.googleapis.com/v1/projects/good/locations/x/datasets/d', list)).toBe(
      true,
    );
    expect(approved('https://healthcare.googleapis.com/v1/projects/good', list)).toBe(true);
    expect(approved('https://healthcare.googleapis.com/v1/projects/goodbye/locations/x', list)).toBe(false);
    expect(approved('https://healthcare.googleapis.com/v1/projects/good/../evil/locations/x', list)).toBe(
      false,
    );
    expect(approved('https://healthcare.googleapis.com/v1/projects/good/%2e%2e/evil', list)).toBe(false);
  });

  it('throws UNAPPROVED_DICOM_STORE naming the URL (without query or credentials) and the fix', () => {
    let err: unknown;
    try {
      assertApprovedStore('http://10.0.0.5:80/latest/meta-data?token=abc', ['http://127.0.0.1']);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PathembedError);
    const e = err as PathembedError;
    expect(e.code).toBe('UNAPPROVED_DICOM_STORE');
    expect(e.message).toContain('http://10.0.0.5/latest/meta-data');
    expect(e.message).not.toContain('token=abc');
    expect(e.message).toContain('PATHEMBED_ALLOWED_STORES=http://127.0.0.1');
    expect(() => assertApprovedStore('http://127.0.0.1:9/dicom-web', ['http://127.0.0.1'])).not.toThrow();
    expect(() => assertApprovedStore('http://127.0.0.1:9/dicom-web', [])).toThrow(/\(empty\)/);
  });

  it('refuses malformed entries with CONFIG_INVALID', () => {
    for (const entry of ['127.0.0.1', 'ftp://host', 'http://u:p@host', 'http://host/?q=1']) {
      expect(() => parseAllowList([entry])).toThrow(PathembedError);
      try {
        parseAllowList([entry]);
      } catch (e) {
        expect((e as PathembedError).code).toBe('CONFIG_INVALID');
        expect((e as PathembedError).message).toContain(JSON.stringify(entry));
      }
    }
  });
});
