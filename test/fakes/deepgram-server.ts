// A local stand-in for Deepgram's live transcription endpoint (`wss://api.deepgram.com/v1/listen`), speaking the
// real protocol over a real WebSocket so the official SDK can be tested against it, with scriptable results and faults.
//
// Protocol facts reproduced here (Deepgram "Live Audio" API reference):
// - The client upgrades `GET /v1/listen?model=…&encoding=…&sample_rate=…` with `Authorization: Token <key>`. A bad
//   key is refused before the upgrade (HTTP 401 with a JSON body); so are server errors (HTTP 5xx).
// - Audio is sent as binary frames; control messages are JSON text frames: `{"type":"KeepAlive"}`,
//   `{"type":"Finalize"}`, `{"type":"CloseStream"}`.
// - Results are `{"type":"Results","channel_index":[0,1],"duration","start","is_final","speech_final",
//   "channel":{"alternatives":[{"transcript","confidence","words":[…]}]},"metadata":{…},"from_finalize"}`.
// - On CloseStream the server flushes what it has, sends a `Metadata` message and closes with code 1000.

import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { waitUntil } from '../helpers/wait.js';

const BYTES_PER_SECOND = 16_000 * 2; // the fake assumes linear16 at 16 kHz mono when timing results
const MODEL_UUID = '1dbdfb4d-85b2-4659-9831-16b3c76229aa';
const MODEL_INFO = { name: '2-general-nova', version: '2024-01-09.29447', arch: 'nova-2' };

/** One WebSocket session as the server saw it. */
export interface FakeDeepgramConnection {
  readonly index: number;
  readonly requestId: string;
  readonly path: string;
  /** The query string the SDK sent, as a plain object. */
  readonly query: Readonly<Record<string, string>>;
  /** The Authorization header, e.g. `Token <key>`. */
  readonly authorization: string | undefined;
  audioBytes: number;
  audioFrames: number;
  keepAlives: number;
  finalizes: number;
  closeStreams: number;
  /** Text frames that were not one of the control messages above. */
  unknownText: string[];
  /** Audio bytes since the last result this connection sent (drives `autoTranscribe`). */
  bytesSinceResult: number;
  /** Audio seconds already covered by results (the `start` of the next result). */
  resultCursor: number;
  closed: boolean;
  closeCode: number | undefined;
  readonly ws: WebSocket;
  /** The TCP socket under the WebSocket (for `freeze`). */
  readonly tcp: Socket;
}

export interface ResultOptions {
  isFinal: boolean;
  speechFinal?: boolean;
  /** Seconds of audio the result covers; defaults to the audio received since the last result (≥ 0.1 s). */
  duration?: number;
  confidence?: number;
  fromFinalize?: boolean;
}

export interface AutoTranscribe {
  /** After this many audio bytes since the last result, emit one interim then one final result. */
  afterBytes: number;
  /** The final text of the n-th utterance (n counts from 0 across all connections). */
  text: string | ((n: number) => string);
}

export type DropMode = 'once' | 'always';

export interface FakeDeepgramOptions {
  /** The only key accepted; any other `Authorization` is refused with 401 like the real service. */
  apiKey?: string;
}

export class FakeDeepgramServer {
  /** Every session, in connection order (refused upgrades are not sessions; see `refusals`). */
  readonly connections: FakeDeepgramConnection[] = [];
  /** Upgrade requests refused with an HTTP status. */
  readonly refusals: Array<{ status: number; authorization: string | undefined; path: string }> = [];
  /** Finals emitted by `autoTranscribe` so far (all connections). */
  utterances = 0;

  private refuse: { status: number; remaining: number } | null = null;
  private stallUpgrades = false;
  private stalled = false;
  private drop: { afterBytes: number; mode: DropMode; used: boolean } | null = null;
  private auto: AutoTranscribe | null = null;
  private readonly pendingUpgrades = new Set<Socket>();

  private constructor(
    private readonly http: Server,
    private readonly wss: WebSocketServer,
    private readonly options: FakeDeepgramOptions,
  ) {}

