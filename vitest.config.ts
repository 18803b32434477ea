import { defineConfig } from 'vitest/config';

export default defineConfig({
  // One graphql instance: Pothos and yoga load the CommonJS build, so the tests must too.
  resolve: { alias: { graphql: 'graphql/index.js' } },
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Two cores: files run two at a time, each on its own database.
    maxWorkers: 2,
  },
});
