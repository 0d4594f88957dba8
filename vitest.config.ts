import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // SPEC §13 reliability tests stop the shared services: their own sequential run (vitest.reliability.config.ts).
    exclude: ['test/reliability/**', 'node_modules/**'],
    globalSetup: ['test/helpers/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Integration tests share one MariaDB/Redis/RabbitMQ; each file isolates itself by database/vhost/db index.
    fileParallelism: true,
    maxWorkers: 2,
    reporters: ['default'],
  },
});