  static async start(options: FakeDeepgramOptions = {}): Promise<FakeDeepgramServer> {
    const http = createServer((_req, res) => {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end('{"err_code":"NOT_FOUND"}');
    });
    // No permessage-deflate, like a plain server: audio frames arrive exactly as the client sent them.
    const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
    const server = new FakeDeepgramServer(http, wss, options);
    http.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => server.onUpgrade(req, socket, head));
    await new Promise<void>((resolve, reject) => {
      http.once('error', reject);
      http.listen(0, '127.0.0.1', () => resolve());
    });
    return server;
  }

  /** The `http://` base to give the SDK; it derives `ws://…/v1/listen` from it. */
  get url(): string {
    const { port } = this.http.address() as AddressInfo;
    return `http://127.0.0.1:${port}`;
  }

  get port(): number {
    return (this.http.address() as AddressInfo).port;
  }

  /** The newest session. */
  get last(): FakeDeepgramConnection {
    const c = this.connections[this.connections.length - 1];
    if (c === undefined) throw new Error('no Deepgram connection yet');
    return c;
  }

  get openConnections(): number {
    return this.connections.filter((c) => !c.closed).length;
  }

  // ----- scripting -----------------------------------------------------------------------------------------------

  /** Forgets recorded sessions and clears every fault and script (between tests). */
  reset(): void {
    this.connections.length = 0;
    this.refusals.length = 0;
    this.utterances = 0;
    this.refuse = null;
    this.stallUpgrades = false;
    this.stalled = false;
    this.drop = null;
    this.auto = null;
  }

  /** Refuse the next `count` upgrades (Infinity: all) with this HTTP status, before any WebSocket exists. */
  refuseUpgrades(status: number, count = Infinity): void {
    this.refuse = { status, remaining: count };
  }

  /** Accept TCP but never answer the upgrade: the client's connect timeout must fire. */
  stallUpgrade(on = true): void {
    this.stallUpgrades = on;
  }

  /** Stop answering on open sessions: no results, no reply to CloseStream, no close. */
  stall(on = true): void {
    this.stalled = on;
  }

  /**
   * A hung peer: the session's TCP socket is never read again, so not even a WebSocket close frame is answered
   * (a stalled `ws` peer would still echo close frames by itself).
   */
  freeze(conn: FakeDeepgramConnection = this.last): void {
    conn.tcp.removeAllListeners('data');
    conn.tcp.pause();
  }

  /** Cut a session (TCP reset, no close frame: the client sees 1006) once it has received `afterBytes` of audio. */
  dropAfter(afterBytes: number, mode: DropMode = 'once'): void {
    this.drop = { afterBytes, mode, used: false };
  }

  /** "After N bytes of audio since the last result, emit interim then final with text X" on every session. */
  autoTranscribe(script: AutoTranscribe | null): void {
    this.auto = script;
  }

  /** Sends one Results message on a session (default: the newest). */
  sendResults(text: string, options: ResultOptions, conn: FakeDeepgramConnection = this.last): void {
    const covered = options.duration ?? Math.max(0.1, conn.bytesSinceResult / BYTES_PER_SECOND);
    const start = conn.resultCursor;
    const words = text
      .split(/\s+/)
      .filter((w) => w !== '')
      .map((w, i, all) => {
        const step = covered / Math.max(1, all.length);
        return {
          word: w.toLowerCase().replace(/[^\p{L}\p{N}']/gu, ''),
          start: round(start + i * step),
          end: round(start + (i + 1) * step),
          confidence: 0.97,
          punctuated_word: w,
        };
      });
    const message = {
      type: 'Results',
      channel_index: [0, 1],
      duration: round(covered),
      start: round(start),
      is_final: options.isFinal,
      speech_final: options.speechFinal ?? options.isFinal,
      channel: { alternatives: [{ transcript: text, confidence: options.confidence ?? 0.98, words }] },
      metadata: { request_id: conn.requestId, model_info: MODEL_INFO, model_uuid: MODEL_UUID },
      from_finalize: options.fromFinalize ?? false,
    };
    if (options.isFinal) {
      conn.resultCursor = start + covered;
      conn.bytesSinceResult = 0;
    }
    conn.ws.send(JSON.stringify(message));
  }

  /** Sends raw text on a session: malformed JSON, unknown message types. */
  sendRaw(text: string, conn: FakeDeepgramConnection = this.last): void {
    conn.ws.send(text);
  }

  /** Cuts a session now (TCP destroy: close code 1006 on the client). */
  dropNow(conn: FakeDeepgramConnection = this.last): void {
    conn.ws.terminate();
  }

  /** Resolves when `predicate` holds, polling every 5 ms; rejects after `timeoutMs` naming `what`. */
  async waitFor(predicate: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
    await waitUntil(`fake Deepgram: ${what}`, predicate, timeoutMs);
  }

  async close(): Promise<void> {
    for (const c of this.connections) if (!c.closed) c.ws.terminate();
    for (const s of this.pendingUpgrades) s.destroy();
    this.pendingUpgrades.clear();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    this.http.closeAllConnections();
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
  }

  // ----- protocol ------------------------------------------------------------------------------------------------

  private onUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    const url = new URL(req.url ?? '/', 'http://fake');
    const authorization = req.headers.authorization;
    if (this.stallUpgrades) {
      this.pendingUpgrades.add(socket);
      socket.once('close', () => this.pendingUpgrades.delete(socket));
      return;
    }
    if (url.pathname !== '/v1/listen') {
      this.reject(socket, 404, url.pathname, authorization);
      return;
    }
    if (this.refuse !== null && this.refuse.remaining > 0) {
      this.refuse.remaining -= 1;
      this.reject(socket, this.refuse.status, url.pathname, authorization);
      return;
    }
    if (this.options.apiKey !== undefined && authorization !== `Token ${this.options.apiKey}`) {
      this.reject(socket, 401, url.pathname, authorization);
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.onSession(ws, socket, url, authorization));
  }

  private reject(socket: Socket, status: number, path: string, authorization: string | undefined): void {
    this.refusals.push({ status, authorization, path });
    const body =
      status === 401
        ? JSON.stringify({ err_code: 'INVALID_AUTH', err_msg: 'Invalid credentials.', request_id: randomUUID() })
        : JSON.stringify({ err_code: 'INTERNAL_SERVER_ERROR', err_msg: 'Internal error.', request_id: randomUUID() });
    const reason = status === 401 ? 'Unauthorized' : status === 404 ? 'Not Found' : 'Internal Server Error';
    socket.end(
      `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
        `connection: close\r\n\r\n${body}`,
    );
  }

  private onSession(ws: WebSocket, tcp: Socket, url: URL, authorization: string | undefined): void {
    const conn: FakeDeepgramConnection = {
      index: this.connections.length,
      requestId: randomUUID(),
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      authorization,
      audioBytes: 0,
      audioFrames: 0,
      keepAlives: 0,
      finalizes: 0,
      closeStreams: 0,
      unknownText: [],
      bytesSinceResult: 0,
      resultCursor: 0,
      closed: false,
      closeCode: undefined,
      ws,
      tcp,
    };
    this.connections.push(conn);
    ws.on('error', () => ws.terminate());
    ws.on('close', (code) => {
      conn.closed = true;
      conn.closeCode = code;
    });
    ws.on('message', (data: RawData, isBinary: boolean) => {
      if (isBinary) this.onAudio(conn, byteLength(data));
      else this.onControl(conn, rawText(data));
    });
  }

  private onAudio(conn: FakeDeepgramConnection, bytes: number): void {
    conn.audioBytes += bytes;
    conn.audioFrames += 1;
    conn.bytesSinceResult += bytes;
    const drop = this.drop;
    if (drop !== null && !(drop.mode === 'once' && drop.used) && conn.audioBytes >= drop.afterBytes) {
      drop.used = true;
      conn.ws.terminate();
      return;
    }
    if (this.stalled || this.auto === null || conn.bytesSinceResult < this.auto.afterBytes) return;
    const n = this.utterances++;
    const text = typeof this.auto.text === 'string' ? this.auto.text : this.auto.text(n);
    // An interim hypothesis (the first words) precedes the final, as Deepgram's interim_results do.
    const words = text.split(/\s+/);
    const interim = words.slice(0, Math.max(1, Math.ceil(words.length / 2))).join(' ');
    this.sendResults(interim, { isFinal: false }, conn);
    this.sendResults(text, { isFinal: true, speechFinal: true }, conn);
  }

  private onControl(conn: FakeDeepgramConnection, text: string): void {
    let type: unknown;
    try {
      type = (JSON.parse(text) as { type?: unknown }).type;
    } catch {
      type = undefined;
    }
    switch (type) {
      case 'KeepAlive':
        conn.keepAlives += 1;
        return;
      case 'Finalize':
        conn.finalizes += 1;
        if (!this.stalled && conn.bytesSinceResult > 0) this.sendResults('', { isFinal: true, fromFinalize: true }, conn);
        return;
      case 'CloseStream':
        conn.closeStreams += 1;
        if (this.stalled) return;
        conn.ws.send(
          JSON.stringify({
            type: 'Metadata',
            transaction_key: 'deprecated',
            request_id: conn.requestId,
            sha256: 'f0'.repeat(32),
            created: new Date().toISOString(),
            duration: round(conn.audioBytes / BYTES_PER_SECOND),
            channels: 1,
            models: [MODEL_UUID],
            model_info: { [MODEL_UUID]: MODEL_INFO },
          }),
        );
        conn.ws.close(1000);
        return;
      default:
        conn.unknownText.push(text);
    }
  }
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

function byteLength(data: RawData): number {
  if (Array.isArray(data)) return data.reduce((n, b) => n + b.length, 0);
  return data instanceof ArrayBuffer ? data.byteLength : data.length;
}

function rawText(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return data instanceof ArrayBuffer ? Buffer.from(data).toString('utf8') : data.toString('utf8');
}
