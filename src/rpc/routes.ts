// The RPC routing table (SPEC §4.4, §5): URI path matched by a regex anchored at the end plus the exact method,
// first match wins; a known URI with another method is no match (404, as the old service did); one small
// handler per route. Errors become status codes in one place (statusOf).

import type { CallManager } from '../calls/manager.js';
import { parseSendMessage } from '../calls/send-message.js';
import { messageOf, statusOf } from '../errors.js';
import { encodeMessage } from '../model/message.js';
import { encodePipecatcall } from '../model/pipecatcall.js';
import { rfc3339Nano } from '../model/timestamp.js';
import { goEncodeStruct } from '../model/go-json.js';
import { errorResponse, okJson, type RpcRequest, type RpcResponse } from './envelope.js';

const UUID = '([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})';
const ID_LABEL = '<pipecatcall-id>';

interface Route {
  method: RpcRequest['method'];
  pattern: RegExp;
  /** Metric label of the route: the URI with ids replaced. */
  label: string;
  handle(match: RegExpExecArray, req: RpcRequest, query: URLSearchParams): Promise<RpcResponse>;
}

export class RpcRoutes {
  private readonly routes: Route[];

  constructor(
    private readonly calls: CallManager,
    private readonly hostId: string,
  ) {
    this.routes = [
      {
        method: 'POST',
        pattern: /\/v1\/pipecatcalls$/,
        label: '/v1/pipecatcalls',
        handle: async (_m, req) => okJson(encodePipecatcall(await this.calls.create(req.data))),
      },
      {
        method: 'GET',
        pattern: /\/v1\/pipecatcalls$/,
        label: '/v1/pipecatcalls',
        handle: async (_m, _req, query) => {
          const rows = await this.calls.list(query.get('host_id') || this.hostId);
          return okJson(`{"result":[${rows.map((r) => encodePipecatcall(r)).join(',')}]}`);
        },
      },
      {
        method: 'GET',
        pattern: new RegExp(`/v1/pipecatcalls/${UUID}$`),
        label: `/v1/pipecatcalls/${ID_LABEL}`,
        handle: async (m) => okJson(encodePipecatcall(await this.calls.get(m[1] ?? ''))),
      },
      {
        method: 'POST',
        pattern: new RegExp(`/v1/pipecatcalls/${UUID}/stop$`),
        label: `/v1/pipecatcalls/${ID_LABEL}/stop`,
        handle: async (m) => okJson(encodePipecatcall(await this.calls.stop(m[1] ?? ''))),
      },
      {
        method: 'POST',
        pattern: /\/v1\/messages$/,
        label: '/v1/messages',
        handle: (_m, req) => Promise.resolve(okJson(encodeMessage(this.calls.sendMessage(parseSendMessage(req.data))))),
      },
      {
        method: 'GET',
        pattern: /\/v1\/ping$/,
        label: '/v1/ping',
        handle: () =>
          Promise.resolve(
            okJson(goEncodeStruct([
              ['host_id', this.hostId],
              ['timestamp', rfc3339Nano()],
            ])),
          ),
      },
    ];
  }

  private find(req: RpcRequest): { route: Route; match: RegExpExecArray; query: URLSearchParams } | null {
    const q = req.uri.indexOf('?');
    const path = q >= 0 ? req.uri.slice(0, q) : req.uri;
    const query = new URLSearchParams(q >= 0 ? req.uri.slice(q + 1) : '');
    for (const route of this.routes) {
      if (route.method !== req.method) continue;
      const match = route.pattern.exec(path);
      if (match !== null) return { route, match, query };
    }
    return null;
  }

  /** Metric label for a request: the route's URI with ids replaced, or `notfound`. */
  label(req: RpcRequest): string {
    return this.find(req)?.route.label ?? 'notfound';
  }

  /** Handles one request; never throws. */
  async handle(req: RpcRequest): Promise<RpcResponse> {
    const found = this.find(req);
    if (found === null) return errorResponse(404);
    try {
      return await found.route.handle(found.match, req, found.query);
    } catch (err) {
      const status = statusOf(err);
      return errorResponse(status, status === 404 ? undefined : messageOf(err));
    }
  }
}
