// The operator console on the HTTP server: its static page (src/console/public, no build step) at `/`, and a small
// JSON API over the CallManager: GET /api/calls, POST /api/calls (a softphone call), POST /api/calls/<id>/stop.

import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import type { Call } from '../calls/call.js';
import type { CallManager } from '../calls/manager.js';
import type { Config } from '../config.js';
import { messageOf, statusOf } from '../errors.js';
import type { Logger } from '../log.js';
import { newUuid, parseUuid } from '../model/uuid.js';
import { isAuthorized, requestUrl } from '../http/auth.js';

export interface ConsoleRoutesDeps {
  config: Pick<Config, 'httpAuthToken' | 'podIp' | 'defaults'>;
  calls: CallManager;
  log: Logger;
  /** Where the page's files are; by default found next to this module or under the package root. */
  publicDir?: string;
}

const ASSETS: Readonly<Record<string, { file: string; type: string }>> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/index.html': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/console.js': { file: 'console.js', type: 'text/javascript; charset=utf-8' },
  '/frames.js': { file: 'frames.js', type: 'text/javascript; charset=utf-8' },
  '/mic-worklet.js': { file: 'mic-worklet.js', type: 'text/javascript; charset=utf-8' },
};

const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'content-security-policy':
    "default-src 'self'; connect-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'",
  'cache-control': 'no-store',
};

/**
 * The page's files: next to this module (src/console/public under tsx/vitest, or dist/console/public if a build copies
 * them), else the package root's src/console/public (a plain `npm run build` runs from dist/ inside the repository).
 */
function findPublicDir(): string | null {
  for (const rel of ['./public/', '../../src/console/public/']) {
    const dir = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(`${dir}index.html`)) return dir;
  }
  return null;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}


/** What the console shows of a call: its row, where it is in its life, and its latest latency figures. */
export function callSummary(call: Call): Record<string, unknown> {
  const r = call.row;
  const state = call.isTerminating
    ? 'terminating'
    : call.media === null
      ? call.sessionStarted
        ? 'text'
        : 'waiting'
      : !call.pipelineRunning
        ? 'connecting'
        : 'live';
  return {
    id: call.id,
    customer_id: r.customer_id,
    reference_type: r.reference_type,
    reference_id: r.reference_id,
    host_id: r.host_id,
    llm_type: r.llm_type,
    stt_type: r.stt_type,
    tts_type: r.tts_type,
    tm_create: r.tm_create,
    transport: call.transport,
    state,
    monitors: call.listeners.size,
    age_seconds: Math.round((Date.now() - call.createdAt) / 100) / 10,
    latency: { ...call.latency },
  };
}

export class ConsoleRoutes {
  private readonly publicDir: string | null;
  private readonly cache = new Map<string, Buffer>();

  constructor(private readonly deps: ConsoleRoutesDeps) {
    this.publicDir = deps.publicDir ?? findPublicDir();
    if (this.publicDir === null) deps.log.warn('operator console files (src/console/public) not found; the console is not served');
  }

  /** The HTTP server's extra routes: true when the request was answered here. */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const url = requestUrl(req);
    const path = url.pathname;
    const method = req.method ?? 'GET';
    const asset = ASSETS[path];
    if (asset !== undefined) {
      if (method !== 'GET' && method !== 'HEAD') return false;
      await this.serveAsset(res, asset.file, asset.type);
      return true;
    }
    if (path !== '/api/calls' && !path.startsWith('/api/calls/')) return false;
    if (!isAuthorized(req, url, this.deps.config.httpAuthToken)) {
      res.setHeader('www-authenticate', 'Bearer');
      sendJson(res, 401, { error: 'a valid token is required (Authorization: Bearer <token> or ?token=)' });
      return true;
    }
    // A JSON content type on every POST makes a cross-site form or fetch need a CORS preflight, which this
    // server never grants: another web page cannot create or stop calls through the operator's browser.
    if (method === 'POST' && !/^application\/json\b/i.test(req.headers['content-type'] ?? '')) {
      sendJson(res, 415, { error: 'POST requests need content-type: application/json' });
      return true;
    }
    try {
      await this.api(method, path, res);
    } catch (err) {
      const status = statusOf(err);
      if (status === 500) this.deps.log.error({ err: messageOf(err), path }, 'console API request failed');
      sendJson(res, status, { error: messageOf(err) });
    }
    return true;
  }

  private async api(method: string, path: string, res: ServerResponse): Promise<void> {
    const { calls, config } = this.deps;
    if (path === '/api/calls' && method === 'GET') {
      const list = [...calls.sessions()].map(callSummary);
      list.sort((a, b) => String(b['tm_create']).localeCompare(String(a['tm_create'])));
      sendJson(res, 200, { host_id: config.podIp, calls: list });
      return;
    }
    if (path === '/api/calls' && method === 'POST') {
      // A softphone call: a `call` reference with this instance's default providers, waiting for its media (the
      // browser's WebSocket). With CALL_MANAGER=on the create is refused: there is no Asterisk call behind it.
      const d = config.defaults;
      const row = await calls.create({
        id: newUuid(),
        reference_type: 'call',
        llm_type: d.llmType,
        stt_type: d.sttType,
        tts_type: d.ttsType,
        tts_voice_id: d.ttsVoiceId,
      });
      const call = calls.session(row.id);
      sendJson(res, 201, call === undefined ? { id: row.id } : callSummary(call));
      return;
    }
    const stop = /^\/api\/calls\/([^/]+)\/stop$/.exec(path);
    const id = stop?.[1] === undefined ? null : parseUuid(stop[1]);
    if (id !== null && method === 'POST') {
      if (calls.session(id) === undefined) {
        sendJson(res, 404, { error: `pipecatcall ${id} has no live session on this host` });
        return;
      }
      const row = await calls.stop(id);
      sendJson(res, 200, { id: row.id, tm_delete: row.tm_delete });
      return;
    }
    sendJson(res, method === 'GET' || method === 'POST' ? 404 : 405, { error: `no route for ${method} ${path}` });
  }

  private async serveAsset(res: ServerResponse, file: string, type: string): Promise<void> {
    if (this.publicDir === null) {
      sendJson(res, 404, { error: 'the operator console files are not installed (src/console/public)' });
      return;
    }
    let body = this.cache.get(file);
    if (body === undefined) {
      body = await readFile(`${this.publicDir}${file}`);
      this.cache.set(file, body);
    }
    res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': type, 'content-length': body.length });
    res.end(body);
  }
}
