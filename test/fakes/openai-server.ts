// A local stand-in for OpenAI's chat-completions endpoint speaking the real SSE streaming protocol, scriptable per
// request (text, tool-call fragments, delays, HTTP errors, resets, malformed lines, stalls) and recording requests.
//
// Usage:
//   const fake = await startFakeOpenAiServer();            // fake.baseUrl = http://127.0.0.1:PORT/v1
//   fake.enqueue({ text: ['Hel', 'lo'], delayMs: 50 });    // next request gets this reply
//   fake.enqueue({ error: { status: 500 } });
//   fake.setHandler((req) => ({ text: ['…'] }));           // used whenever the queue is empty
//   … fake.requests[0].body, .headers.authorization, await fake.requests[0].ended === 'aborted'
//   await fake.close();

import { randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export interface FakeToolCall {
  id: string;
  name: string;
  /** The argument JSON text in the fragments it is streamed in (OpenAI sends a few characters per chunk). */
  arguments: string[];
}

/** A 200 streaming reply. Chunks: a role chunk at once, then content/tool chunks, a finish chunk, [DONE]. */
export interface FakeStreamReply {
  /** Content pieces, one SSE chunk each. */
  text?: string[];
  /** Tool calls, streamed in OpenAI's fragment format after the text. */
  toolCalls?: FakeToolCall[];
  /** Interleave the fragments of parallel tool calls (round-robin by index) instead of one call after another. */
  interleaveToolCalls?: boolean;
  /** Wait before the first content/tool chunk (the role chunk goes out with the headers). Default 0. */
  firstDelayMs?: number;
  /** Wait before each later chunk (including the finish chunk). Default 0. */
  delayMs?: number;
  /** The final chunk's finish_reason; default "tool_calls" when toolCalls are given, else "stop". null: no finish chunk. */
  finishReason?: string | null;
  /** Send `data: [DONE]` at the end. Default true. */
  done?: boolean;
  /**
   * Break the stream after `faultAfter` content/tool chunks:
   * - `reset`: reset the TCP connection (RST) shortly after the chunks before it went out
   * - `malformed`: send a `data:` line that is not JSON, then carry on
   * - `error-event`: send `data: {"error":{…}}` (what OpenAI does when it fails mid-generation), then end
   * - `stall`: stop sending but keep the socket open until the client goes away (or close())
   */
  fault?: 'reset' | 'malformed' | 'error-event' | 'stall';
  faultAfter?: number;
  /** Never answer at all, not even headers: the socket stays open until the client goes away (or close()). */
  hang?: boolean;
}

/** A non-200 reply with OpenAI's error JSON body. */
export interface FakeErrorReply {
  error: { status: number; message?: string; type?: string; code?: string | null; headers?: Record<string, string> };
}

export type FakeReply = FakeStreamReply | FakeErrorReply;

export type RequestOutcome = 'completed' | 'aborted' | 'reset';

export interface RecordedRequest {
  method: string;
  /** Path and query as sent, e.g. `/v1/chat/completions`. */
  url: string;
  headers: IncomingHttpHeaders;
  /** The parsed JSON body (undefined if it was not JSON). */
  body: unknown;
  rawBody: string;
  receivedAt: number;
  /** performance.now() when each SSE data chunk was written (role chunk included), for timing assertions. */
  chunkSentAt: number[];
  /** Set when the exchange ended; `aborted` means the client disconnected before the reply was complete. */
  outcome: RequestOutcome | undefined;
  /** Resolves when the exchange ended (the same value as `outcome`). */
  ended: Promise<RequestOutcome>;
}

export interface FakeOpenAiServer {
  /** `http://127.0.0.1:PORT/v1`: what an OpenAI client uses as baseURL. */
  readonly baseUrl: string;
  readonly port: number;
  readonly requests: readonly RecordedRequest[];
  /** How many requests the client abandoned mid-reply (barge-in, timeout). */
  readonly abortedCount: number;
  /** Queue replies for the next requests, in order. */
  enqueue(...replies: FakeReply[]): void;
  /** Reply for requests that find the queue empty (default: a short "Hello from the fake." text). */
  setHandler(handler: (request: RecordedRequest) => FakeReply): void;
  /** Resolves once `count` requests have been received. */
  waitForRequests(count: number, timeoutMs?: number): Promise<void>;
  /** Destroys every socket and stops listening. Idempotent. */
  close(): Promise<void>;
}

const DEFAULT_REPLY: FakeStreamReply = { text: ['Hello', ' from', ' the', ' fake.'] };

const ERROR_DEFAULTS: Record<number, { type: string; code: string | null; message: string }> = {
  400: { type: 'invalid_request_error', code: null, message: 'Bad request.' },
  401: { type: 'invalid_request_error', code: 'invalid_api_key', message: 'Incorrect API key provided.' },
  404: { type: 'invalid_request_error', code: 'model_not_found', message: 'The model does not exist.' },
  429: { type: 'requests', code: 'rate_limit_exceeded', message: 'Rate limit reached for requests.' },
  500: { type: 'server_error', code: null, message: 'The server had an error while processing your request.' },
  503: { type: 'server_error', code: null, message: 'The engine is currently overloaded.' },
};

export async function startFakeOpenAiServer(): Promise<FakeOpenAiServer> {
  const queue: FakeReply[] = [];
  let handler: (request: RecordedRequest) => FakeReply = () => DEFAULT_REPLY;
  const requests: RecordedRequest[] = [];
  const sockets = new Set<Socket>();
  const requestWaiters = new Set<() => void>();
  // Aborted when the server closes: every pending delay/stall of every reply ends with it.
  const lifetime = new AbortController();

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      // The handler never throws on purpose; a bug here must be loud in test output, not a hung request.
      console.error('fake openai server: handler failed', err);
      res.destroy();
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const rawBody = Buffer.concat(chunks).toString('utf8');
    let body: unknown;
    try {
      body = JSON.parse(rawBody);
    } catch {
      body = undefined;
    }

    let resolveEnded!: (o: RequestOutcome) => void;
    const recorded: RecordedRequest = {
      method: req.method ?? '',
      url: req.url ?? '',
      headers: req.headers,
      body,
      rawBody,
      receivedAt: performance.now(),
      chunkSentAt: [],
      outcome: undefined,
      ended: new Promise<RequestOutcome>((resolve) => (resolveEnded = resolve)),
    };
    const end = (outcome: RequestOutcome): void => {
      if (recorded.outcome !== undefined) return;
      recorded.outcome = outcome;
      resolveEnded(outcome);
    };
    // Per-exchange cancellation: the client went away, or the server is closing.
    const exchange = new AbortController();
    const onLifetimeAbort = (): void => exchange.abort();
    lifetime.signal.addEventListener('abort', onLifetimeAbort, { once: true });
    res.once('close', () => {
      lifetime.signal.removeEventListener('abort', onLifetimeAbort);
      end(res.writableFinished ? 'completed' : 'aborted');
      exchange.abort();
    });

    requests.push(recorded);
    for (const wake of requestWaiters) wake();

    const path = (req.url ?? '').split('?')[0] ?? '';
    if (req.method !== 'POST' || !path.endsWith('/chat/completions')) {
      sendError(res, { status: 404, message: `Unknown route ${req.method ?? ''} ${path}`, code: 'unknown_url' });
      return;
    }
    const reply = queue.shift() ?? handler(recorded);
    if ('error' in reply) {
      sendError(res, reply.error);
      return;
    }
    try {
      await sendStream(res, recorded, reply, exchange.signal, end);
    } catch (err) {
      if (!exchange.signal.aborted) throw err;
    }
  }

  function sendError(res: ServerResponse, e: FakeErrorReply['error']): void {
    const d = ERROR_DEFAULTS[e.status] ?? { type: 'server_error', code: null, message: `HTTP ${e.status}` };
    const payload = {
      error: { message: e.message ?? d.message, type: e.type ?? d.type, param: null, code: e.code ?? d.code },
    };
    res.writeHead(e.status, { 'content-type': 'application/json', ...e.headers });
    res.end(JSON.stringify(payload));
  }

  async function sendStream(
    res: ServerResponse,
    recorded: RecordedRequest,
    reply: FakeStreamReply,
    signal: AbortSignal,
    end: (o: RequestOutcome) => void,
  ): Promise<void> {
    if (reply.hang === true) {
      await waitForAbort(signal);
      return;
    }
    const id = `chatcmpl-${randomBytes(12).toString('hex')}`;
    const created = Math.floor(Date.now() / 1000);
    const requestBody = recorded.body as { model?: unknown } | undefined;
    const model = typeof requestBody?.model === 'string' ? requestBody.model : 'gpt-fake';
    const chunk = (delta: Record<string, unknown>, finishReason: string | null = null): string =>
      JSON.stringify({
        id,
        object: 'chat.completion.chunk',
        created,
        model,
        system_fingerprint: 'fp_fake',
        choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
      });
    const write = (data: string): void => {
      recorded.chunkSentAt.push(performance.now());
      res.write(`data: ${data}\n\n`);
    };

    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-request-id': `req_${randomBytes(8).toString('hex')}`,
    });
    res.flushHeaders();
    const toolCalls = reply.toolCalls ?? [];
    // OpenAI's first chunk carries only the role (content null when the model goes straight to tool calls).
    write(chunk({ role: 'assistant', content: toolCalls.length > 0 && (reply.text ?? []).length === 0 ? null : '', refusal: null }));

    const deltas: Array<Record<string, unknown>> = [];
    for (const text of reply.text ?? []) deltas.push({ content: text });
    const perCall = toolCalls.map((call, index) => [
      { tool_calls: [{ index, id: call.id, type: 'function', function: { name: call.name, arguments: '' } }] },
      ...call.arguments.map((fragment) => ({ tool_calls: [{ index, function: { arguments: fragment } }] })),
    ]);
    if (reply.interleaveToolCalls === true) {
      const longest = Math.max(0, ...perCall.map((c) => c.length));
      for (let i = 0; i < longest; i++) for (const c of perCall) if (c[i] !== undefined) deltas.push(c[i]!);
    } else {
      for (const c of perCall) deltas.push(...c);
    }

    const faultAfter = reply.faultAfter ?? 0;
    for (let i = 0; i <= deltas.length; i++) {
      if (reply.fault !== undefined && i === faultAfter) {
        switch (reply.fault) {
          case 'reset':
            // Let the chunks already written reach the client first, then send a real TCP RST.
            await sleep(30, undefined, { signal });
            end('reset');
            res.socket?.resetAndDestroy();
            return;
          case 'stall':
            await waitForAbort(signal);
            return;
          case 'malformed':
            recorded.chunkSentAt.push(performance.now());
            res.write('data: {"id":"chatcmpl-broken","choices":[{"delta":{"content":"oops"\n\n');
            break;
          case 'error-event':
            recorded.chunkSentAt.push(performance.now());
            res.write(`data: ${JSON.stringify({ error: { message: 'The server had an error while processing your request.', type: 'server_error', param: null, code: null } })}\n\n`);
            res.end();
            return;
        }
      }
      const delta = deltas[i];
      if (delta === undefined) break;
      const wait = i === 0 ? (reply.firstDelayMs ?? 0) : (reply.delayMs ?? 0);
      if (wait > 0) await sleep(wait, undefined, { signal });
      write(chunk(delta));
    }

    const finishReason = reply.finishReason === undefined ? (toolCalls.length > 0 ? 'tool_calls' : 'stop') : reply.finishReason;
    if (finishReason !== null) {
      if ((reply.delayMs ?? 0) > 0 && deltas.length > 0) await sleep(reply.delayMs ?? 0, undefined, { signal });
      write(chunk({}, finishReason));
    }
    if (reply.done !== false) res.write('data: [DONE]\n\n');
    res.end();
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;

  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    port,
    requests,
    get abortedCount() {
      return requests.filter((r) => r.outcome === 'aborted').length;
    },
    enqueue(...replies) {
      queue.push(...replies);
    },
    setHandler(h) {
      handler = h;
    },
    waitForRequests(count, timeoutMs = 2000) {
      if (requests.length >= count) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          requestWaiters.delete(wake);
          reject(new Error(`fake openai server: ${requests.length} of ${count} requests after ${timeoutMs} ms`));
        }, timeoutMs);
        const wake = (): void => {
          if (requests.length < count) return;
          clearTimeout(timer);
          requestWaiters.delete(wake);
          resolve();
        };
        requestWaiters.add(wake);
      });
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        lifetime.abort();
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      });
      return closing;
    },
  };
}

function waitForAbort(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}
