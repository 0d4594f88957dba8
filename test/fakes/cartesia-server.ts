// A local stand-in for Cartesia's TTS WebSocket (`GET /tts/websocket`, JSON messages both ways) that records what
// the official SDK sends and streams deterministic 16 kHz s16le audio back, with scriptable faults.
//
// How the SDK reaches it: the SDK always dials `wss://<baseURL host>/tts/websocket`, and `ws` lets the caller
// replace the TCP/TLS dial with `createConnection`. The server speaks plain HTTP/WebSocket; `server.createConnection`
// returns `net.connect()` to it, so the "wss" handshake runs over plain TCP and no certificate is needed.

import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import { waitUntil } from '../helpers/wait.js';

export interface FakeCartesiaOptions {
  /** When set, the upgrade needs `Authorization: Bearer <apiKey>` (as the SDK sends it) or gets 401. */
  apiKey?: string;
  /** Audio per non-whitespace character of a transcript. Default 320 B = 10 ms at 16 kHz. */
  bytesPerChar?: number;
  /** Size of each `chunk` message's PCM. Default 3200 B = 100 ms. */
  chunkBytes?: number;
  /** Pause between chunks. Default 0 (as fast as the event loop goes); ignored when `realtime`. */
  chunkIntervalMs?: number;
  /** Pace chunks at real time (chunkBytes / 32 ms each), as a barge-in test needs. */
  realtime?: boolean;
  /**
   * Default true. false: a cancel is recorded but the context keeps streaming, like a real server whose
   * generation had already started — the client must drop those late chunks.
   */
  honorCancel?: boolean;
}

/**
 * One-shot faults, consumed in order by the next generation requests that carry text. `afterChunks` chunks of
 * that request are sent normally first (default 0).
 */
export type CartesiaFault =
  /** Close the connection: abruptly (TCP destroy, the client sees 1006) or with a close frame of `code`. */
  | { kind: 'close'; afterChunks?: number; code?: number }
  /** Cartesia's error message for the context, which ends it. */
  | { kind: 'error'; afterChunks?: number; message?: string; statusCode?: number }
  /** Send nothing more for the context. */
  | { kind: 'stall'; afterChunks?: number }
  /** A text frame that is not JSON, then nothing more for the context. */
  | { kind: 'malformed'; afterChunks?: number };

export interface RecordedUpgrade {
  path: string;
  query: Record<string, string>;
  headers: IncomingHttpHeaders;
}

export interface RecordedMessage {
  /** 1-based number of the WebSocket connection it came on. */
  connection: number;
  message: Record<string, unknown>;
}

interface Job {
  transcript: string;
}

interface Context {
  id: string;
  ws: WebSocket;
  jobs: Job[];
  /** A request with `continue` false/absent arrived: `done` follows the last audio. */
  inputDone: boolean;
  streaming: boolean;
  stopped: boolean;
  addTimestamps: boolean;
  /** Samples already generated for this context: tone phase and word-timestamp offsets continue across requests. */
  samples: number;
  timer: NodeJS.Timeout | null;
}

const SAMPLE_RATE = 16_000;
const TONE_HZ = 440;
const AMPLITUDE = 8000;

export class FakeCartesiaServer {
  readonly upgrades: RecordedUpgrade[] = [];
  readonly messages: RecordedMessage[] = [];
  /** Context ids of every `{cancel: true}` received, in order. */
  readonly cancels: string[] = [];
  /** Chunk messages sent per context id. */
  readonly chunksSent = new Map<string, number>();
  /** Context ids for which `done` was sent. */
  readonly doneSent: string[] = [];
  /** Answer every upgrade with this HTTP status instead of switching protocols (null: accept). */
  rejectUpgrades: number | null = null;
  /** See CartesiaFault. */
  readonly faults: CartesiaFault[] = [];
  options: Required<Omit<FakeCartesiaOptions, 'apiKey'>> & { apiKey: string | undefined };

  private readonly wss = new WebSocketServer({ noServer: true });
  private readonly sockets = new Set<WebSocket>();
  private readonly rawSockets = new Set<Duplex>();
  private readonly contexts = new Map<string, Context>();
  /** Cancelled, failed or stalled contexts: later messages for them are ignored. */
  private readonly stoppedIds = new Set<string>();
  private connectionCount = 0;

