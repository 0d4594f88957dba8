// A local stand-in for Anthropic's Messages API (`POST /v1/messages` with `stream: true`) speaking its SSE event
// protocol (message_start, content_block_start/delta/stop with text_delta and input_json_delta, message_delta with
// stop_reason, message_stop; `event: error` mid-stream; JSON error bodies with HTTP errors). Scriptable per
// request; records requests. Checks the key and the `anthropic-version` header as the API does.

import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export interface FakeAnthropicReply {
  text?: string[];
  /** tool_use blocks after the text; `input` is streamed as input_json_delta pieces. */
  toolCalls?: Array<{ id: string; name: string; input: string[] }>;
  delayMs?: number;
  /** Default 'end_turn' (or 'tool_use' with toolCalls); null: the stream ends without message_delta (cut off). */
  stopReason?: string | null;
  /** An HTTP error with Anthropic's error body. */
  error?: { status: number; message?: string };
  /** An `event: error` after the text (Anthropic's overloaded_error mid-stream). */
  errorEvent?: boolean;
  /** Send headers and then nothing until the client goes away. */
  stall?: boolean;
}

export interface RecordedAnthropicRequest {
  url: string;
  headers: IncomingHttpHeaders;
  body: Record<string, unknown>;
  ended: Promise<'completed' | 'aborted'>;
}

export class FakeAnthropicServer {
  readonly requests: RecordedAnthropicRequest[] = [];
  private readonly queue: FakeAnthropicReply[] = [];
  private readonly sockets = new Set<Socket>();
  private readonly server = createServer((req, res) => void this.handle(req, res));
  port = 0;

  constructor(private readonly apiKey: string) {
    this.server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
    });
  }

  static async start(apiKey: string): Promise<FakeAnthropicServer> {
    const fake = new FakeAnthropicServer(apiKey);
    await new Promise<void>((resolve) => fake.server.listen(0, '127.0.0.1', () => resolve()));
    fake.port = (fake.server.address() as AddressInfo).port;
    return fake;
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  enqueue(...replies: FakeAnthropicReply[]): void {
    this.queue.push(...replies);
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
    } catch {
      // recorded as {}: the error reply below says why
    }
    let closed = false;
    const ended = new Promise<'completed' | 'aborted'>((resolve) => {
      res.once('close', () => {
        closed = true;
        resolve(res.writableFinished ? 'completed' : 'aborted');
      });
    });
    this.requests.push({ url: req.url ?? '', headers: req.headers, body, ended });
    const fail = (status: number, type: string, message: string): void => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ type: 'error', error: { type, message } }));
    };
    if (req.method !== 'POST' || req.url !== '/v1/messages') return fail(404, 'not_found_error', 'Not found');
    // The API takes the key as `x-api-key`; the SDK 1.x sends it as `Authorization: Bearer` (both are accepted).
    const key = req.headers['x-api-key'] ?? /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    if (key !== this.apiKey) return fail(401, 'authentication_error', `invalid x-api-key ${String(key)}`);
    if (typeof req.headers['anthropic-version'] !== 'string') return fail(400, 'invalid_request_error', 'anthropic-version header is required');
    if (body.stream !== true || typeof body.max_tokens !== 'number' || !Array.isArray(body.messages)) {
      return fail(400, 'invalid_request_error', 'stream, max_tokens and messages are required');
    }
    const first = (body.messages as Array<{ role?: string }>)[0];
    if (first?.role !== 'user') return fail(400, 'invalid_request_error', 'messages: the first message must use the "user" role');
    const reply = this.queue.shift() ?? { text: ['Hello.'] };
    if (reply.error !== undefined) return fail(reply.error.status, 'api_error', reply.error.message ?? 'Internal server error');

    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const send = (event: string, data: Record<string, unknown>): void => {
      if (!closed) res.write(`event: ${event}\ndata: ${JSON.stringify({ type: event, ...data })}\n\n`);
    };
    const pause = async (): Promise<void> => {
      if ((reply.delayMs ?? 0) > 0) await sleep(reply.delayMs);
    };
    send('message_start', { message: { id: 'msg_fake', type: 'message', role: 'assistant', model: body.model, content: [], stop_reason: null, usage: { input_tokens: 1, output_tokens: 0 } } });
    if (reply.stall === true) return;
    let index = 0;
    if ((reply.text ?? []).length > 0) {
      send('content_block_start', { index, content_block: { type: 'text', text: '' } });
      for (const text of reply.text ?? []) {
        await pause();
        send('content_block_delta', { index, delta: { type: 'text_delta', text } });
      }
      send('content_block_stop', { index });
      index++;
    }
    if (reply.errorEvent === true) {
      send('error', { error: { type: 'overloaded_error', message: 'Overloaded' } });
      res.end();
      return;
    }
    for (const call of reply.toolCalls ?? []) {
      send('content_block_start', { index, content_block: { type: 'tool_use', id: call.id, name: call.name, input: {} } });
      for (const piece of call.input) {
        await pause();
        send('content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: piece } });
      }
      send('content_block_stop', { index });
      index++;
    }
    const stop = reply.stopReason === undefined ? ((reply.toolCalls ?? []).length > 0 ? 'tool_use' : 'end_turn') : reply.stopReason;
    if (stop !== null) {
      await pause();
      send('message_delta', { delta: { stop_reason: stop, stop_sequence: null }, usage: { output_tokens: 5 } });
      send('message_stop', {});
    }
    res.end();
  }
}
