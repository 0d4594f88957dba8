import { defineConfig } from 'vitest/config';

// SPEC §13 as tests (test/reliability): fuzzing, RPC abuse, dependency outages, provider faults, leaks, scale-out,
// shutdown and secrets. They stop and start the real MariaDB, Redis and RabbitMQ and measure memory and frame
// timing, so they run one file at a time and never alongside the main suite (`npm test` runs them after it).
// RELIABILITY_SCALE=full (npm run test:reliability) runs the full counts; anything else the short ones.
export default defineConfig({
  test: {
    include: ['test/reliability/**/*.test.ts'],
    globalSetup: ['test/helpers/global-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    fileParallelism: false,
    maxWorkers: 1,
    // Heap figures are taken after a forced full GC.
    execArgv: ['--expose-gc'],
    reporters: ['default'],
  },
});
