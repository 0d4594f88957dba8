import { defineConfig } from 'vitest/config';

// Two projects, run in this order by `npm test` (then the reliability suite, vitest.reliability.config.ts):
// - unit: pure logic and in-process programs; needs no MariaDB, Redis or RabbitMQ, so no service check.
// - integration: everything that crosses a process boundary, on the real services; global-setup.ts fails the run
//   at once, naming the service, when one is down.
// SPEC §13 reliability tests stop the shared services: their own sequential run, never alongside these.
export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Integration files share one MariaDB/Redis/RabbitMQ; each isolates itself by database/vhost/db index.
    fileParallelism: true,
    maxWorkers: 2,
    reporters: ['default'],
    projects: [
      {
        extends: true,
        test: { name: 'unit', include: ['test/unit/**/*.test.ts'] },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts', 'test/browser/**/*.test.ts'],
          globalSetup: ['test/helpers/global-setup.ts'],
        },
      },
    ],
  },
});
