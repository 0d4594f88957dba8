// What the console's JSON API shows of calls: a live call's summary, a turn as timeline bars, a past call's row.
// Pure functions of the call, its records and its row, so the shapes are unit-tested without a browser.

import type { Call, Interruption, ProviderFailure } from '../calls/call.js';
import type { Pipecatcall } from '../model/pipecatcall.js';
import type { TurnRecord } from '../pipeline/turn-record.js';
import type { EndedCall } from './ended-calls.js';

/** The bars of a turn, in the order the page draws them (top to bottom). */
export const TIMELINE_STAGES = ['speech', 'vad_stop', 'stt_final', 'turn_end', 'llm_first_token', 'tts_first_audio', 'first_bot_frame'] as const;
export type TimelineStage = (typeof TIMELINE_STAGES)[number];

export interface TimelineBar {
  stage: TimelineStage;
  /** Milliseconds from the turn's start. */
  from: number;
  to: number;
}

export interface TurnTimeline {
  index: number;
  /** Epoch milliseconds of the turn's first step. */
  start: number;
  bars: TimelineBar[];
  /** The barge-in on the bot this turn made, ms from the turn's start. */
  barge_in: { at: number; kind: 'confirmed' | 'false' | 'pending' } | null;
  ending: string | null;
  text: string;
  /** End of speech to the first bot frame, when both happened. */
  voice_to_voice_ms: number | null;
}

const round = (ms: number): number => Math.round(ms * 10) / 10;

/** One turn as bars: each stage that happened, from its cause to its result (see TIMELINE_STAGES). */
export function turnTimeline(r: Readonly<TurnRecord>): TurnTimeline | null {
  const stamps = [
    r.onsetAt, r.vadStartAt, r.vadStopAt, r.speechEndAt, r.firstInterimAt, r.finalAt, r.endAt,
    r.llmRequestAt, r.llmFirstTokenAt, r.ttsRequestAt, r.ttsFirstAudioAt, r.firstBotFrameAt, r.bargeInAt,
  ].filter((v): v is number => v !== null);
  if (stamps.length === 0) return null;
  const start = Math.min(...stamps);
  const bars: TimelineBar[] = [];
  const bar = (stage: TimelineStage, from: number | null, to: number | null): void => {
    if (from !== null && to !== null && to >= from) bars.push({ stage, from: round(from - start), to: round(to - start) });
  };
  const speechStart = r.onsetAt ?? r.vadStartAt;
  const speechEnd = r.speechEndAt ?? r.vadStopAt;
  bar('speech', speechStart, speechEnd);
  bar('vad_stop', r.speechEndAt, r.vadStopAt);
  bar('stt_final', speechEnd ?? speechStart, r.finalAt);
  bar('turn_end', speechEnd ?? speechStart, r.endAt);
  bar('llm_first_token', r.llmRequestAt, r.llmFirstTokenAt);
  bar('tts_first_audio', r.ttsRequestAt, r.ttsFirstAudioAt);
  const audioReady = r.ttsFirstAudioAt === null ? r.endAt : r.endAt === null ? r.ttsFirstAudioAt : Math.max(r.ttsFirstAudioAt, r.endAt);
  bar('first_bot_frame', audioReady, r.firstBotFrameAt);
  return {
    index: r.index,
    start: round(start),
    bars,
    barge_in: r.bargeInAt === null ? null : { at: round(r.bargeInAt - start), kind: r.interruption ?? 'pending' },
    ending: r.ending,
    text: r.text,
    voice_to_voice_ms: r.speechEndAt !== null && r.firstBotFrameAt !== null ? round(r.firstBotFrameAt - r.speechEndAt) : null,
  };
}

export function timelines(records: readonly TurnRecord[]): TurnTimeline[] {
  return records.map(turnTimeline).filter((t): t is TurnTimeline => t !== null);
}

function failureView(f: ProviderFailure | null): Record<string, unknown> | null {
  return f === null ? null : { stage: f.stage, provider: f.provider, message: f.message, at: f.at };
}

function interruptionsView(list: readonly Interruption[]): Array<Record<string, unknown>> {
  return list.map((i) => ({ kind: i.kind, at: i.at, heard: i.heard }));
}

function lastTurn(call: Call): TurnTimeline | null {
  const r = call.latestTurn();
  return r === null ? null : turnTimeline(r);
}

/** What the console shows of a live call: its row, where it is in its life, its figures and its last error. */
export function callSummary(call: Call): Record<string, unknown> {
  const r = call.row;
  const state = call.isTerminating
    ? 'terminating'
    : call.media === null
      ? call.sessionStarted
        ? 'text'
        : 'waiting'
      : !call.pipelineRunning
        ? 'connecting'
        : 'live';
  return {
    id: call.id,
    customer_id: r.customer_id,
    reference_type: r.reference_type,
    reference_id: r.reference_id,
    host_id: r.host_id,
    llm_type: r.llm_type,
    stt_type: r.stt_type,
    tts_type: r.tts_type,
    tm_create: r.tm_create,
    transport: call.transport,
    state,
    monitors: call.listeners.size,
    age_seconds: Math.round((Date.now() - call.createdAt) / 100) / 10,
    latency: { ...call.latency },
    provider_error: failureView(call.providerFailure),
    interruptions: interruptionsView(call.interruptions.slice(-20)),
    // The latest turn only: the page keeps the earlier ones, and asks /turns for the whole list when it missed one.
    last_turn: lastTurn(call),
  };
}

/** Microsecond timestamps ('YYYY-MM-DD HH:MM:SS.ffffff', UTC) to epoch ms; NaN when not one. */
function epochMs(ts: string): number {
  return Date.parse(`${ts.slice(0, 23).replace(' ', 'T')}Z`);
}

/** A past call: its row's fields, how long it lasted, and what this process still knows of its end. */
export function pastCallView(row: Pipecatcall, ended: EndedCall | undefined): Record<string, unknown> {
  const duration = (epochMs(row.tm_delete) - epochMs(row.tm_create)) / 1000;
  return {
    id: row.id,
    customer_id: row.customer_id,
    reference_type: row.reference_type,
    reference_id: row.reference_id,
    host_id: row.host_id,
    llm_type: row.llm_type,
    stt_type: row.stt_type,
    tts_type: row.tts_type,
    tm_create: row.tm_create,
    tm_delete: row.tm_delete,
    duration_seconds: Number.isFinite(duration) ? Math.round(duration * 10) / 10 : null,
    // Not in the table (SPEC §6.2): known only for calls this process ended, while it holds them.
    reason: ended?.reason ?? null,
    provider_error: failureView(ended?.providerFailure ?? null),
    interruptions: ended === undefined ? [] : interruptionsView(ended.interruptions),
    turn_count: ended?.turns.length ?? null,
  };
}
