// The operator console on the HTTP server: its static page (src/console/public, no build step) at `/`, and a small
// JSON API over the CallManager, behind the token like the rest of the HTTP API: GET /api/calls (live calls),
// GET /api/calls/<id>/turns[?after=<index>] (a live or recently ended call's turn timeline), GET /api/levels (caller and bot
// levels of every live call), GET /api/headroom (the instance's recent samples), GET /api/past-calls (ended
// calls from the store, paged and filtered), POST /api/calls (a softphone call), POST /api/calls/<id>/stop.

import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import type { CallManager } from '../calls/manager.js';
import type { Config } from '../config.js';
import { BadRequestError, messageOf, statusOf } from '../errors.js';
import type { Logger } from '../log.js';
import { newUuid, parseUuid } from '../model/uuid.js';
import { isAuthorized, requestUrl } from '../http/auth.js';
import type { Pipecatcall } from '../model/pipecatcall.js';
import { EndedCalls } from './ended-calls.js';
import { HeadroomSampler, type HeadroomSources } from './headroom.js';
import { callSummary, pastCallView, timelines } from './views.js';

/** The store's listing of ended calls (store/PipecatcallStore implements it). */
export interface PastCallsSource {
  listEnded(q: {
    limit: number;
    id?: string;
    referenceId?: string;
    customerId?: string;
    before?: { tmCreate: string; id: string };
  }): Promise<Pipecatcall[]>;
}

export interface ConsoleRoutesDeps {
  config: Pick<Config, 'httpAuthToken' | 'podIp' | 'defaults'>;
  calls: CallManager;
  log: Logger;
  /** Ended calls for the past-calls view; without it the view answers 404. */
  pastCalls?: PastCallsSource;
  /** The instance's figures for the headroom view; without them it shows live calls and the CPU only. */
  headroom?: Partial<HeadroomSources>;
  /** Headroom sampling period (default 2 s). */
  headroomSampleMs?: number;
  /** Where the page's files are; by default found next to this module or under the package root. */
  publicDir?: string;
}

const ASSETS: Readonly<Record<string, { file: string; type: string }>> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/index.html': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/console.js': { file: 'console.js', type: 'text/javascript; charset=utf-8' },
  '/frames.js': { file: 'frames.js', type: 'text/javascript; charset=utf-8' },
  '/mic-worklet.js': { file: 'mic-worklet.js', type: 'text/javascript; charset=utf-8' },
  '/charts.js': { file: 'charts.js', type: 'text/javascript; charset=utf-8' },
  '/panels.js': { file: 'panels.js', type: 'text/javascript; charset=utf-8' },
  '/common.js': { file: 'common.js', type: 'text/javascript; charset=utf-8' },
  '/softphone.js': { file: 'softphone.js', type: 'text/javascript; charset=utf-8' },
};

const PAST_PAGE = 20;
const TIMESTAMP = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}$/;

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

// Same-origin only: another site's page cannot read an answer (no CORS header is ever sent) nor embed one.
function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    'cross-origin-resource-policy': 'same-origin',
  });
  res.end(text);
}

/** An optional UUID query parameter; a malformed one is a 400 naming it. */
function uuidParam(url: URL, name: string): string | undefined {
  const v = url.searchParams.get(name);
  if (v === null || v === '') return undefined;
  const id = parseUuid(v.trim());
  if (id === null) throw new BadRequestError(`${name} must be a UUID, got ${JSON.stringify(v.slice(0, 60))}`);
  return id;
}


export class ConsoleRoutes {
  private readonly publicDir: string | null;
  private readonly cache = new Map<string, Buffer>();
  readonly ended = new EndedCalls();
  readonly headroom: HeadroomSampler;

