// Which RPC requests wait on the store (MySQL, Redis): creates, reads of calls that are not live here, stops of
// calls that are not ours. Pings, messages and requests about a live call are answered from memory, so a slow
// MySQL must never queue them behind the ones that wait for it (RpcServer bounds those separately).

import type { RpcRequest } from './envelope.js';

const CALL_PATH = /\/v1\/pipecatcalls\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(?:\/stop)?$/;
const MEMORY_ONLY = /\/v1\/(?:ping|messages)$/;

export function storeBoundRequest(isLive: (id: string) => boolean): (req: RpcRequest) => boolean {
  return (req) => {
    const path = req.uri.split('?')[0] ?? '';
    if (MEMORY_ONLY.test(path)) return false;
    const id = CALL_PATH.exec(path)?.[1];
    return id === undefined || !isLive(id);
  };
}
