// Starts a whole daemon (App) in the test process on isolated services: its own MariaDB database, RabbitMQ
// vhost and Redis DB index, and ephemeral ports. Everything is released by stop().

import { App, type AppOptions } from '../../src/app.js';
import { loadConfig, type Config } from '../../src/config.js';
import { Metrics } from '../../src/metrics.js';
import { createTestVhost } from './rabbit.js';
import { createTestDatabase, testLogger, testRedisConfig } from './services.js';

export interface TestApp {
  app: App;
  config: Config;
  metrics: Metrics;
  rabbitUrl: string;
  vhost: string;
  /** Stops the app (immediate shutdown) and drops the database and vhost. */
  stop(): Promise<void>;
}

export interface TestServices {
  rabbitUrl: string;
  vhost: string;
  database: Awaited<ReturnType<typeof createTestDatabase>>;
  dropAll(): Promise<void>;
}

/** A database and a vhost for one test file; several apps may share them (scale-out tests). */
export async function createTestServices(): Promise<TestServices> {
  const [database, rabbit] = await Promise.all([createTestDatabase(), createTestVhost()]);
  return {
    rabbitUrl: rabbit.url,
    vhost: rabbit.vhost,
    database,
    dropAll: async () => {
      await Promise.allSettled([database.drop(), rabbit.drop()]);
    },
  };
}

/** The configuration of a test daemon: env-style overrides on top of isolated services and port 0 listeners. */
export function testConfig(services: TestServices, env: Record<string, string> = {}): Config {
  const redis = testRedisConfig();
  const db = services.database.config;
  return loadConfig({
    env: {
      POD_IP: '127.0.0.1',
      AUDIOSOCKET_LISTEN_ADDRESS: '127.0.0.1:0',
      HTTP_LISTEN_ADDRESS: '127.0.0.1:0',
      PROMETHEUS_LISTEN_ADDRESS: '127.0.0.1:0',
      DATABASE_DSN: `mysql://${db.user}@${db.host}:${db.port}/${db.database}`,
      REDIS_ADDRESS: `${redis.host}:${redis.port}`,
      REDIS_DATABASE: String(redis.database),
      RABBITMQ_ADDRESS: services.rabbitUrl,
      LOG_LEVEL: 'silent',
      // Headroom-based refusal would make tests on a loaded machine flaky; admission.test.ts covers it.
      ADMISSION_CONTROL: 'off',
      ...env,
    },
  });
}

export async function startTestApp(
  services: TestServices,
  env: Record<string, string> = {},
  options: AppOptions = {},
): Promise<TestApp> {
  const config = testConfig(services, env);
  const metrics = options.metrics ?? new Metrics({ defaultMetrics: false });
  const app = await App.start(config, testLogger(), { ...options, metrics });
  return {
    app,
    config,
    metrics,
    rabbitUrl: services.rabbitUrl,
    vhost: services.vhost,
    stop: () => app.close(),
  };
}
