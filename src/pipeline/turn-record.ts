// The per-turn record of a call: when each step of a user turn and of the reply to it happened, so a slow turn
// can be taken apart (VAD, STT, endpointing, LLM, TTS, the daemon's own handoffs) from the console and from the
// histograms. One TurnTracker per pipeline, written by its processors, bounded for the call's whole life.

export type InterruptionKind = 'confirmed' | 'false';

/** Why a user turn ended when it did (see end-of-turn.ts). */
export type TurnEnding = 'complete' | 'neutral' | 'trailing' | 'final_timeout' | 'transcript_only' | 'dtmf' | 'message';

export interface TurnRecord {
  /** 1, 2, … per call. */
  index: number;
  /** Epoch milliseconds (fractional) of each step; null when the step did not happen in this turn. */
  onsetAt: number | null;
  vadStartAt: number | null;
  vadStopAt: number | null;
  /** Where the speech ended: the last VAD stop minus the VAD's stop window. */
  speechEndAt: number | null;
  firstInterimAt: number | null;
  finalAt: number | null;
  /** The turn was handed to the LLM (committed). */
  endAt: number | null;
  llmRequestAt: number | null;
  llmFirstTokenAt: number | null;
  ttsRequestAt: number | null;
  ttsFirstAudioAt: number | null;
  firstBotFrameAt: number | null;
  /** The bot's output was paused (or cut) because this turn began under it. */
  bargeInAt: number | null;
  /** How that barge-in ended: the bot was cancelled (confirmed) or resumed (false). */
  interruption: InterruptionKind | null;
  ending: TurnEnding | null;
  /** Preemptive generations started for this turn, and whether the reply that played came from one. */
  preemptiveRuns: number;
  preemptiveUsed: boolean;
  /** The user text the LLM got ('' until the turn ended, or when it was dropped). */
  text: string;
}

type Step = Exclude<keyof TurnRecord, 'index' | 'interruption' | 'ending' | 'preemptiveRuns' | 'preemptiveUsed' | 'text'>;

/** The stages reported to the turn histogram (SPEC §12 style: bounded label values). */
export type TurnStage =
  | 'onset_to_vad_start'
  | 'barge_in'
  | 'speech_end_to_final'
  | 'speech_end_to_turn_end'
  | 'llm_first_token'
  | 'tts_first_audio'
  | 'voice_to_voice'
  | 'pipeline_own';

export interface TurnSink {
  /** A finished turn (its reply started playing, or it ended without one). */
  turnCompleted?(record: Readonly<TurnRecord>): void;
}

/** Turns kept per call: enough for a long call on the console; older ones are dropped first. */
export const MAX_TURN_RECORDS = 500;

export function nowEpochMs(): number {
  return performance.timeOrigin + performance.now();
}

export class TurnTracker {
  private readonly list: TurnRecord[] = [];
  private nextIndex = 1;
  /** The turn the user is in (or whose reply is on its way); null between turns. */
  private open: TurnRecord | null = null;
  /** The turn whose reply is being generated (after its end); reply steps are written here. */
  private replying: TurnRecord | null = null;

  constructor(
    private readonly sink: TurnSink = {},
    private readonly max = MAX_TURN_RECORDS,
  ) {}

  /** Every turn of the call so far, oldest first (at most MAX_TURN_RECORDS). Copies. */
  records(): TurnRecord[] {
    return this.list.map((r) => ({ ...r }));
  }

  /** The latest turn (a copy), or null before the first: O(1), for the console's poll. */
  latest(): TurnRecord | null {
    const last = this.list[this.list.length - 1];
    return last === undefined ? null : { ...last };
  }

  /** The user turn in progress, created on first use. */
  current(): TurnRecord {
    if (this.open !== null) return this.open;
    const r: TurnRecord = {
      index: this.nextIndex++,
      onsetAt: null,
      vadStartAt: null,
      vadStopAt: null,
      speechEndAt: null,
      firstInterimAt: null,
      finalAt: null,
      endAt: null,
      llmRequestAt: null,
      llmFirstTokenAt: null,
      ttsRequestAt: null,
      ttsFirstAudioAt: null,
      firstBotFrameAt: null,
      bargeInAt: null,
      interruption: null,
      ending: null,
      preemptiveRuns: 0,
      preemptiveUsed: false,
      text: '',
    };
    this.open = r;
    this.list.push(r);
    if (this.list.length > this.max) this.list.splice(0, this.list.length - this.max);
    return r;
  }

  get hasOpenTurn(): boolean {
    return this.open !== null;
  }

  /** Marks a step of the open turn (the first time only, unless `overwrite`). */
  mark(step: Step, overwrite = false, at = nowEpochMs()): void {
    const r = this.current();
    if (overwrite || r[step] === null) r[step] = at;
  }

