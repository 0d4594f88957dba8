// The daemon's HTTP listener: /healthz (the process is up) and /readyz (MySQL, Redis and RabbitMQ reachable).
// The WebSocket media/monitor endpoint (SPEC §9) and the operator console plug into it (onUpgrade, onRequest).

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { HostPort } from '../config.js';
import { TrackedServer } from './tracked-server.js';
import { messageOf } from '../errors.js';

/** One dependency checked by /readyz: resolves when reachable, rejects with the reason otherwise. */
export type ReadinessCheck = () => Promise<void>;

export type UpgradeHandler = (req: IncomingMessage, socket: Socket, head: Buffer) => void;

/** More routes (the console): resolves true when it answered the request, false to fall through to 404. */
export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => Promise<boolean>;

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** Runs a check with a deadline so a hung dependency cannot hang /readyz. */
async function check(fn: ReadinessCheck, timeoutMs: number): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      fn(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    return 'ok';
  } catch (err) {
    return messageOf(err);
  } finally {
    clearTimeout(timer);
  }
}

export class HttpServer {
  private readonly server: Server;
  private readonly tracked: TrackedServer;
  private upgradeHandler: UpgradeHandler | null = null;
  private requestHandler: RequestHandler | null = null;

  /** `modes`: which service (or embedded part) backs each part, shown by /readyz. */
  constructor(
    private readonly checks: Readonly<Record<string, ReadinessCheck>>,
    private readonly modes: Readonly<Record<string, string>> = {},
  ) {
    this.server = createServer((req, res) => {
      this.route(req, res).catch((err: unknown) => {
        if (!res.headersSent) sendJson(res, 500, { error: messageOf(err) });
        else res.destroy();
      });
    });
    this.tracked = new TrackedServer(this.server);
    this.server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      if (this.upgradeHandler === null) {
        socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n');
        return;
      }
      this.upgradeHandler(req, socket, head);
    });
    this.server.on('clientError', (_err, socket: Socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\n\r\n');
    });
  }

  onUpgrade(handler: UpgradeHandler): void {
    this.upgradeHandler = handler;
  }

  onRequest(handler: RequestHandler): void {
    this.requestHandler = handler;
  }

  listen(addr: HostPort): Promise<HostPort> {
    return this.tracked.listen(addr);
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    const probe = path === '/healthz' || path === '/readyz';
    if (!probe && this.requestHandler !== null && (await this.requestHandler(req, res))) return;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendJson(res, 405, { error: 'method not allowed' });
      return;
    }
    if (path === '/healthz') {
      sendJson(res, 200, { status: 'ok' });
      return;
    }
    if (path === '/readyz') {
      const names = Object.keys(this.checks);
      const results = await Promise.all(names.map((n) => check(this.checks[n] as ReadinessCheck, 2000)));
      const body: Record<string, string> = {};
      names.forEach((n, i) => (body[n] = results[i] ?? 'unknown'));
      const ready = results.every((r) => r === 'ok');
      const modes = Object.keys(this.modes).length > 0 ? { modes: this.modes } : {};
      sendJson(res, ready ? 200 : 503, { status: ready ? 'ready' : 'not ready', checks: body, ...modes });
      return;
    }
    sendJson(res, 404, { error: `no route for ${path ?? ''}` });
  }

  /** Stops listening and drops open connections. Idempotent. */
  close(): Promise<void> {
    return this.tracked.close();
  }
}
