/**
 * Vitest global setup: builds the fixture slides, starts one private Orthanc with DICOMweb for
 * the whole run, uploads the fixtures, and finds Redis. Tests read what they need with
 * `inject('services')` (see test/helpers/services.ts).
 */
import type { TestProject } from 'vitest/node';
import { ensureFixture, FIXTURES } from '../../scripts/dev-services/fixtures.js';
import { startOrthanc, uploadFolder } from '../../scripts/dev-services/orthanc.js';
import { startRedis } from './redis.js';
import type { FixtureSeries, TestServices } from './services.js';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const orthanc = await startOrthanc();
  const redis = await startRedis();
  const fixtures: Record<string, FixtureSeries> = {};
  try {
    for (const f of FIXTURES) {
      const dir = await ensureFixture(f);
      const ids = await uploadFolder(orthanc.url, dir);
      const tags = (await (
        await fetch(`${orthanc.url}/instances/${ids[0]}/simplified-tags`)
      ).json()) as Record<string, string>;
      fixtures[f.name] = {
        dir,
        studyUid: tags.StudyInstanceUID,
        seriesUid: tags.SeriesInstanceUID,
        seriesUrl: `${orthanc.dicomWebUrl}/studies/${tags.StudyInstanceUID}/series/${tags.SeriesInstanceUID}`,
        instanceCount: ids.length,
      };
    }
  } catch (err) {
    await orthanc.stop();
    await redis.stop();
    throw err;
  }
  const services: TestServices = {
    orthancUrl: orthanc.url,
    dicomWebUrl: orthanc.dicomWebUrl,
    redisUrl: redis.url,
    fixtures,
  };
  project.provide('services', services);
  return async () => {
    await orthanc.stop();
    await redis.stop();
  };
}
