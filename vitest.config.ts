import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/helpers/global-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    // Two cores: files run in parallel forks, but heavy inference tests limit their own threads.
    pool: 'forks',
    maxWorkers: 2,
  },
});
