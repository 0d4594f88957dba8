// A local stand-in for ElevenLabs' multi-context TTS WebSocket (`/v1/text-to-speech/{voice_id}/multi-stream-input`)
// speaking its documented wire format: snake_case requests (`text`, `context_id`, `flush`, `close_context`,
// `close_socket`), camelCase replies (`audio` base64, `alignment` with chunk-relative `charStartTimesMs`,
// `contextId`, `isFinal`). Key in the `xi-api-key` header. It records what the client sends and streams
// deterministic PCM (`pcm_16000`: s16le 16 kHz), with scriptable faults.

import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocket, WebSocketServer } from 'ws';
import { waitUntil } from '../helpers/wait.js';

export interface FakeElevenLabsOptions {
  apiKey?: string;
  /** Audio per character (spaces included). Default 320 B = 10 ms at 16 kHz. */
  bytesPerChar?: number;
  /** Characters per audio message: a word may span two messages. Default 8. */
  charsPerChunk?: number;
  /** Pause between audio messages. Default 0. */
  chunkIntervalMs?: number;
}

export type ElevenLabsFault =
  /** Close the connection abruptly (the client sees 1006) after `afterChunks` audio messages. */
  | { kind: 'close'; afterChunks?: number }
  /** An error object (as ElevenLabs sends for a bad request), then nothing more for the context. */
  | { kind: 'error'; afterChunks?: number; message?: string }
  /** Nothing more for the context. */
  | { kind: 'stall'; afterChunks?: number };

export interface RecordedElevenLabsUpgrade {
  path: string;
  query: Record<string, string>;
  headers: IncomingHttpHeaders;
}

interface Context {
  id: string;
  ws: WebSocket;
  pending: string[];
  closing: boolean;
  streaming: boolean;
  stopped: boolean;
  chunksSent: number;
}

const ALLOWED_KEYS = new Set(['text', 'context_id', 'flush', 'close_context', 'close_socket', 'voice_settings', 'generation_config', 'xi_api_key']);

export class FakeElevenLabsServer {
  readonly upgrades: RecordedElevenLabsUpgrade[] = [];
  readonly messages: Array<Record<string, unknown>> = [];
  /** Context ids of every `close_context` received, in order. */
  readonly closedContexts: string[] = [];
  /** Context ids for which `isFinal` was sent. */
  readonly finals: string[] = [];
  /** Protocol violations seen (a wrong key name, a context that did not start with " "). */
  readonly violations: string[] = [];
  readonly faults: ElevenLabsFault[] = [];
  rejectUpgrades: number | null = null;
  readonly options: Required<Omit<FakeElevenLabsOptions, 'apiKey'>> & { apiKey: string | undefined };

  private readonly wss = new WebSocketServer({ noServer: true });
  private readonly sockets = new Set<WebSocket>();
  private readonly rawSockets = new Set<Duplex>();
  private readonly contexts = new Map<string, Context>();

