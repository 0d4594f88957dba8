// The RPC routes (SPEC §5) over plain HTTP for installations without a broker: `/v1/…` with the same JSON in and
// out and the same status codes as the RPC replies, answered by the one RpcRoutes table the broker server uses.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { messageOf } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { goEncodeValue } from '../model/go-json.js';
import { RPC_METHODS, type RpcMethod, type RpcRequest, type RpcResponse } from '../rpc/envelope.js';
import { MAX_REQUEST_JSON_DEPTH, jsonDepth } from '../rpc/request-limits.js';
import { isAuthorized, requestUrl } from './auth.js';

/** The part of RpcRoutes this adapter needs. */
export interface RpcRouteTable {
  handle(req: RpcRequest): Promise<RpcResponse>;
  label(req: RpcRequest): string;
}

export interface RpcOverHttpOptions {
  routes: RpcRouteTable;
  /** HTTP_AUTH_TOKEN; '' = no token needed. */
  authToken: string;
  metrics: Metrics;
  log: Logger;
  /** Largest request body accepted (default 1 MiB). */
  maxBodyBytes?: number;
}

const PREFIX = '/v1/';

class HttpRefusal extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export class RpcOverHttp {
  private readonly routes: RpcRouteTable;
  private readonly authToken: string;
  private readonly metrics: Metrics;
  private readonly log: Logger;
  private readonly maxBodyBytes: number;

  constructor(o: RpcOverHttpOptions) {
    this.routes = o.routes;
    this.authToken = o.authToken;
    this.metrics = o.metrics;
    this.log = o.log;
    this.maxBodyBytes = o.maxBodyBytes ?? 1024 * 1024;
  }

  /** Answers `/v1/…` requests (true); anything else is left to the next handler (false). Never rejects. */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const url = requestUrl(req);
    if (!url.pathname.startsWith(PREFIX)) return false;
    const started = performance.now();
    let label = 'invalid';
    let method = req.method ?? '';
    try {
      if (!isAuthorized(req, url, this.authToken)) {
        throw new HttpRefusal(401, 'missing or wrong token (Authorization: Bearer <HTTP_AUTH_TOKEN>)');
      }
      if (!isRpcMethod(method)) throw new HttpRefusal(405, `method ${method} is not allowed`);
      // A web page elsewhere must not drive calls through the operator's browser (CSRF): browsers name the page's
      // origin on cross-origin requests; the CLI and curl send none.
      if (!sameOrigin(req)) throw new HttpRefusal(403, 'cross-origin requests are not allowed');
      const body = await this.readBody(req);
      if (jsonDepth(body, MAX_REQUEST_JSON_DEPTH) > MAX_REQUEST_JSON_DEPTH) {
        throw new HttpRefusal(400, `request JSON nests deeper than ${MAX_REQUEST_JSON_DEPTH} levels`);
      }
      let data: unknown;
      if (body.length > 0) {
        try {
          data = JSON.parse(body.toString('utf8'));
        } catch {
          throw new HttpRefusal(400, 'request body is not valid JSON');
        }
      }
      // The token may ride in the query string (browsers); it must not reach the routes or their logs.
      url.searchParams.delete('token');
      const search = url.searchParams.toString();
      const rpc: RpcRequest = {
        uri: `${url.pathname}${search === '' ? '' : `?${search}`}`,
        method,
        publisher: 'http',
        dataType: data === undefined ? '' : 'application/json',
        data,
      };
      label = this.routes.label(rpc);
      send(res, await this.routes.handle(rpc));
    } catch (err) {
      const status = err instanceof HttpRefusal ? err.status : 500;
      if (status >= 500) this.log.error({ err: messageOf(err), route: label, method }, 'HTTP control request failed');
      else this.log.debug({ err: messageOf(err), route: label, method, status }, 'HTTP control request refused');
      method = isRpcMethod(method) ? method : '';
      send(res, {
        statusCode: status,
        dataType: 'application/json',
        data: `{"message":${goEncodeValue(messageOf(err))}}`,
      }, status === 401 ? { 'www-authenticate': 'Bearer' } : {});
    }
    this.metrics.receiveRequestProcessTime.observe({ type: label, method }, performance.now() - started);
    return true;
  }

  private readBody(req: IncomingMessage): Promise<Buffer> {
    const declared = Number(req.headers['content-length'] ?? '0');
    if (Number.isFinite(declared) && declared > this.maxBodyBytes) {
      req.resume();
      return Promise.reject(new HttpRefusal(413, `request body larger than ${this.maxBodyBytes} bytes`));
    }
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > this.maxBodyBytes) {
          req.removeAllListeners('data');
          req.resume();
          reject(new HttpRefusal(413, `request body larger than ${this.maxBodyBytes} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      req.once('end', () => resolve(Buffer.concat(chunks)));
      req.once('error', reject);
    });
  }
}

function sameOrigin(req: IncomingMessage): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  try {
    return new URL(origin).host === (req.headers.host ?? '');
  } catch {
    return false;
  }
}

function isRpcMethod(m: string): m is RpcMethod {
  return (RPC_METHODS as readonly string[]).includes(m);
}

function send(res: ServerResponse, r: RpcResponse, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = r.data ?? '';
  res.writeHead(r.statusCode, {
    ...headers,
    ...(r.dataType !== '' ? { 'content-type': r.dataType } : {}),
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(body);
}
