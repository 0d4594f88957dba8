// Listening and closing for the daemon's HTTP listeners: the bound address (port 0 in tests) and a close that
// also drops open keep-alive connections, so shutdown never waits on an idle client.

import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import type { HostPort } from '../config.js';

export class TrackedServer {
  private readonly sockets = new Set<Socket>();
  private closed: Promise<void> | null = null;

  constructor(readonly server: Server) {
    server.on('connection', (s: Socket) => {
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

  /** Stops listening and drops open connections. Idempotent. */
  close(): Promise<void> {
    this.closed ??= new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      for (const s of this.sockets) s.destroy();
    });
    return this.closed;
  }
}
