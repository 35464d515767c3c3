import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Services (FerretDB, Redis, Mosquitto, stripe-mock, versitygw) start once for the run.
    globalSetup: ['test/harness/global-setup.ts'],
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Two cores: more workers only queue behind FerretDB.
    maxWorkers: 2,
    reporters: ['default'],
  },
})
