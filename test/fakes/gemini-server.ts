// A local stand-in for the Gemini API's streaming endpoint (`POST /v1beta/models/{model}:streamGenerateContent
// ?alt=sse`, key in `x-goog-api-key`): SSE `data:` lines each holding a GenerateContentResponse (candidates[0]
// content parts: text, or a whole functionCall), the last with a finishReason; HTTP errors carry Google's error
// JSON. Scriptable per request; records requests.

import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export interface FakeGeminiReply {
  text?: string[];
  functionCalls?: Array<{ name: string; args: Record<string, unknown>; id?: string }>;
  delayMs?: number;
  /** Default 'STOP'; null: the stream ends without one (cut off). */
  finishReason?: string | null;
  error?: { status: number; message?: string };
  stall?: boolean;
}

export interface RecordedGeminiRequest {
  path: string;
  query: Record<string, string>;
  headers: IncomingHttpHeaders;
  body: Record<string, unknown>;
  ended: Promise<'completed' | 'aborted'>;
}

export class FakeGeminiServer {
  readonly requests: RecordedGeminiRequest[] = [];
  private readonly queue: FakeGeminiReply[] = [];
  private readonly sockets = new Set<Socket>();
  private readonly server = createServer((req, res) => void this.handle(req, res));
  port = 0;

  private constructor(private readonly apiKey: string) {
    this.server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
    });
  }

  static async start(apiKey: string): Promise<FakeGeminiServer> {
    const fake = new FakeGeminiServer(apiKey);
    await new Promise<void>((resolve) => fake.server.listen(0, '127.0.0.1', () => resolve()));
    fake.port = (fake.server.address() as AddressInfo).port;
    return fake;
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  enqueue(...replies: FakeGeminiReply[]): void {
    this.queue.push(...replies);
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
    this.requests.push({ path: url.pathname, query: Object.fromEntries(url.searchParams), headers: req.headers, body, ended });
    const fail = (code: number, status: string, message: string): void =>
      void res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code, message, status } }));
    if (req.method !== 'POST' || !/^\/v1beta\/models\/[^/:]+:streamGenerateContent$/.test(url.pathname) || url.searchParams.get('alt') !== 'sse') {
      return fail(404, 'NOT_FOUND', 'not found');
    }
    const key = req.headers['x-goog-api-key'];
    if (key !== this.apiKey) return fail(400, 'INVALID_ARGUMENT', `API key not valid: ${String(key)}. Please pass a valid API key.`);
    const contents = body.contents as Array<{ role?: string }> | undefined;
    if (!Array.isArray(contents) || contents[0]?.role !== 'user') return fail(400, 'INVALID_ARGUMENT', 'contents must start with a user turn');
    const reply = this.queue.shift() ?? { text: ['Hello.'] };
    if (reply.error !== undefined) return fail(reply.error.status, 'INTERNAL', reply.error.message ?? 'Internal error');
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    if (reply.stall === true) return;
    const send = (parts: unknown[], finishReason?: string): void => {
      const candidate = { content: { role: 'model', parts }, index: 0, ...(finishReason !== undefined ? { finishReason } : {}) };
      if (!res.destroyed) res.write(`data: ${JSON.stringify({ candidates: [candidate], modelVersion: 'fake' })}\r\n\r\n`);
    };
    const texts = reply.text ?? [];
    const finish = reply.finishReason === undefined ? 'STOP' : reply.finishReason;
    for (const [i, text] of texts.entries()) {
      if ((reply.delayMs ?? 0) > 0) await sleep(reply.delayMs);
      const last = i === texts.length - 1 && (reply.functionCalls ?? []).length === 0;
      send([{ text }], last && finish !== null ? finish : undefined);
    }
    if ((reply.functionCalls ?? []).length > 0) {
      send((reply.functionCalls ?? []).map((c) => ({ functionCall: c })), finish ?? undefined);
    } else if (texts.length === 0 && finish !== null) {
      send([], finish);
    }
    res.end();
  }
}
