// Listening and closing for the daemon's HTTP listeners: the bound address (port 0 in tests), a close that also
// drops open keep-alive connections so shutdown never waits on an idle client, and the per-listener connection cap.

import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import type { HostPort } from '../config.js';

/**
 * How many connections a listener keeps open. Past `max` a few more are taken so that health probes still get an
 * answer (they are marked over the cap and closed after one response); past that they are closed at once.
 */
export interface ConnectionCap {
  max: number;
  /** A connection was refused or marked over the cap (for a counter and a rate-limited log line). */
  onRefused?: () => void;
  /** The listener failed to accept (EMFILE and the like). */
  onAcceptError?: (err: NodeJS.ErrnoException) => void;
}

/** Connections taken beyond the cap so /healthz and /readyz still answer when every slot is busy. */
export const PROBE_HEADROOM = 8;

export class TrackedServer {
  private readonly sockets = new Set<Socket>();
  private readonly overCap = new WeakSet<Socket>();
  private closed: Promise<void> | null = null;

  constructor(
    readonly server: Server,
    private readonly cap?: ConnectionCap,
  ) {
    server.on('connection', (s: Socket) => {
      if (cap !== undefined && this.sockets.size >= cap.max) {
        cap.onRefused?.();
        if (this.sockets.size >= cap.max + PROBE_HEADROOM) {
          s.destroy();
          return;
        }
        this.overCap.add(s);
      }
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
    });
    // After listen, accept failures (EMFILE) arrive here; without a listener they would end the process.
    server.on('error', (err: NodeJS.ErrnoException) => {
      if (server.listening) cap?.onAcceptError?.(err);
    });
  }

  /** Open connections, those over the cap included. */
  get connections(): number {
    return this.sockets.size;
  }

  /** True for a connection taken past the cap: it gets health probes only. */
  isOverCap(socket: Socket): boolean {
    return this.overCap.has(socket);
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
