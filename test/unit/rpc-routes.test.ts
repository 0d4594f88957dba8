// SPEC §4.4: a known URI with a method it does not take is no match, a bare 404 like an unknown URI — decided by
// the routing table before any handler (and so before the call manager) is reached.

import { describe, expect, it } from 'vitest';
import type { CallManager } from '../../src/calls/manager.js';
import { encodeResponse, parseRequest } from '../../src/rpc/envelope.js';
import { RpcRoutes } from '../../src/rpc/routes.js';

const ID = '2f6a1f3e-0c1b-4c55-9a7e-3f1d2c3b4a59';

// Any use of the manager would throw: the 404s below must come from routing alone.
const untouchable = new Proxy({}, {
  get: (_t, key) => {
    throw new Error(`the call manager was used (${String(key)})`);
  },
}) as CallManager;

describe('RPC routing of methods', () => {
  const routes = new RpcRoutes(untouchable, '127.0.0.1');
  const cases: Array<[uri: string, method: string]> = [
    ['/v1/ping', 'PATCH'],
    ['/v1/ping', 'POST'],
    ['/v1/ping', 'DELETE'],
    ['/v1/pipecatcalls', 'PUT'],
    ['/v1/pipecatcalls', 'OPTIONS'],
    [`/v1/pipecatcalls/${ID}`, 'DELETE'],
    [`/v1/pipecatcalls/${ID}/stop`, 'GET'],
    ['/v1/messages', 'get'],
  ];

  it.each(cases)('%s with %s is the bare 404', async (uri, method) => {
    const req = parseRequest(Buffer.from(JSON.stringify({ uri, method, publisher: 'test', data_type: '' })));
    expect(routes.label(req)).toBe('notfound');
    const res = await routes.handle(req);
    expect(encodeResponse(res).toString()).toBe('{"status_code":404,"data_type":""}');
  });

  it('the method it takes is routed', async () => {
    const res = await routes.handle(parseRequest(Buffer.from('{"uri":"/v1/ping","method":"GET"}')));
    expect(res.statusCode).toBe(200);
    expect(JSON.parse(res.data ?? '')).toMatchObject({ host_id: '127.0.0.1' });
  });
});
