// LLM adapter for OpenAI and every OpenAI-compatible server (SPEC §3.4): streams chat completions through the
// official `openai` SDK and reassembles streamed tool calls. Watchdogs, abort and retries live in the LLM base.
//
// SDK facts this adapter is built around:
// - maxRetries 0: the base owns retries, because the SDK's hidden backoff (it honours Retry-After up to 60 s)
//   would blow the voice latency budget and hide the real HTTP status behind the first-token watchdog.
// - The SDK's `timeout` only covers the wait for response headers (it is cleared once fetch resolves): it is a
//   backstop; the base's watchdog catches stalls.
// - End of stream: the SDK treats a body that ends without `data: [DONE]` as a normal end and does not tell us
//   whether [DONE] came. What we check is finish_reason: a stream that ends without any finish_reason was cut
//   off (partial text, possibly half a tool call) → retryable. finish_reason without [DONE] is accepted.

import OpenAI from 'openai';
import type { ChatCompletionCreateParamsStreaming, ChatCompletionMessageParam } from 'openai/resources/chat/completions';

import { ProviderError } from '../../errors.js';
import { createStreamingLlm, DEFAULT_FIRST_TOKEN_TIMEOUT_MS, type LlmAdapter, type LlmPolicy, type LlmStep } from '../base/llm.js';
import { describeCause, hostOf, providerFailure, redactorFor } from '../base/failure.js';
import type { LlmClient, LlmRequest, LlmToolCall } from '../types.js';

export interface OpenAiLlmSettings extends LlmPolicy {
  /** Vendor name from llm_type (`openai`, `grok`, …): only used in names and error messages. */
  vendor: string;
  model: string;
  apiKey: string;
  /** OpenAI-compatible base URL, e.g. `https://api.openai.com/v1`. */
  baseUrl: string;
}

// Servers that need no key (ollama) still get an Authorization header: the SDK refuses to start without one.
const NO_KEY_PLACEHOLDER = 'none';

export function createOpenAiLlm(settings: OpenAiLlmSettings): LlmClient {
  return createStreamingLlm(new OpenAiAdapter(settings), settings);
}

class OpenAiAdapter implements LlmAdapter {
  readonly name: string;
  readonly where: string;
  private readonly client: OpenAI;
  private readonly redact: (text: string) => string;

  constructor(private readonly settings: OpenAiLlmSettings) {
    this.name = `${settings.vendor}.${settings.model}`;
    this.where = `${settings.vendor} LLM at ${hostOf(settings.baseUrl) || '(invalid base URL)'}`;
    this.redact = redactorFor(settings.apiKey);
    this.client = new OpenAI({
      baseURL: settings.baseUrl,
      apiKey: settings.apiKey === '' ? NO_KEY_PLACEHOLDER : settings.apiKey,
      // Explicit nulls stop the SDK from reading OPENAI_ORG_ID/OPENAI_PROJECT_ID: config comes from one place.
      organization: null,
      project: null,
      maxRetries: 0,
      timeout: Math.max(1, Math.ceil(settings.firstTokenTimeoutMs ?? DEFAULT_FIRST_TOKEN_TIMEOUT_MS)),
      // The SDK logs malformed SSE data to console.error by default; we report it as a ProviderError instead.
      logLevel: 'off',
    });
  }

  async *generate(request: LlmRequest, signal: AbortSignal): AsyncGenerator<LlmStep, void, undefined> {
    const body: ChatCompletionCreateParamsStreaming = {
      model: this.settings.model,
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
    const sdkStream = await this.client.chat.completions.create(body, { signal });
    const toolCalls: LlmToolCall[] = [];
    let finishReason: string | undefined;
    for await (const chunk of sdkStream) {
      // n is 1: only choice 0 exists. Chunks without choices (usage) still count as liveness.
      const choice = chunk.choices[0];
      const delta = choice?.delta;
      let token = false;
      const content = delta?.content;
      if (typeof content === 'string' && content !== '') yield { type: 'text', text: content };
      for (const fragment of delta?.tool_calls ?? []) {
        token = true;
        // Accumulated by index as the SDK's own ChatCompletionStream does: id and name arrive whole (in the
        // first fragment of each call), arguments arrive as JSON text in pieces.
        const call = (toolCalls[fragment.index] ??= { id: '', name: '', arguments: '' });
        if (typeof fragment.id === 'string' && fragment.id !== '') call.id = fragment.id;
        if (typeof fragment.function?.name === 'string' && fragment.function.name !== '') call.name = fragment.function.name;
        if (typeof fragment.function?.arguments === 'string') call.arguments += fragment.function.arguments;
      }
      if (typeof choice?.finish_reason === 'string') {
        token = true;
        finishReason = choice.finish_reason;
      }
      yield { type: 'progress', token };
    }
    // Aborted by the caller or the watchdog: the base decides what that means.
    if (signal.aborted) return;
    if (finishReason === undefined) {
      throw providerFailure(this.name, 'llm', 'network', `${this.where}: stream ended before the model finished (no finish_reason)`);
    }
    // Sparse indexes (a server skipping one) must not produce holes.
    const calls = toolCalls.filter((c): c is LlmToolCall => c !== undefined);
    if (calls.length > 0) yield { type: 'tool_calls', calls };
  }

  toError(err: unknown): ProviderError {
    const { name, where } = this;
    if (err instanceof OpenAI.APIConnectionTimeoutError) {
      return providerFailure(name, 'llm', 'stall', `${where}: no response within ${this.settings.firstTokenTimeoutMs ?? DEFAULT_FIRST_TOKEN_TIMEOUT_MS} ms`);
    }
    if (err instanceof OpenAI.APIConnectionError) {
      return providerFailure(name, 'llm', 'network', `${where}: connection failed: ${this.redact(describeCause(err.cause))}`, { cause: err.cause });
    }
    if (err instanceof OpenAI.APIError) {
      const detail = this.redact(apiErrorDetail(err));
      const requestId = typeof err.requestID === 'string' ? ` (request id ${err.requestID})` : '';
      if (typeof err.status === 'number') {
        // No `cause`: the SDK error carries the response body, which some servers fill with the key.
        return providerFailure(name, 'llm', 'http', `${where} answered HTTP ${err.status}: ${detail}${requestId}`, { status: err.status });
      }
      // An `error` object inside the SSE stream: the server gave up mid-generation.
      return providerFailure(name, 'llm', 'server', `${where} reported an error mid-stream: ${detail}${requestId}`);
    }
    if (err instanceof SyntaxError) {
      return providerFailure(name, 'llm', 'malformed', `${where} sent a malformed stream (invalid JSON in an SSE event)`, { cause: err });
    }
    if (err instanceof ProviderError) return err;
    // undici surfaces a socket closed mid-body as `TypeError: terminated` with the socket error as cause.
    return providerFailure(name, 'llm', 'network', `${where}: stream failed: ${this.redact(describeCause(err))}`, { cause: err });
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
