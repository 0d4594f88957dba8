// Frames: the plain data that flows through a call's pipeline (in the manner of Pipecat). `interruption` is a
// system frame: it is handled by every processor at once and makes them drop queued work.

import type { LlmToolCall, TtsWord } from '../providers/types.js';

export type Frame =
  /** Caller audio, 16 kHz s16le mono (after the input resampler). */
  | { type: 'audio_in'; pcm: Int16Array }
  /** The VAD heard a first speech window: a turn may be starting (not yet confirmed by start_secs). */
  | { type: 'user_onset' }
  /** The speech since user_onset stopped short of start_secs: no turn after all. */
  | { type: 'user_onset_dropped' }
  | { type: 'user_started_speaking' }
  /** `atSample`: the VAD's stream position at its stop decision, when it says (for counting silence in audio). */
  | { type: 'user_stopped_speaking'; atSample?: number }
  /**
   * The VAD heard a short pause inside the speech (fixed endpointing with preemptive replies): a reply may be
   * prepared on the words so far, held until user_stopped_speaking; `user_resumed` (speech came back) voids it.
   */
  | { type: 'user_paused' }
  | { type: 'user_resumed' }
  | { type: 'transcription'; text: string; final: boolean }
  /**
   * An STT's own end-of-turn prediction (Deepgram Flux's EagerEndOfTurn / TurnResumed): `eager_end` starts a
   * preemptive reply on the words so far, `resumed` throws it away. The turn still ends by the usual rules.
   */
  | { type: 'turn_hint'; hint: 'eager_end' | 'resumed' }
  | { type: 'dtmf'; digit: string }
  /** A user message injected by RPC or the WebSocket (SPEC §3.7). */
  | { type: 'user_text'; text: string; runImmediately: boolean; audioResponse: boolean }
  /**
   * Ask the LLM to run on the context; `audio` false → a text-only reply (events, no TTS). `speculative`: a
   * preemptive run on a user turn that has not ended yet, with this text as the user's message; the context is
   * left alone and the reply is held (no audio plays) until `turn_commit`, or thrown away.
   */
  | { type: 'llm_run'; audio: boolean; speculative?: string }
  | { type: 'llm_started'; audio: boolean; speculative?: boolean }
  /** The user turn a speculative generation was started for has ended as predicted: its reply may play. */
  | { type: 'turn_commit' }
  /** A possible barge-in: hold the bot's audio where it is (keep the queue and the streams). */
  | { type: 'bot_pause' }
  /** The barge-in was false: the bot's audio goes on from where it was paused. */
  | { type: 'bot_resume' }
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
  /**
   * System: barge-in. Cancels the LLM and TTS, empties the output queue. `speculative`: a preemptive generation
   * is thrown away because the user's turn went on (nothing of it was heard; not an interruption of the bot).
   */
  | { type: 'interruption'; speculative?: boolean }
  /** Upstream: the pipeline asks its owner to end the call. */
  | { type: 'end_call'; reason: 'stop' | 'stt_error' | 'tts_error' | 'llm_error' | 'error' };

export type FrameType = Frame['type'];
export type FrameOf<T extends FrameType> = Extract<Frame, { type: T }>;
export type Direction = 'down' | 'up';
