// LLM client for OpenAI and every OpenAI-compatible server (SPEC §3.4): streams chat completions through the
// official `openai` SDK, reassembles streamed tool calls, and turns every failure into a ProviderError.
//
// Behaviour the caller relies on:
// - Abort: when request.signal aborts, the HTTP stream is cancelled at once and the iteration ENDS QUIETLY (no
//   throw, no further chunks). The caller tells an abort from a completed generation by its own signal.aborted.
//   (The SDK itself swallows AbortError while iterating; we keep that contract before the stream opens too.)
// - Retries: maxRetries 0. The caller owns retries through ProviderError.retryable, because only it knows
//   whether the turn still matters (barge-in), and the SDK's hidden backoff (it honours Retry-After up to 60 s)
//   would blow the voice latency budget and hide the real HTTP status behind our first-token watchdog.
// - Timeouts: the SDK's `timeout` only covers the wait for response headers (it is cleared once fetch
//   resolves), so stalls are caught by our own watchdog: no token within firstTokenTimeoutMs of the request, or
//   no chunk within idleTimeoutMs afterwards → the request is aborted and a retryable ProviderError thrown. The
//   watchdog only runs while waiting on the network, never while the consumer holds a yielded chunk.
// - End of stream: the SDK treats a body that ends without `data: [DONE]` as a normal end and does not tell us
//   whether [DONE] came. What we check is finish_reason: a stream that ends without any finish_reason was cut
//   off (partial text, possibly half a tool call) → retryable ProviderError. finish_reason without [DONE] is
//   accepted: the model did finish.

import OpenAI from 'openai';
import type { ChatCompletionChunk, ChatCompletionCreateParamsStreaming, ChatCompletionMessageParam } from 'openai/resources/chat/completions';

import { ProviderError, redactSecrets } from '../../errors.js';
import type { LlmChunk, LlmClient, LlmRequest, LlmToolCall } from '../types.js';

export interface OpenAiLlmSettings {
  /** Vendor name from llm_type (`openai`, `grok`, …): only used in names and error messages. */
  vendor: string;
  model: string;
  apiKey: string;
  /** OpenAI-compatible base URL, e.g. `https://api.openai.com/v1`. */
  baseUrl: string;
  /** No first token (text or tool call) within this long after the request → failure. Default 10000. */
  firstTokenTimeoutMs?: number;
  /** A stream that stalls this long between chunks after the first token → failure. Default 15000. */
  idleTimeoutMs?: number;
}

const DEFAULT_FIRST_TOKEN_TIMEOUT_MS = 10_000;
const DEFAULT_IDLE_TIMEOUT_MS = 15_000;

// Servers that need no key (ollama) still get an Authorization header: the SDK refuses to start without one.
const NO_KEY_PLACEHOLDER = 'none';

interface PartialToolCall {
  id: string;
  name: string;
  arguments: string;
}