  markOpen(step: Step, overwrite = false): void {
    if (this.open !== null) this.mark(step, overwrite);
  }

  /**
   * A step of the reply: written on the turn being answered (none for the greeting), or for a speculative
   * generation on the turn still open.
   */
  reply(step: 'llmRequestAt' | 'llmFirstTokenAt' | 'ttsRequestAt' | 'ttsFirstAudioAt' | 'firstBotFrameAt', speculative = false): void {
    const r = speculative ? this.open : this.replying;
    if (r === null || r[step] !== null) return;
    r[step] = nowEpochMs();
    if (step === 'firstBotFrameAt' && r === this.replying) this.complete(r);
  }

  /** A speculative generation's steps are forgotten when it is thrown away. */
  discardReply(): void {
    const r = this.open;
    if (r === null) return;
    r.llmRequestAt = null;
    r.llmFirstTokenAt = null;
    r.ttsRequestAt = null;
    r.ttsFirstAudioAt = null;
  }

  preemptiveStarted(): void {
    this.current().preemptiveRuns++;
  }

  interruption(kind: InterruptionKind): void {
    const r = this.current();
    r.interruption = kind;
  }

  /** The open turn ended: its text goes to the LLM (or it is dropped when `text` is ''). */
  endTurn(text: string, ending: TurnEnding, preemptiveUsed: boolean): void {
    const r = this.current();
    r.endAt ??= nowEpochMs();
    r.text = text;
    r.ending = ending;
    r.preemptiveUsed = preemptiveUsed;
    this.open = null;
    if (this.replying !== null && this.replying !== r) this.complete(this.replying);
    if (text === '') {
      this.complete(r);
      return;
    }
    this.replying = r;
  }

  /** The reply to the turn will not play (interrupted, failed): the record is complete as it stands. */
  replyEnded(): void {
    if (this.replying !== null) this.complete(this.replying);
  }

  /** Closes an open turn with no text (noise only) without a reply. */
  dropOpen(): void {
    const r = this.open;
    if (r === null) return;
    this.open = null;
    this.complete(r);
  }

  private complete(r: TurnRecord): void {
    if (this.replying === r) this.replying = null;
    this.sink.turnCompleted?.(r);
  }
}

/** The figures of one finished turn for the histogram, in seconds; stages that did not happen are left out. */
export function turnStages(r: Readonly<TurnRecord>): Array<[TurnStage, number]> {
  const out: Array<[TurnStage, number]> = [];
  const add = (stage: TurnStage, from: number | null, to: number | null): void => {
    if (from !== null && to !== null && to >= from) out.push([stage, (to - from) / 1000]);
  };
  add('onset_to_vad_start', r.onsetAt, r.vadStartAt);
  add('barge_in', r.onsetAt, r.bargeInAt);
  add('speech_end_to_final', r.speechEndAt, r.finalAt);
  add('speech_end_to_turn_end', r.speechEndAt, r.endAt);
  add('llm_first_token', r.llmRequestAt, r.llmFirstTokenAt);
  add('tts_first_audio', r.ttsRequestAt, r.ttsFirstAudioAt);
  add('voice_to_voice', r.speechEndAt, r.firstBotFrameAt);
  const own = pipelineOwnMs(r);
  if (own !== null) out.push(['pipeline_own', own / 1000]);
  return out;
}

/**
 * The daemon's own share of a reply: the handoffs on its critical path that are neither a provider's time nor
 * the deliberate endpointing wait — turn end (or speculative start) → LLM request, LLM first token → TTS request
 * (less whatever the LLM took to finish the first sentence, which a fake that sends whole sentences makes ≈ 0),
 * and the later of (TTS first audio, turn end) → first bot frame on the wire (resampling, queueing, the tick).
 */
export function pipelineOwnMs(r: Readonly<TurnRecord>): number | null {
  const { endAt, llmRequestAt, llmFirstTokenAt, ttsRequestAt, ttsFirstAudioAt, firstBotFrameAt } = r;
  if (endAt === null || llmRequestAt === null || llmFirstTokenAt === null) return null;
  if (ttsRequestAt === null || ttsFirstAudioAt === null || firstBotFrameAt === null) return null;
  const trigger = r.preemptiveUsed ? Math.min(endAt, llmRequestAt) : endAt;
  const toLlm = Math.max(0, llmRequestAt - trigger);
  const toTts = Math.max(0, ttsRequestAt - llmFirstTokenAt);
  const toWire = Math.max(0, firstBotFrameAt - Math.max(ttsFirstAudioAt, endAt));
  return toLlm + toTts + toWire;
}