  private constructor(
    private readonly http: Server,
    readonly port: number,
    options: FakeElevenLabsOptions,
  ) {
    this.options = {
      apiKey: options.apiKey,
      bytesPerChar: options.bytesPerChar ?? 320,
      charsPerChunk: options.charsPerChunk ?? 8,
      chunkIntervalMs: options.chunkIntervalMs ?? 0,
    };
    http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(req, socket, head));
    http.on('connection', (socket: Socket) => {
      this.rawSockets.add(socket);
      socket.once('close', () => this.rawSockets.delete(socket));
    });
  }

  static async start(options: FakeElevenLabsOptions = {}): Promise<FakeElevenLabsServer> {
    const http = createServer((_req, res) => res.writeHead(404).end());
    await new Promise<void>((resolve, reject) => {
      http.once('error', reject);
      http.listen(0, '127.0.0.1', () => resolve());
    });
    const address = http.address();
    if (address === null || typeof address === 'string') throw new Error('fake ElevenLabs server has no TCP address');
    return new FakeElevenLabsServer(http, address.port, options);
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get openConnections(): number {
    return this.sockets.size;
  }

  /** The texts sent for a context, in order (the opening " " included). */
  textsOf(contextId: string): string[] {
    return this.messages.filter((m) => m.context_id === contextId && typeof m.text === 'string').map((m) => m.text as string);
  }

  async waitFor(predicate: () => boolean, timeoutMs = 2000, what = 'condition'): Promise<void> {
    await waitUntil(`fake ElevenLabs: ${what}`, predicate, timeoutMs);
  }

  dropConnections(): void {
    for (const ws of this.sockets) ws.terminate();
  }

  async close(): Promise<void> {
    for (const ctx of this.contexts.values()) ctx.stopped = true;
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
    if (!/^\/v1\/text-to-speech\/[A-Za-z0-9]+\/multi-stream-input$/.test(url.pathname)) return reject(404, 'Not Found');
    if (this.rejectUpgrades !== null) return reject(this.rejectUpgrades, 'Rejected');
    if (this.options.apiKey !== undefined && req.headers['xi-api-key'] !== this.options.apiKey) return reject(401, 'Unauthorized');
    this.wss.handleUpgrade(req, socket, head, (ws) => this.onConnection(ws));
  }

  private onConnection(ws: WebSocket): void {
    this.sockets.add(ws);
    ws.on('error', () => undefined);
    ws.on('close', () => {
      this.sockets.delete(ws);
      for (const ctx of this.contexts.values()) if (ctx.ws === ws) ctx.stopped = true;
    });
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) return this.violation(ws, 'binary frame');
      let m: unknown;
      try {
        m = JSON.parse(data.toString('utf8'));
      } catch {
        return this.violation(ws, 'not JSON');
      }
      if (typeof m !== 'object' || m === null) return this.violation(ws, 'not an object');
      this.onMessage(ws, m as Record<string, unknown>);
    });
  }

  private onMessage(ws: WebSocket, m: Record<string, unknown>): void {
    this.messages.push(m);
    for (const key of Object.keys(m)) if (!ALLOWED_KEYS.has(key)) return this.violation(ws, `unknown key ${key}`);
    if (m.close_socket === true) {
      ws.close(1000);
      return;
    }
    const id = typeof m.context_id === 'string' ? m.context_id : '';
    if (id === '') return this.violation(ws, 'message without context_id');
    let ctx = this.contexts.get(id);
    if (m.close_context === true) {
      this.closedContexts.push(id);
      if (ctx !== undefined) {
        ctx.closing = true;
        this.pump(ctx);
      }
      return;
    }
    if (typeof m.text !== 'string') return this.violation(ws, 'message without text');
    if (ctx === undefined) {
      if (m.text !== ' ') return this.violation(ws, `context ${id} did not start with " "`);
      ctx = { id, ws, pending: [], closing: false, streaming: false, stopped: false, chunksSent: 0 };
      this.contexts.set(id, ctx);
      return;
    }
    if (!m.text.endsWith(' ')) this.violations.push(`text of ${id} does not end with a space`);
    if (m.flush === true && m.text !== '') {
      ctx.pending.push(m.text);
      this.pump(ctx);
    }
  }

  private violation(ws: WebSocket, what: string): void {
    this.violations.push(what);
    ws.send(JSON.stringify({ message: `invalid message: ${what}`, error: 'invalid_request', code: 1008 }));
  }

  /** Streams the context's pending text, then `isFinal` once it was closed and everything was sent. */
  private pump(ctx: Context): void {
    if (ctx.streaming || ctx.stopped) return;
    ctx.streaming = true;
    const step = (): void => {
      if (ctx.stopped || ctx.ws.readyState !== WebSocket.OPEN) return;
      const text = ctx.pending.shift();
      if (text === undefined) {
        ctx.streaming = false;
        if (ctx.closing) {
          ctx.stopped = true;
          this.finals.push(ctx.id);
          ctx.ws.send(JSON.stringify({ isFinal: true, contextId: ctx.id }));
        }
        return;
      }
      const chars = [...text];
      const per = this.options.charsPerChunk;
      const chunks: string[][] = [];
      for (let i = 0; i < chars.length; i += per) chunks.push(chars.slice(i, i + per));
      const sendChunk = (k: number): void => {
        if (ctx.stopped || ctx.ws.readyState !== WebSocket.OPEN) return;
        const part = chunks[k];
        if (part === undefined) {
          step();
          return;
        }
        if (this.applyFault(ctx)) return;
        const msPerChar = this.options.bytesPerChar / 32;
        const pcm = tone(part.length * this.options.bytesPerChar);
        const alignment = { chars: part, charStartTimesMs: part.map((_, i) => i * msPerChar), charDurationsMs: part.map(() => msPerChar) };
        ctx.ws.send(JSON.stringify({ audio: pcm.toString('base64'), alignment, normalizedAlignment: alignment, contextId: ctx.id }));
        ctx.chunksSent++;
        const next = (): void => sendChunk(k + 1);
        if (this.options.chunkIntervalMs > 0) setTimeout(next, this.options.chunkIntervalMs);
        else setImmediate(next);
      };
      sendChunk(0);
    };
    step();
  }

  /** Applies the next fault when its chunk count is reached; true when the context must stop. */
  private applyFault(ctx: Context): boolean {
    const fault = this.faults[0];
    if (fault === undefined || ctx.chunksSent < (fault.afterChunks ?? 0)) return false;
    this.faults.shift();
    ctx.stopped = true;
    if (fault.kind === 'close') ctx.ws.terminate();
    else if (fault.kind === 'error') ctx.ws.send(JSON.stringify({ message: fault.message ?? 'generation failed', error: 'internal_error', contextId: ctx.id }));
    return true;
  }
}

function tone(bytes: number): Buffer {
  const pcm = Buffer.alloc(bytes - (bytes % 2));
  for (let i = 0; i < pcm.length / 2; i++) pcm.writeInt16LE(Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / 16_000)), i * 2);
  return pcm;
}
