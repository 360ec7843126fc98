import { defineConfig } from 'vitest/config';

/**
 * Multi-process tests: each starts the API and several worker processes that load the model on
 * two cores, or a Chromium (the web page's tests). Run beside each other (or beside other heavy
 * files) they starve one another and their bounds measure the machine, not the code, so they run
 * one at a time, after the rest.
 */
const MULTI_PROCESS_TESTS = [
  'test/integration/queue-workers.test.ts',
  'test/integration/fault-soak.test.ts',
  'test/integration/scale-cohort.test.ts',
  'test/integration/ui-local-viewer.test.ts',
  'test/integration/ui-service.test.ts',
];

/**
 * Three tiers. `unit` needs nothing but Node and the npm packages: no Orthanc, no Redis, no
 * external programs. `integration` talks to a real Orthanc (started once for the run by global
 * setup, with the fixture slides uploaded), a real Redis and the Debian tools (dcmtk,
 * dicom3tools, vips, orthanc-wsi). `processes` is integration tests of whole service processes,
 * run one file at a time once the others are done. `npm run test:unit` runs the first; `npm test`
 * runs all three.
 */
export default defineConfig({
  test: {
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Two cores: files run in parallel forks, but heavy inference tests limit their own threads.
    pool: 'forks',
    maxWorkers: 2,
    projects: [
      {
        extends: true,
        test: { name: 'unit', include: ['test/unit/**/*.test.ts'], sequence: { groupOrder: 0 } },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          exclude: MULTI_PROCESS_TESTS,
          globalSetup: ['test/helpers/global-setup.ts'],
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'processes',
          include: MULTI_PROCESS_TESTS,
          globalSetup: ['test/helpers/global-setup.ts'],
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
