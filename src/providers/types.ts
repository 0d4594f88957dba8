// The narrow interfaces every AI provider implements (DESIGN.md): one STT stream, one LLM client, one TTS
// session per call. The pipeline sees only these; the registry picks the implementation from the type string.

import type { Logger } from '../log.js';
import type { ChatMessage } from '../model/pipecatcall.js';
import type { ProviderMetrics } from './base/metrics.js';

// ---------------------------------------------------------------------------------------------------------------
// STT: streaming speech to text for a whole call.

export interface SttTranscript {
  text: string;
  /** true: this text is final for its span of speech (Deepgram is_final, a Sphinx utterance line). */
  final: boolean;
}

export interface SttOptions {
  /** e.g. `en-US`; '' → the provider's default. */
  language: string;
  /** Aborted when the call ends: the stream must close itself and release every resource. */
  signal: AbortSignal;
  log: Logger;
  onTranscript(t: SttTranscript): void;
  /**
   * The stream failed for good (after its one transparent reconnect): the call ends with `stt_error`. Called at
   * most once; never after the signal aborted.
   */
  onFatal(err: Error): void;
  /** A recoverable provider error (the base counted it in metrics; the caller logs it). */
  onError?(err: Error): void;
  /** Where the STT base counts failures; set by the registry (meteredStt), not by the pipeline. */
  metrics?: ProviderMetrics;
}

export interface SttStream {
  /** 16 kHz s16le mono audio. Never blocks; a stream that cannot keep up drops (and counts) audio. */
  write(pcm: Int16Array): void;
  /** Idempotent; also triggered by the signal. */
  close(): Promise<void>;
}

export interface SttProvider {
  readonly name: string;
  /** Opens the call's stream. Rejects with a ProviderError when it cannot start (missing binary, refused). */
  open(options: SttOptions): Promise<SttStream>;
}

// ---------------------------------------------------------------------------------------------------------------
// LLM: streaming chat completions with function calling.

/** An OpenAI function tool. */
export interface LlmTool {
  name: string;
  description: string;
  /** JSON schema of the arguments. */
  parameters: Record<string, unknown>;
}

export interface LlmToolCall {
  id: string;
  name: string;
  /** The arguments as the JSON text the model produced. */
  arguments: string;
}

export type LlmChunk =
  | { type: 'text'; text: string }
  /** Complete tool calls, delivered once the model finished streaming them. */
  | { type: 'tool_calls'; calls: LlmToolCall[] };

export interface LlmRequest {
  messages: readonly ChatMessage[];
  tools: readonly LlmTool[];
  /** Aborted on barge-in or call end: the HTTP stream must be cancelled at once. */
  signal: AbortSignal;
}

export interface LlmClient {
  readonly name: string;
  /** Streams one generation. Throws ProviderError on failure (HTTP error, malformed stream, stall). */
  stream(request: LlmRequest): AsyncIterable<LlmChunk>;
}

// ---------------------------------------------------------------------------------------------------------------
// TTS: text to speech, one session per call, one turn per bot reply.

/** Where in the turn's audio a piece of text starts (seconds from the turn's first audio sample). */
export interface TtsWord {
  text: string;
  start: number;
}

export type TtsEvent =
  /** s16le mono PCM at the session's sampleRate. */
  | { type: 'audio'; pcm: Buffer }
  /** Text timing: word timestamps (Cartesia) or one entry per sentence at its audio start (espeak). */
  | { type: 'words'; words: TtsWord[] };

export interface TtsTurn {
  /** Adds a sentence to the turn; its audio follows the audio of the sentences before it. */
  say(text: string): void;
  /** No more sentences: the event stream ends after the last audio. Idempotent. */
  end(): void;
  /**
   * The turn's events in order. Ends after end() once all audio is delivered; ends early (without throwing)
   * when the turn's signal aborts; throws ProviderError when the provider fails.
   */
  events(): AsyncIterable<TtsEvent>;
}

export interface TtsTurnOptions {
  /** Aborted on barge-in or call end: the provider context is cancelled and no more audio is produced. */
  signal: AbortSignal;
}

export interface TtsSession {
  readonly name: string;
  /** Sample rate of every audio event. */
  readonly sampleRate: number;
  startTurn(options: TtsTurnOptions): TtsTurn;
  /** Idempotent: closes the session's connection/processes. */
  close(): Promise<void>;
}

export interface TtsSessionOptions {
  voiceId: string;
  language: string;
  signal: AbortSignal;
  log: Logger;
  /** Where the TTS base counts failures; set by the registry (meteredTts), not by the pipeline. */
  metrics?: ProviderMetrics;
}

export interface TtsProvider {
  readonly name: string;
  open(options: TtsSessionOptions): Promise<TtsSession>;
}
