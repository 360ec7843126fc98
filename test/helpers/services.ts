/** What global setup hands the tests: service URLs and the uploaded fixture series. */
import { inject } from 'vitest';

export interface FixtureSeries {
  /** Folder of the fixture's Part 10 files (for local-source tests). */
  dir: string;
  studyUid: string;
  seriesUid: string;
  /** DICOMweb series URL in the test Orthanc. */
  seriesUrl: string;
  instanceCount: number;
}

export interface TestServices {
  orthancUrl: string;
  dicomWebUrl: string;
  redisUrl: string;
  fixtures: Record<string, FixtureSeries>;
}

declare module 'vitest' {
  export interface ProvidedContext {
    services: TestServices;
  }
}

export function services(): TestServices {
  return inject('services');
}

export function fixture(name: string): FixtureSeries {
  const f = inject('services').fixtures[name];
  if (!f) throw new Error(`No fixture '${name}': add it to FIXTURES in test/helpers/fixtures.ts`);
  return f;
}
