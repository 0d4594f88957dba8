// What the local live-STT fakes (Cartesia, ElevenLabs) share: a real HTTP server taking real WebSocket upgrades,
// a record of every session (path, query, headers, audio received, text frames), and scriptable faults (refused
// or stalled upgrades, cut sessions, scripted transcripts). Each subclass speaks its provider's wire protocol:
// where the session lives, how the key is checked, how audio arrives and how transcripts and errors look.

import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { waitUntil } from '../helpers/wait.js';

export interface LiveSttConnection {
  readonly index: number;
  readonly path: string;
  readonly query: Readonly<Record<string, string>>;
  readonly headers: IncomingHttpHeaders;
  audioBytes: number;
  audioFrames: number;
  /** Audio bytes since the last scripted utterance (drives `autoTranscribe`). */
  bytesSinceResult: number;
  /** Text frames that were not audio, in order. */
  texts: string[];
  closed: boolean;
  closeCode: number | undefined;
  readonly ws: WebSocket;
  readonly tcp: Socket;
}

export interface AutoTranscribe {
  /** After this many audio bytes since the last utterance, send one interim then one final transcript. */
  afterBytes: number;
  /** The final text of the n-th utterance (n counts from 0 across all sessions). */
  text: (n: number) => string;
}

export abstract class LiveSttFake {
  readonly connections: LiveSttConnection[] = [];
  readonly refusals: Array<{ status: number; path: string; headers: IncomingHttpHeaders }> = [];
  utterances = 0;
  private refuse: { status: number; remaining: number } | null = null;
  private stallUpgrades = false;
  private drop: { afterBytes: number; mode: 'once' | 'always'; used: boolean } | null = null;
  private auto: AutoTranscribe | null = null;
  private readonly wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
  private readonly pending = new Set<Socket>();
  private http: Server | null = null;

  /** The session endpoint, e.g. `/stt/websocket`. */
  protected abstract readonly path: string;
  /** Whether the upgrade carries the right key. */
  protected abstract authorized(req: IncomingMessage): boolean;
  /** A wrong key, the provider's way: an HTTP status at the upgrade, or a message and a close on the session. */
  protected abstract refuseKey(req: IncomingMessage, socket: Socket, head: Buffer, accept: (then: (ws: WebSocket) => void) => void): void;
  /** The session just opened (a greeting, if the protocol has one). */
  protected abstract opened(c: LiveSttConnection): void;
  /** A frame from the client: audio (call `this.audio`) or a protocol message. */
  protected abstract frame(c: LiveSttConnection, data: Buffer, isBinary: boolean): void;
  /** One transcript in the provider's shape. */
  abstract sendTranscript(text: string, final: boolean, c?: LiveSttConnection): void;

  async listen(): Promise<void> {
    const http = createServer((_req, res) => res.writeHead(404).end());
    http.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => this.onUpgrade(req, socket, head));
    await new Promise<void>((resolve, reject) => {
      http.once('error', reject);
      http.listen(0, '127.0.0.1', () => resolve());
    });
    this.http = http;
  }

  get port(): number {
    return (this.http?.address() as AddressInfo).port;
  }

  /** The `http://` base to give the SDK (it derives `ws://` from it). */
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get last(): LiveSttConnection {
    const c = this.connections[this.connections.length - 1];
    if (c === undefined) throw new Error('no session yet');
    return c;
  }

  get openConnections(): number {
    return this.connections.filter((c) => !c.closed).length;
  }

  reset(): void {
    this.connections.length = 0;
    this.refusals.length = 0;
    this.utterances = 0;
    this.refuse = null;
    this.stallUpgrades = false;
    this.drop = null;
    this.auto = null;
  }

  refuseUpgrades(status: number, count = Infinity): void {
    this.refuse = { status, remaining: count };
  }

  /** Accept TCP but never answer the upgrade. */
  stallUpgrade(on = true): void {
    this.stallUpgrades = on;
  }

  /** Cut a session (TCP reset, no close frame: the client sees 1006) once it received `afterBytes` of audio. */
  dropAfter(afterBytes: number, mode: 'once' | 'always' = 'once'): void {
    this.drop = { afterBytes, mode, used: false };
  }

  autoTranscribe(script: AutoTranscribe | null): void {
    this.auto = script;
  }

  sendRaw(text: string, c: LiveSttConnection = this.last): void {
    c.ws.send(text);
  }

  waitFor(predicate: () => boolean, what: string, timeoutMs = 3000): Promise<number> {
    return waitUntil(what, predicate, timeoutMs);
  }

  async close(): Promise<void> {
    for (const s of this.pending) s.destroy();
    for (const c of this.connections) c.ws.terminate();
    for (const ws of this.wss.clients) ws.terminate();
    this.wss.close();
    const http = this.http;
    if (http !== null) await new Promise<void>((resolve) => http.close(() => resolve()));
  }

  /** Audio arrived on a session: counted, then the drop and transcript scripts run. */
  protected audio(c: LiveSttConnection, bytes: number): void {
    c.audioBytes += bytes;
    c.audioFrames += 1;
    c.bytesSinceResult += bytes;
    const d = this.drop;
    if (d !== null && c.audioBytes >= d.afterBytes && !(d.mode === 'once' && d.used)) {
      d.used = true;
      c.tcp.destroy();
      return;
    }
    const a = this.auto;
    if (a !== null && c.bytesSinceResult >= a.afterBytes) {
      c.bytesSinceResult = 0;
      const text = a.text(this.utterances++);
      this.sendTranscript(text.split(' ').slice(0, -1).join(' ') || text, false, c);
      this.sendTranscript(text, true, c);
    }
  }

  private onUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    const url = new URL(req.url ?? '/', 'http://fake');
    if (this.stallUpgrades) {
      this.pending.add(socket);
      socket.once('close', () => this.pending.delete(socket));
      return;
    }
    if (url.pathname !== this.path) {
      socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    if (this.refuse !== null && this.refuse.remaining > 0) {
      this.refuse.remaining -= 1;
      this.refusals.push({ status: this.refuse.status, path: url.pathname, headers: req.headers });
      socket.end(`HTTP/1.1 ${this.refuse.status} Refused\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}`);
      return;
    }
    const accept = (then: (ws: WebSocket) => void): void => this.wss.handleUpgrade(req, socket, head, then);
    if (!this.authorized(req)) {
      this.refuseKey(req, socket, head, accept);
      return;
    }
    accept((ws) => {
      const c: LiveSttConnection = {
        index: this.connections.length,
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        headers: req.headers,
        audioBytes: 0,
        audioFrames: 0,
        bytesSinceResult: 0,
        texts: [],
        closed: false,
        closeCode: undefined,
        ws,
        tcp: socket,
      };
      this.connections.push(c);
      ws.on('message', (data: RawData, isBinary: boolean) => this.frame(c, Buffer.isBuffer(data) ? data : Buffer.from(data as ArrayBuffer), isBinary));
      ws.on('close', (code: number) => {
        c.closed = true;
        c.closeCode = code;
      });
      ws.on('error', () => {});
      this.opened(c);
    });
  }
}
