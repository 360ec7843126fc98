import { describe, expect, it } from 'vitest';
import { fixture, services } from '../helpers/services.js';

// Guards the harness itself: each fixture reached Orthanc and is served over DICOMweb.
describe('test services', () => {
  it('serves every CMU variant as a WSI series over QIDO-RS', async () => {
    for (const name of ['cmu-jpeg', 'cmu-jpeg2000', 'cmu-raw', 'cmu-jpeg-concat']) {
      const f = fixture(name);
      const res = await fetch(`${f.seriesUrl}/instances`, { headers: { Accept: 'application/dicom+json' } });
      expect(res.status).toBe(200);
      const instances = (await res.json()) as unknown[];
      expect(instances.length).toBe(f.instanceCount);
    }
    // the concatenation splits level 0 into several instances, so it has more than the 4 levels
    expect(fixture('cmu-jpeg-concat').instanceCount).toBeGreaterThan(4);
    expect(fixture('cmu-jpeg').instanceCount).toBe(4);
  });

  it('has a reachable Redis', async () => {
    expect(services().redisUrl).toMatch(/^redis:\/\//);
  });
});
