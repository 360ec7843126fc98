import { defineConfig } from 'vitest/config';

/**
 * Two tiers. `unit` needs nothing but Node and the npm packages: no Orthanc, no Redis, no external
 * programs. `integration` talks to a real Orthanc (started once for the run by global setup, with
 * the fixture slides uploaded), a real Redis and the Debian tools (dcmtk, dicom3tools, vips,
 * orthanc-wsi). `npm run test:unit` runs the first; `npm test` runs both.
 */
export default defineConfig({
  test: {
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Two cores: files run in parallel forks, but heavy inference tests limit their own threads.
    pool: 'forks',
    maxWorkers: 2,
    projects: [
      { extends: true, test: { name: 'unit', include: ['test/unit/**/*.test.ts'] } },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          globalSetup: ['test/helpers/global-setup.ts'],
        },
      },
    ],
  },
});
