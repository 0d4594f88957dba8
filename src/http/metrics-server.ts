// The Prometheus scrape endpoint (PROMETHEUS_LISTEN_ADDRESS + PROMETHEUS_ENDPOINT), started first at boot.

import { createServer, type Server } from 'node:http';
import type { HostPort } from '../config.js';
import { TrackedServer } from './tracked-server.js';
import type { Metrics } from '../metrics.js';

export class MetricsServer {
  private readonly server: Server;
  private readonly tracked: TrackedServer;

  constructor(metrics: Metrics, endpoint: string) {
    this.server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (path !== endpoint || (req.method !== 'GET' && req.method !== 'HEAD')) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end(`metrics are at ${endpoint}\n`);
        return;
      }
      metrics.registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text);
        },
        (err: unknown) => {
          res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${String(err)}\n`);
        },
      );
    });
    this.tracked = new TrackedServer(this.server);
  }

  listen(addr: HostPort): Promise<HostPort> {
    return this.tracked.listen(addr);
  }

  /** Stops listening and drops open connections. Idempotent. */
  close(): Promise<void> {
    return this.tracked.close();
  }
}
