// The environment of a child daemon on a test's isolated services (its database, vhost and Redis DB index),
// with ephemeral listeners; overrides on top.

import { testRedisConfig } from '../../helpers/services.js';
import type { TestServices } from '../../helpers/test-app.js';

export function daemonEnv(services: TestServices, overrides: Record<string, string> = {}): Record<string, string> {
  const db = services.database.config;
  const redis = testRedisConfig();
  return {
    POD_IP: '127.0.0.1',
    AUDIOSOCKET_LISTEN_ADDRESS: '127.0.0.1:0',
    HTTP_LISTEN_ADDRESS: '127.0.0.1:0',
    PROMETHEUS_LISTEN_ADDRESS: '127.0.0.1:0',
    DATABASE_DSN: `mysql://${db.user}@${db.host}:${db.port}/${db.database}`,
    REDIS_ADDRESS: `${redis.host}:${redis.port}`,
    REDIS_DATABASE: String(redis.database),
    RABBITMQ_ADDRESS: services.rabbitUrl,
    ...overrides,
  };
}
