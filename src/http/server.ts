// The daemon's HTTP listener: /healthz (the process is up) and /readyz (MySQL, Redis and RabbitMQ reachable).
// The WebSocket media/monitor endpoint (SPEC §9) and the operator console plug into it (onUpgrade, onRequest).

import { STATUS_CODES, createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { HostPort } from '../config.js';
import { TrackedServer, type ConnectionCap } from './tracked-server.js';
import { ConfigError, messageOf } from '../errors.js';
import { isLoopbackHost, type Refusal, type RequestPolicy } from './auth.js';

/** Larger request heads are answered 431: the console's longest legitimate request is far below this. */
export const MAX_HEADER_BYTES = 16 * 1024;

/** Sent with every response: the console's URL may carry ?token=, so it never leaves in a Referer. */
const BASE_HEADERS = { 'referrer-policy': 'no-referrer', 'x-content-type-options': 'nosniff' } as const;

/**
 * A listener other than loopback serves the API and the WebSockets to the network: without a token anyone who
 * can reach it could create, monitor and steer calls. Refuse to start rather than run open.
 */
export function assertHttpExposure(listen: HostPort, token: string): void {
  if (token !== '' || isLoopbackHost(listen.host)) return;
  throw new ConfigError(
    `HTTP_LISTEN_ADDRESS ${listen.host}:${listen.port} is reachable from other machines but HTTP_AUTH_TOKEN is not set: ` +
      'set HTTP_AUTH_TOKEN (a long random secret) or listen on 127.0.0.1',
  );
}

export interface HttpServerOptions {
  /** Host allow-list and Origin rule; without one every request is taken (unit tests of routes). */
  policy?: RequestPolicy;
  /** Connections beyond the cap are answered only on /healthz and /readyz, then closed. */
  cap?: ConnectionCap;
}

/** One dependency checked by /readyz: resolves when reachable, rejects with the reason otherwise. */
export type ReadinessCheck = () => Promise<void>;

export type UpgradeHandler = (req: IncomingMessage, socket: Socket, head: Buffer) => void;

/** More routes (the console): resolves true when it answered the request, false to fall through to 404. */
export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => Promise<boolean>;

function rawRefusal(socket: Socket, r: Refusal): void {
  const body = JSON.stringify({ error: r.message });
  socket.end(
    `HTTP/1.1 ${r.status} ${STATUS_CODES[r.status] ?? ''}\r\nConnection: close\r\nContent-Type: application/json\r\n` +
      `X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

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
    private readonly options: HttpServerOptions = {},
  ) {
    this.server = createServer({ maxHeaderSize: MAX_HEADER_BYTES }, (req, res) => {
      this.route(req, res).catch((err: unknown) => {
        if (!res.headersSent) sendJson(res, 500, { error: messageOf(err) });
        else res.destroy();
      });
    });
    this.tracked = new TrackedServer(this.server, options.cap);
    this.server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      const refusal = this.tracked.isOverCap(socket)
        ? { status: 503, message: 'too many open connections' }
        : (this.options.policy?.checkHost(req) ?? this.options.policy?.checkOrigin(req) ?? null);
      if (refusal !== null) return rawRefusal(socket, refusal);
      if (this.upgradeHandler === null) {
        socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n');
        return;
      }
      this.upgradeHandler(req, socket, head);
    });
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
      if (!socket.writable) return;
      if (err.code === 'HPE_HEADER_OVERFLOW') {
        rawRefusal(socket, { status: 431, message: `request headers are larger than ${MAX_HEADER_BYTES} bytes` });
      } else {
        socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      }
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
    for (const [k, v] of Object.entries(BASE_HEADERS)) res.setHeader(k, v);
    if (this.tracked.isOverCap(req.socket)) res.setHeader('connection', 'close');
    // Probes answer whatever the Host (kubelet and Docker use the pod IP or any name) and past the connection cap.
    if (!probe) {
      const { policy } = this.options;
      const refusal = this.tracked.isOverCap(req.socket)
        ? { status: 503, message: 'too many open connections; try again later' }
        : (policy?.checkHost(req) ??
          (req.method === 'GET' || req.method === 'HEAD' || req.method === 'OPTIONS' ? null : (policy?.checkOrigin(req) ?? null)));
      if (refusal !== null) {
        sendJson(res, refusal.status, { error: refusal.message });
        return;
      }
    }
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
