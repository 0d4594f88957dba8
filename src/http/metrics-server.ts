// The Prometheus scrape endpoint (PROMETHEUS_LISTEN_ADDRESS + PROMETHEUS_ENDPOINT), started first at boot.

import { createServer, type Server } from 'node:http';
import type { Socket } from 'node:net';
import type { HostPort } from '../config.js';
import type { Metrics } from '../metrics.js';

export class MetricsServer {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private closed: Promise<void> | null = null;

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
    this.server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
    });
  }

  async listen(addr: HostPort): Promise<HostPort> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(addr.port, addr.host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    const a = this.server.address();
    return typeof a === 'object' && a !== null ? { host: a.address, port: a.port } : addr;
  }

  close(): Promise<void> {
    this.closed ??= new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      for (const s of this.sockets) s.destroy();
    });
    return this.closed;
  }
}
