// The CLI's transport to a daemon without a broker: the RPC routes over HTTP (`/v1/…`, see http/rpc-over-http.ts)
// with the same calls and results as RpcClient, so a command does not care which transport carries it.

import type { Config } from '../config.js';
import { DependencyError, messageOf } from '../errors.js';
import { RpcStatusError, type OutboundCall, type RpcResult } from './client.js';

export class HttpRpcClient {
  private readonly base: string;

  constructor(
    baseUrl: string,
    private readonly token: string,
    private readonly timeoutMs = 10_000,
  ) {
    let u: URL;
    try {
      u = new URL(baseUrl);
    } catch {
      throw new DependencyError('http', `--http must be an http(s):// URL, got ${JSON.stringify(baseUrl)}`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') {
      throw new DependencyError('http', `--http must be an http(s):// URL, got ${JSON.stringify(baseUrl)}`);
    }
    this.base = baseUrl.replace(/\/+$/, '');
  }

  /** The daemon's own HTTP listener, from the same configuration (an all-interfaces listener → loopback). */
  static fromConfig(config: Config): HttpRpcClient {
    const { host, port } = config.httpListen;
    const h = host === '0.0.0.0' || host === '' ? '127.0.0.1' : host === '::' ? '::1' : host;
    return new HttpRpcClient(`http://${h.includes(':') ? `[${h}]` : h}:${port}`, config.httpAuthToken);
  }

  /** One request; a status ≥ 300 is an RpcStatusError carrying the daemon's message, as over RabbitMQ. */
  async request(call: OutboundCall): Promise<RpcResult> {
    const what = `${call.method} ${call.uri}`;
    let res: Response;
    try {
      res = await fetch(`${this.base}${call.uri}`, {
        method: call.method,
        headers: {
          ...(call.data !== undefined ? { 'content-type': 'application/json' } : {}),
          ...(this.token !== '' ? { authorization: `Bearer ${this.token}` } : {}),
        },
        ...(call.data !== undefined ? { body: JSON.stringify(call.data) } : {}),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (err) {
      const cause = (err as { cause?: unknown }).cause;
      const reason = cause instanceof Error ? cause.message || messageOf(err) : messageOf(err);
      throw new DependencyError('http', `cannot reach the daemon at ${this.base}: ${reason}`, { cause: err });
    }
    const text = await res.text();
    let data: unknown;
    if (text !== '') {
      try {
        data = JSON.parse(text);
      } catch {
        throw new DependencyError('http', `${what}: the daemon at ${this.base} answered with non-JSON (status ${res.status})`);
      }
    }
    if (res.status >= 300) {
      const message =
        typeof data === 'object' && data !== null && typeof (data as { message?: unknown }).message === 'string'
          ? `: ${(data as { message: string }).message}`
          : '';
      throw new RpcStatusError('pipecat-manager', res.status, `${what} failed with status ${res.status}${message}`);
    }
    return { statusCode: res.status, data };
  }
}
