// A RabbitMQ vhost per test file (DESIGN.md, test isolation): SPEC §4's fixed queue names never collide between
// runs. rabbitmqctl takes 1–2 s per call, so tests should call these sparingly.

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';

const run = promisify(execFile);

async function rabbitmqctl(...args: string[]): Promise<void> {
  try {
    await run('rabbitmqctl', args, { timeout: 30_000 });
  } catch (err) {
    const detail = err instanceof Error ? err.message : String(err);
    throw new Error(`rabbitmqctl ${args.join(' ')} failed (is RabbitMQ running? rabbitmq-server -detached): ${detail}`, {
      cause: err,
    });
  }
}

export interface TestVhost {
  url: string;
  vhost: string;
  drop(): Promise<void>;
}

export async function createTestVhost(): Promise<TestVhost> {
  const vhost = `pipecat_test_${randomBytes(6).toString('hex')}`;
  await rabbitmqctl('add_vhost', vhost);
  await rabbitmqctl('set_permissions', '-p', vhost, 'guest', '.*', '.*', '.*');
  let dropped: Promise<void> | undefined;
  return {
    url: `amqp://guest:guest@127.0.0.1:5672/${encodeURIComponent(vhost)}`,
    vhost,
    drop: () => (dropped ??= rabbitmqctl('delete_vhost', vhost)),
  };
}

/** Closes every client connection of the vhost from the server side, as a broker restart would. */
export function closeAllConnections(vhost: string, reason = 'test'): Promise<void> {
  return rabbitmqctl('close_all_connections', '-p', vhost, reason);
}
