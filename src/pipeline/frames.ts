// Frames: the plain data that flows through a call's pipeline (in the manner of Pipecat). `interruption` is a
// system frame: it is handled by every processor at once and makes them drop queued work.

import type { LlmToolCall, TtsWord } from '../providers/types.js';

export type Frame =
  /** Caller audio, 16 kHz s16le mono (after the input resampler). */
  | { type: 'audio_in'; pcm: Int16Array }
  | { type: 'user_started_speaking' }
  | { type: 'user_stopped_speaking' }
  | { type: 'transcription'; text: string; final: boolean }
  | { type: 'dtmf'; digit: string }
  /** A user message injected by RPC or the WebSocket (SPEC §3.7). */
  | { type: 'user_text'; text: string; runImmediately: boolean; audioResponse: boolean }
  /** Ask the LLM to run on the context; `audio` false → a text-only reply (events, no TTS). */
  | { type: 'llm_run'; audio: boolean }
  | { type: 'llm_started'; audio: boolean }
  | { type: 'llm_text'; text: string }
  /** The LLM put the text so far and these calls into the context: the text belongs to that message now. */
  | { type: 'llm_tool_calls'; calls: LlmToolCall[] }
  /** The generation ended; `failed`: the provider broke off, and its unfinished text must not be spoken. */
  | { type: 'llm_stopped'; failed: boolean }
  /** One sentence for the TTS (already published as message_bot_transcription). */
  | { type: 'tts_sentence'; text: string }
  /** No more sentences in this generation. */
  | { type: 'tts_end' }
  | { type: 'tts_audio'; pcm: Buffer; sampleRate: number }
  | { type: 'tts_words'; words: TtsWord[] }
  /** The TTS delivered all audio of the generation (or failed: then `failed`). */
  | { type: 'tts_done'; failed: boolean }
  /** After the current reply has been spoken, end the call (stop_service on a `call` reference). */
  | { type: 'end_after_reply' }
  /** System: barge-in. Cancels the LLM and TTS, empties the output queue. */
  | { type: 'interruption' }
  /** Upstream: the pipeline asks its owner to end the call. */
  | { type: 'end_call'; reason: 'stop' | 'stt_error' | 'tts_error' | 'llm_error' | 'error' };

export type FrameType = Frame['type'];
export type FrameOf<T extends FrameType> = Extract<Frame, { type: T }>;
export type Direction = 'down' | 'up';
