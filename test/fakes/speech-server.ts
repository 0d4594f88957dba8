// A local stand-in for the two request-per-sentence TTS APIs: OpenAI's `POST /v1/audio/speech` (JSON body,
// `Authorization: Bearer`, `response_format: "pcm"` → 24 kHz s16le) and Deepgram's `POST /v1/speak` (query
// parameters `model`, `encoding=linear16`, `sample_rate`, `container=none`, body `{"text"}`, `Authorization:
// Token`). Audio is streamed in chunks as it is "generated"; requests are recorded; faults are scriptable.

import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type SpeechFault = { kind: 'status'; status: number } | { kind: 'stall'; afterChunks: number };

export interface RecordedSpeechRequest {
  api: 'openai' | 'deepgram';
  path: string;
  query: Record<string, string>;
  headers: IncomingHttpHeaders;
  body: Record<string, unknown>;
  ended: Promise<'completed' | 'aborted'>;
}

export class FakeSpeechServer {
  readonly requests: RecordedSpeechRequest[] = [];
  readonly faults: SpeechFault[] = [];
  /** Audio per character of text. */
  bytesPerChar = 100;
  chunkBytes = 960;
  chunkIntervalMs = 5;
  private readonly sockets = new Set<Socket>();
  private readonly server = createServer((req, res) => void this.handle(req, res));
  port = 0;

  private constructor(private readonly keys: { openai: string; deepgram: string }) {
    this.server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
    });
  }

  static async start(keys: { openai: string; deepgram: string }): Promise<FakeSpeechServer> {
    const fake = new FakeSpeechServer(keys);
    await new Promise<void>((resolve) => fake.server.listen(0, '127.0.0.1', () => resolve()));
    fake.port = (fake.server.address() as AddressInfo).port;
    return fake;
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake');
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
    } catch {
      // {}: refused below
    }
    const ended = new Promise<'completed' | 'aborted'>((resolve) => res.once('close', () => resolve(res.writableFinished ? 'completed' : 'aborted')));
    const api = url.pathname === '/v1/audio/speech' ? 'openai' : url.pathname === '/v1/speak' ? 'deepgram' : null;
    const json = (status: number, payload: unknown): void => void res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(payload));
    if (req.method !== 'POST' || api === null) return json(404, { error: 'not found' });
    this.requests.push({ api, path: url.pathname, query: Object.fromEntries(url.searchParams), headers: req.headers, body, ended });
    const auth = req.headers.authorization ?? '';
    if (api === 'openai' && auth !== `Bearer ${this.keys.openai}`) return json(401, { error: { message: `Incorrect API key provided: ${auth.slice(7)}`, type: 'invalid_request_error' } });
    if (api === 'deepgram' && auth !== `Token ${this.keys.deepgram}`) return json(401, { err_code: 'INVALID_AUTH', err_msg: 'Invalid credentials.' });
    let text: string;
    if (api === 'openai') {
      if (body.response_format !== 'pcm' || typeof body.input !== 'string' || typeof body.voice !== 'string' || typeof body.model !== 'string') {
        return json(400, { error: { message: 'model, voice, input and response_format pcm are required here', type: 'invalid_request_error' } });
      }
      text = body.input;
    } else {
      const q = url.searchParams;
      if (q.get('encoding') !== 'linear16' || q.get('container') !== 'none' || !q.has('sample_rate') || typeof body.text !== 'string') {
        return json(400, { err_code: 'Bad Request', err_msg: 'linear16, container none, sample_rate and text are required here' });
      }
      text = body.text;
    }
    const fault = this.faults.shift();
    if (fault?.kind === 'status') return json(fault.status, { error: { message: `scripted ${fault.status}` } });
    res.writeHead(200, { 'content-type': api === 'openai' ? 'audio/pcm' : 'audio/l16' });
    let remaining = text.length * this.bytesPerChar;
    let sent = 0;
    while (remaining > 0 && !res.destroyed) {
      if (fault?.kind === 'stall' && sent >= fault.afterChunks) return; // keep the socket open, send nothing more
      const n = Math.min(this.chunkBytes, remaining);
      res.write(Buffer.alloc(n, 1));
      remaining -= n;
      sent++;
      await new Promise((r) => setTimeout(r, this.chunkIntervalMs));
    }
    res.end();
  }
}