  private constructor(
    private readonly http: Server,
    readonly port: number,
    options: FakeCartesiaOptions,
  ) {
    this.options = {
      apiKey: options.apiKey,
      bytesPerChar: options.bytesPerChar ?? 320,
      chunkBytes: options.chunkBytes ?? 3200,
      chunkIntervalMs: options.chunkIntervalMs ?? 0,
      realtime: options.realtime ?? false,
      honorCancel: options.honorCancel ?? true,
    };
    http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(req, socket, head));
    http.on('connection', (socket: Socket) => {
      this.rawSockets.add(socket);
      socket.once('close', () => this.rawSockets.delete(socket));
    });
  }

  static async start(options: FakeCartesiaOptions = {}): Promise<FakeCartesiaServer> {
    const http = createServer((_req, res) => {
      res.writeHead(404).end();
    });
    await new Promise<void>((resolve, reject) => {
      http.once('error', reject);
      http.listen(0, '127.0.0.1', () => resolve());
    });
    const address = http.address();
    if (address === null || typeof address === 'string') throw new Error('fake Cartesia server has no TCP address');
    return new FakeCartesiaServer(http, address.port, options);
  }

  /** The base URL to give the SDK (it swaps the scheme for wss://). */
  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** For the SDK's `ws` options: dial this plain server whatever host/port/TLS the wss:// URL asked for. */
  readonly createConnection = (): Socket => connect({ host: '127.0.0.1', port: this.port });

  /** Open WebSocket connections right now. */
  get openConnections(): number {
    return this.sockets.size;
  }

  /** Every generation request received (cancels excluded). */
  get generationRequests(): Array<Record<string, unknown>> {
    return this.messages.map((m) => m.message).filter((m) => m.cancel !== true);
  }

  /** Polls until `predicate` holds (or throws after `timeoutMs`). */
  async waitFor(predicate: () => boolean, timeoutMs = 2000, what = 'condition'): Promise<void> {
    await waitUntil(`fake Cartesia: ${what}`, predicate, timeoutMs);
  }

  /** Drops every connection abruptly (the clients see code 1006). */
  dropConnections(): void {
    for (const ws of this.sockets) ws.terminate();
  }

  async close(): Promise<void> {
    for (const ctx of this.contexts.values()) this.stop(ctx);
    for (const ws of this.sockets) ws.terminate();
    for (const socket of this.rawSockets) socket.destroy();
    this.wss.close();
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
  }

  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(req.url ?? '/', 'http://fake');
    this.upgrades.push({ path: url.pathname, query: Object.fromEntries(url.searchParams), headers: req.headers });
    const reject = (status: number, text: string): void => {
      socket.end(`HTTP/1.1 ${status} ${text}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n`);
    };
    if (url.pathname !== '/tts/websocket') return reject(404, 'Not Found');
    if (this.rejectUpgrades !== null) return reject(this.rejectUpgrades, 'Rejected');
    // Node clients send the key as a bearer token and the API version as a header (browsers use query params).
    const key = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? url.searchParams.get('api_key');
    if (this.options.apiKey !== undefined && key !== this.options.apiKey) return reject(401, 'Unauthorized');
    if (req.headers['cartesia-version'] === undefined && !url.searchParams.has('cartesia_version')) {
      return reject(400, 'Bad Request');
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.onConnection(ws));
  }

  private onConnection(ws: WebSocket): void {
    const connection = ++this.connectionCount;
    this.sockets.add(ws);
    ws.on('error', () => undefined);
    ws.on('close', () => {
      this.sockets.delete(ws);
      for (const ctx of this.contexts.values()) if (ctx.ws === ws) this.stop(ctx);
    });
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) return this.sendError(ws, undefined, 400, 'binary messages are not supported');
      let message: unknown;
      try {
        message = JSON.parse(data.toString('utf8'));
      } catch {
        return this.sendError(ws, undefined, 400, 'invalid JSON');
      }
      if (typeof message !== 'object' || message === null || Array.isArray(message)) {
        return this.sendError(ws, undefined, 400, 'a message must be a JSON object');
      }
      const msg = message as Record<string, unknown>;
      this.messages.push({ connection, message: msg });
      this.onMessage(ws, msg);
    });
  }

  private onMessage(ws: WebSocket, msg: Record<string, unknown>): void {
    const id = typeof msg.context_id === 'string' ? msg.context_id : undefined;
    if (msg.cancel === true) {
      if (id === undefined) return this.sendError(ws, undefined, 400, 'cancel needs a context_id');
      this.cancels.push(id);
      const ctx = this.contexts.get(id);
      if (ctx !== undefined && this.options.honorCancel) this.stop(ctx);
      return;
    }
    // The fields Cartesia requires on every generation request, continuations included.
    const missing = ['model_id', 'transcript', 'voice', 'output_format'].filter((k) => msg[k] === undefined);
    if (id === undefined) missing.push('context_id');
    if (missing.length > 0) return this.sendError(ws, id, 400, `missing ${missing.join(', ')}`);
    if (id === undefined || typeof msg.transcript !== 'string') return this.sendError(ws, id, 400, 'transcript must be a string');
    const format = msg.output_format as Record<string, unknown>;
    if (format.container !== 'raw' || format.encoding !== 'pcm_s16le' || format.sample_rate !== SAMPLE_RATE) {
      return this.sendError(ws, id, 400, 'this fake only synthesizes raw pcm_s16le at 16000 Hz');
    }
    if (this.stoppedIds.has(id)) return;
    let ctx = this.contexts.get(id);
    if (ctx === undefined) {
      if (this.doneSent.includes(id)) return this.sendError(ws, id, 400, `context ${id} is already done`);
      ctx = { id, ws, jobs: [], inputDone: false, streaming: false, stopped: false, addTimestamps: false, samples: 0, timer: null };
      this.contexts.set(id, ctx);
    }
    if (ctx.stopped || ctx.inputDone) return;
    ctx.addTimestamps = msg.add_timestamps === true;
    ctx.jobs.push({ transcript: msg.transcript });
    if (msg.continue !== true) ctx.inputDone = true;
    this.pump(ctx);
  }

  /** Streams the context's next request, or sends `done` once input is over and all audio went out. */
  private pump(ctx: Context): void {
    if (ctx.streaming || ctx.stopped) return;
    const job = ctx.jobs.shift();
    if (job === undefined) {
      if (ctx.inputDone) {
        this.send(ctx.ws, { type: 'done', done: true, status_code: 200, context_id: ctx.id });
        this.doneSent.push(ctx.id);
        this.contexts.delete(ctx.id);
      }
      return;
    }
    const chars = job.transcript.replace(/\s/g, '').length;
    const total = chars * this.options.bytesPerChar;
    if (total === 0) return this.pump(ctx);
    const fault = this.faults.shift();
    ctx.streaming = true;
    if (ctx.addTimestamps) this.sendTimestamps(ctx, job.transcript);
    const pcm = this.tone(ctx.samples, total / 2);
    ctx.samples += total / 2;
    let offset = 0;
    let chunks = 0;
    const step = (): void => {
      ctx.timer = null;
      if (ctx.stopped) return;
      if (fault !== undefined && chunks === (fault.afterChunks ?? 0)) return this.applyFault(ctx, fault);
      const data = pcm.subarray(offset, offset + this.options.chunkBytes);
      offset += data.length;
      chunks++;
      this.chunksSent.set(ctx.id, (this.chunksSent.get(ctx.id) ?? 0) + 1);
      this.send(ctx.ws, { type: 'chunk', data: data.toString('base64'), done: false, status_code: 206, step_time: 1.5, context_id: ctx.id });
      if (offset >= pcm.length) {
        ctx.streaming = false;
        return this.pump(ctx);
      }
      ctx.timer = setTimeout(step, this.interval());
    };
    ctx.timer = setTimeout(step, this.interval());
  }

  private applyFault(ctx: Context, fault: CartesiaFault): void {
    switch (fault.kind) {
      case 'close':
        if (fault.code === undefined) ctx.ws.terminate();
        else ctx.ws.close(fault.code, 'fake fault');
        break;
      case 'error':
        this.sendError(ctx.ws, ctx.id, fault.statusCode ?? 500, fault.message ?? 'internal error (fake fault)');
        break;
      case 'malformed':
        ctx.ws.send('{"type":"chunk","data":');
        break;
      case 'stall':
        break;
    }
    this.stop(ctx);
  }

  private sendTimestamps(ctx: Context, transcript: string): void {
    const samplesPerChar = this.options.bytesPerChar / 2;
    const words: string[] = [];
    const start: number[] = [];
    const end: number[] = [];
    let chars = 0;
    for (const word of transcript.split(/\s+/).filter((w) => w !== '')) {
      words.push(word);
      start.push((ctx.samples + chars * samplesPerChar) / SAMPLE_RATE);
      chars += word.length;
      end.push((ctx.samples + chars * samplesPerChar) / SAMPLE_RATE);
    }
    if (words.length === 0) return;
    this.send(ctx.ws, { type: 'timestamps', done: false, status_code: 206, context_id: ctx.id, word_timestamps: { words, start, end } });
  }

  private sendError(ws: WebSocket, contextId: string | undefined, status: number, error: string): void {
    const msg: Record<string, unknown> = { type: 'error', error, status_code: status, done: true };
    if (contextId !== undefined) {
      msg.context_id = contextId;
      const ctx = this.contexts.get(contextId);
      if (ctx !== undefined) this.stop(ctx);
    }
    this.send(ws, msg);
  }

  private stop(ctx: Context): void {
    ctx.stopped = true;
    this.stoppedIds.add(ctx.id);
    ctx.jobs.length = 0;
    if (ctx.timer !== null) clearTimeout(ctx.timer);
    ctx.timer = null;
    this.contexts.delete(ctx.id);
  }

  private send(ws: WebSocket, msg: Record<string, unknown>): void {
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg));
  }

  private interval(): number {
    return this.options.realtime ? this.options.chunkBytes / ((SAMPLE_RATE * 2) / 1000) : this.options.chunkIntervalMs;
  }

  /** A continuous 440 Hz tone, starting at sample `from` of the context so requests join without clicks. */
  private tone(from: number, samples: number): Buffer {
    const out = Buffer.alloc(samples * 2);
    for (let i = 0; i < samples; i++) {
      out.writeInt16LE(Math.round(AMPLITUDE * Math.sin((2 * Math.PI * TONE_HZ * (from + i)) / SAMPLE_RATE)), i * 2);
    }
    return out;
  }
}