  constructor(private readonly deps: ConsoleRoutesDeps) {
    this.publicDir = deps.publicDir ?? findPublicDir();
    deps.calls.onEnded((call) => this.ended.add(call));
    const h = deps.headroom ?? {};
    this.headroom = new HeadroomSampler(
      {
        liveCalls: h.liveCalls ?? (() => deps.calls.size),
        admission: h.admission ?? (() => ({ admitted: 0, refused: 0 })),
        clockLateness: h.clockLateness ?? (() => Promise.resolve({ le: [], counts: [] })),
      },
      deps.headroomSampleMs,
    );
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
    if (!path.startsWith('/api/')) return false;
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
      await this.api(method, url, res);
    } catch (err) {
      const status = statusOf(err);
      if (status === 500) this.deps.log.error({ err: messageOf(err), path }, 'console API request failed');
      sendJson(res, status, { error: messageOf(err) });
    }
    return true;
  }

  /** Stops the headroom sampling. Idempotent. */
  close(): void {
    this.headroom.stop();
  }

  private async api(method: string, url: URL, res: ServerResponse): Promise<void> {
    const { calls, config } = this.deps;
    const path = url.pathname;
    if (method === 'GET' && (await this.read(path, url, res))) return;
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

  /** The GET routes; false when none matched. */
  private async read(path: string, url: URL, res: ServerResponse): Promise<boolean> {
    const { calls, config } = this.deps;
    if (path === '/api/calls') {
      const list = [...calls.sessions()].map(callSummary);
      list.sort((a, b) => String(b['tm_create']).localeCompare(String(a['tm_create'])));
      sendJson(res, 200, { host_id: config.podIp, now: Date.now(), calls: list });
      return true;
    }
    if (path === '/api/levels') {
      const levels: Record<string, [number | null, number | null]> = {};
      for (const call of calls.sessions()) {
        const l = call.levels();
        levels[call.id] = [l.caller, l.bot];
      }
      sendJson(res, 200, { levels });
      return true;
    }
    if (path === '/api/headroom') {
      const since = Number(url.searchParams.get('since') ?? 0);
      sendJson(res, 200, { sample_ms: this.headroom.sampleMs, samples: this.headroom.samples(Number.isFinite(since) ? since : 0) });
      return true;
    }
    const turns = /^\/api\/calls\/([^/]+)\/turns$/.exec(path);
    if (turns !== null) {
      const id = parseUuid(turns[1] ?? '');
      if (id === null) throw new BadRequestError('the call id must be a UUID');
      const after = Number(url.searchParams.get('after') ?? 0);
      if (!Number.isInteger(after) || after < 0) throw new BadRequestError('after must be a turn index (a whole number ≥ 0)');
      const live = calls.session(id);
      const records = (live?.turns() ?? this.ended.get(id)?.turns)?.filter((r) => r.index > after);
      if (records === undefined) {
        sendJson(res, 404, { error: `pipecatcall ${id} is neither live here nor among the calls this process ended recently` });
      } else {
        sendJson(res, 200, { id, live: live !== undefined, turns: timelines(records) });
      }
      return true;
    }
    if (path === '/api/past-calls') {
      await this.pastCalls(url, res);
      return true;
    }
    return false;
  }

  private async pastCalls(url: URL, res: ServerResponse): Promise<void> {
    const source = this.deps.pastCalls;
    if (source === undefined) {
      sendJson(res, 404, { error: 'this instance has no store to list past calls from' });
      return;
    }
    const limit = Number(url.searchParams.get('limit') ?? PAST_PAGE);
    if (!Number.isInteger(limit) || limit < 1 || limit > 100) throw new BadRequestError('limit must be a whole number from 1 to 100');
    const id = uuidParam(url, 'id');
    const referenceId = uuidParam(url, 'reference_id');
    const customerId = uuidParam(url, 'customer_id');
    const beforeId = uuidParam(url, 'before_id');
    const beforeTm = url.searchParams.get('before_tm') ?? '';
    if ((beforeId === undefined) !== (beforeTm === '')) throw new BadRequestError('before_tm and before_id go together (the last row of the previous page)');
    if (beforeTm !== '' && !TIMESTAMP.test(beforeTm)) throw new BadRequestError('before_tm must be a timestamp like 2026-01-01 10:00:00.000000');
    const rows = await source.listEnded({
      limit,
      ...(id !== undefined ? { id } : {}),
      ...(referenceId !== undefined ? { referenceId } : {}),
      ...(customerId !== undefined ? { customerId } : {}),
      ...(beforeId !== undefined ? { before: { tmCreate: beforeTm, id: beforeId } } : {}),
    });
    const last = rows[rows.length - 1];
    sendJson(res, 200, {
      calls: rows.map((r) => pastCallView(r, this.ended.get(r.id))),
      next: rows.length === limit && last !== undefined ? { before_tm: last.tm_create, before_id: last.id } : null,
    });
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