export function createOpenAiLlm(settings: OpenAiLlmSettings): LlmClient {
  const name = `${settings.vendor}.${settings.model}`;
  const firstTokenTimeoutMs = settings.firstTokenTimeoutMs ?? DEFAULT_FIRST_TOKEN_TIMEOUT_MS;
  const idleTimeoutMs = settings.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  const host = hostOf(settings.baseUrl);
  const where = `${settings.vendor} LLM at ${host}`;

  const client = new OpenAI({
    baseURL: settings.baseUrl,
    apiKey: settings.apiKey === '' ? NO_KEY_PLACEHOLDER : settings.apiKey,
    // Explicit nulls stop the SDK from reading OPENAI_ORG_ID/OPENAI_PROJECT_ID: config comes from one place.
    organization: null,
    project: null,
    maxRetries: 0,
    // Backstop for the header phase only; our watchdog (same budget) normally fires first.
    timeout: Math.max(1, Math.ceil(firstTokenTimeoutMs)),
    // The SDK logs malformed SSE data to console.error by default; we report it as a ProviderError instead.
    logLevel: 'off',
  });

  /** A safe message: the key and credential-looking strings are blanked out. */
  const redact = (text: string): string => {
    const withoutKey = settings.apiKey.length >= 4 ? text.split(settings.apiKey).join('***') : text;
    return redactSecrets(withoutKey);
  };

  function toProviderError(err: unknown): ProviderError {
    if (err instanceof ProviderError) return err;
    if (err instanceof OpenAI.APIConnectionTimeoutError) {
      return new ProviderError(name, 'llm', `${where}: no response within ${firstTokenTimeoutMs} ms`, {
        retryable: true,
      });
    }
    if (err instanceof OpenAI.APIConnectionError) {
      return new ProviderError(name, 'llm', `${where}: connection failed: ${redact(describeCause(err.cause))}`, {
        cause: err.cause,
        retryable: true,
      });
    }
    if (err instanceof OpenAI.APIError) {
      const detail = redact(apiErrorDetail(err));
      const requestId = typeof err.requestID === 'string' ? ` (request id ${err.requestID})` : '';
      if (typeof err.status === 'number') {
        const status = err.status;
        // No `cause`: the SDK error carries the response body, which some servers fill with the key.
        return new ProviderError(name, 'llm', `${where} answered HTTP ${status}: ${detail}${requestId}`, {
          retryable: status === 408 || status === 429 || status >= 500,
        });
      }
      // An `error` object inside the SSE stream: the server gave up mid-generation.
      return new ProviderError(name, 'llm', `${where} reported an error mid-stream: ${detail}${requestId}`, {
        retryable: true,
      });
    }
    if (err instanceof SyntaxError) {
      // A server that sends garbage is not expected to heal on an immediate retry.
      return new ProviderError(name, 'llm', `${where} sent a malformed stream (invalid JSON in an SSE event)`, {
        cause: err,
        retryable: false,
      });
    }
    // undici surfaces a socket closed mid-body as `TypeError: terminated` with the socket error as cause.
    return new ProviderError(name, 'llm', `${where}: stream failed: ${redact(describeCause(err))}`, {
      cause: err,
      retryable: true,
    });
  }

  async function* stream(request: LlmRequest): AsyncGenerator<LlmChunk, void, undefined> {
    const { signal } = request;
    if (signal.aborted) return;

    // One controller per request: it cancels the HTTP exchange on caller abort, on stall, and on early exit.
    // Listening on the caller's (possibly call-long) signal ourselves keeps no listener behind after the turn.
    const controller = new AbortController();
    const onAbort = (): void => controller.abort();
    signal.addEventListener('abort', onAbort, { once: true });

    const startedAt = performance.now();
    let gotFirstToken = false;
    let stallMessage: string | undefined;
    let watchdog: NodeJS.Timeout | undefined;
    const arm = (): void => {
      const ms = gotFirstToken ? idleTimeoutMs : Math.max(0, startedAt + firstTokenTimeoutMs - performance.now());
      watchdog = setTimeout(() => {
        stallMessage = gotFirstToken
          ? `${where}: stream stalled (no data for ${idleTimeoutMs} ms)`
          : `${where}: no first token within ${firstTokenTimeoutMs} ms`;
        controller.abort();
      }, ms);
    };
    const disarm = (): void => {
      if (watchdog !== undefined) clearTimeout(watchdog);
      watchdog = undefined;
    };
    /** After the SDK gave up or ended: an abort we caused is a stall, one the caller caused ends quietly. */
    const stalled = (): ProviderError | undefined =>
      signal.aborted || stallMessage === undefined
        ? undefined
        : new ProviderError(name, 'llm', stallMessage, { retryable: true });

    const body: ChatCompletionCreateParamsStreaming = {
      model: settings.model,
      // Passed through untouched: assistant messages with tool_calls and their tool replies must survive.
      messages: request.messages as unknown as ChatCompletionMessageParam[],
      stream: true,
      ...(request.tools.length > 0
        ? {
            tools: request.tools.map((t) => ({
              type: 'function' as const,
              function: { name: t.name, description: t.description, parameters: t.parameters },
            })),
          }
        : {}),
    };

    let iterator: AsyncIterator<ChatCompletionChunk> | undefined;
    let iteratorDone = false;
    try {
      arm();
      let sdkStream: AsyncIterable<ChatCompletionChunk>;
      try {
        sdkStream = await client.chat.completions.create(body, { signal: controller.signal });
      } catch (err) {
        if (signal.aborted) return;
        throw stalled() ?? toProviderError(err);
      } finally {
        disarm();
      }
      iterator = sdkStream[Symbol.asyncIterator]();

      const toolCalls: PartialToolCall[] = [];
      let finishReason: string | undefined;
      for (;;) {
        arm();
        let next: IteratorResult<ChatCompletionChunk>;
        try {
          next = await iterator.next();
        } catch (err) {
          iteratorDone = true;
          if (signal.aborted) return;
          throw stalled() ?? toProviderError(err);
        } finally {
          disarm();
        }
        if (next.done === true) {
          iteratorDone = true;
          break;
        }

        // n is 1: only choice 0 exists. Chunks without choices (usage) still count as liveness.
        const choice = next.value.choices[0];
        if (choice === undefined) continue;
        const delta = choice.delta as ChatCompletionChunk.Choice.Delta | undefined;
        const content = delta?.content;
        if (typeof content === 'string' && content !== '') {
          gotFirstToken = true;
          yield { type: 'text', text: content };
          if (signal.aborted) return;
        }
        for (const fragment of delta?.tool_calls ?? []) {
          gotFirstToken = true;
          // Accumulated by index as the SDK's own ChatCompletionStream does: id and name arrive whole (in the
          // first fragment of each call), arguments arrive as JSON text in pieces.
          const call = (toolCalls[fragment.index] ??= { id: '', name: '', arguments: '' });
          if (typeof fragment.id === 'string' && fragment.id !== '') call.id = fragment.id;
          if (typeof fragment.function?.name === 'string' && fragment.function.name !== '') {
            call.name = fragment.function.name;
          }
          if (typeof fragment.function?.arguments === 'string') call.arguments += fragment.function.arguments;
        }
        if (typeof choice.finish_reason === 'string') {
          gotFirstToken = true;
          finishReason = choice.finish_reason;
        }
      }

      // The SDK ends quietly when its request was aborted: by the caller (quiet for us too) or by our watchdog.
      if (signal.aborted) return;
      const stall = stalled();
      if (stall !== undefined) throw stall;
      if (finishReason === undefined) {
        throw new ProviderError(name, 'llm', `${where}: stream ended before the model finished (no finish_reason)`, {
          retryable: true,
        });
      }

      // Sparse indexes (a server skipping one) must not produce holes.
      const calls: LlmToolCall[] = toolCalls.filter((c): c is PartialToolCall => c !== undefined);
      if (calls.length > 0) yield { type: 'tool_calls', calls };
    } finally {
      disarm();
      signal.removeEventListener('abort', onAbort);
      // Early exit (consumer break, error) must cancel the HTTP stream; the SDK's return() aborts it too.
      controller.abort();
      if (iterator !== undefined && !iteratorDone) {
        await iterator.return?.().catch(() => undefined);
      }
    }
  }

  return { name, stream };
}

function hostOf(baseUrl: string): string {
  try {
    return new URL(baseUrl).host;
  } catch {
    return '(invalid base URL)';
  }
}

function apiErrorDetail(err: { error: unknown; message: string }): string {
  const body = err.error;
  if (typeof body === 'object' && body !== null && 'message' in body && typeof body.message === 'string') {
    return body.message;
  }
  // The SDK's message is `<status> <body or text>`; without a status prefix it is the raw detail.
  return err.message.replace(/^\d{3}\s+/, '') || 'no details';
}

/** The most specific text of an error chain: undici hides `connect ECONNREFUSED 127.0.0.1:1` in `cause`. */
function describeCause(err: unknown): string {
  const parts: string[] = [];
  let current: unknown = err;
  for (let depth = 0; depth < 4 && current !== undefined && current !== null; depth++) {
    if (current instanceof Error) {
      if (current.message !== '' && !parts.includes(current.message)) parts.push(current.message);
      current = current.cause;
    } else {
      parts.push(typeof current === 'string' ? current : JSON.stringify(current));
      break;
    }
  }
  return parts.length > 0 ? parts.join(': ') : 'unknown error';
}
