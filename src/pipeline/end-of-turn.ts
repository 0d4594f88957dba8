// When a user turn ends (issue 13): how much silence to wait for depends on the words so far. A complete sentence
// or question ends the turn after a short silence; words that trail off ("and", "um", "the", a comma) get the long
// one; anything else the ordinary stop_secs. Also the per-call turn-taking settings and their bounds.

/** Per-call turn-taking settings (vad_config keys beside the VAD's own; defaults from the instance config). */
export interface TurnSettings {
  /**
   * Barge-in is reversible: the bot pauses at the first speech window and resumes unless transcript words arrive
   * within this many seconds of the onset. 0: the classic barge-in (cancel as soon as the VAD confirms speech).
   */
  falseInterruptionSecs: number;
  /** Silence that ends a turn whose words are a complete sentence or question. */
  minStopSecs: number;
  /** Silence that ends a turn whose words trail off. */
  maxStopSecs: number;
  /** Start the LLM (and TTS, held) on a stable transcript before the turn has ended; thrown away if it goes on. */
  preemptive: boolean;
}

export const DEFAULT_TURN_SETTINGS: Readonly<TurnSettings> = Object.freeze({
  falseInterruptionSecs: 1.0,
  minStopSecs: 0.3,
  maxStopSecs: 1.6,
  preemptive: true,
});

/** The classic behaviour: fixed stop_secs, cancel on the VAD's start, no preemptive generation. */
export const CLASSIC_TURN_SETTINGS: Readonly<TurnSettings> = Object.freeze({
  falseInterruptionSecs: 0,
  minStopSecs: Number.NaN,
  maxStopSecs: Number.NaN,
  preemptive: false,
});

/**
 * The VAD's own stop window when endpointing is adaptive: short, so the aggregator hears about a pause early
 * (to start a preemptive generation) and does the rest of the waiting itself. 4 Silero windows: a shorter one
 * starts more generations that are thrown away (pauses between words), a longer one delays every reply.
 */
export const EARLY_STOP_SECS = 0.128;

/** Silence thresholds of one call, seconds, with min ≤ stop ≤ max. */
export interface StopBounds {
  min: number;
  stop: number;
  max: number;
}

/** Bounds from stop_secs and the settings; NaN (classic) or inverted values collapse onto stop_secs. */
export function stopBounds(stopSecs: number, s: Pick<TurnSettings, 'minStopSecs' | 'maxStopSecs'>): StopBounds {
  const min = Number.isFinite(s.minStopSecs) ? Math.min(s.minStopSecs, stopSecs) : stopSecs;
  const max = Number.isFinite(s.maxStopSecs) ? Math.max(s.maxStopSecs, stopSecs) : stopSecs;
  return { min, stop: stopSecs, max };
}

export type Completeness = 'complete' | 'neutral' | 'trailing';

/** Words after which a speaker is rarely done: conjunctions, articles, prepositions, fillers. */
const TRAILING_WORDS = new Set([
  'and', 'or', 'but', 'so', 'because', 'cause', 'if', 'then', 'than', 'that', 'which', 'who', 'when', 'where',
  'while', 'the', 'a', 'an', 'my', 'your', 'our', 'their', 'his', 'her', 'its', 'to', 'of', 'for', 'with', 'from',
  'in', 'on', 'at', 'by', 'about', 'into', 'like', 'um', 'uh', 'er', 'erm', 'uhm', 'i', 'we', 'they', 'he', 'she',
]);

/** How finished the words so far sound. An empty text is neutral (the ordinary wait). */
export function completeness(text: string): Completeness {
  const t = text.trim();
  if (t === '') return 'neutral';
  if (/(\.\.\.|…|[,;:\-–—])$/.test(t)) return 'trailing';
  const last = (t.toLowerCase().match(/[\p{L}\p{N}']+/gu) ?? []).at(-1) ?? '';
  // A trailing word wins even over a period: STTs put one at every pause ("I want to.").
  if (TRAILING_WORDS.has(last)) return 'trailing';
  if (/[.?!]["')\]]?$/.test(t)) return 'complete';
  return 'neutral';
}

/** The silence, in seconds, after which a turn with these words ends. */
export function silenceToEnd(text: string, bounds: StopBounds): number {
  const c = completeness(text);
  return c === 'complete' ? bounds.min : c === 'trailing' ? bounds.max : bounds.stop;
}

/** Words only, lower case, no punctuation: what must match for a preemptive reply to stand. */
export function normalizeWords(text: string): string {
  return (text.toLowerCase().match(/[\p{L}\p{N}']+/gu) ?? []).join(' ');
}

/** Sounds a listener makes while the other one talks; they do not take the turn (nor stop the bot). */
const BACKCHANNELS = new Set([
  'uh-huh', 'uh huh', 'mhm', 'mm-hmm', 'mm hmm', 'mmhmm', 'hmm', 'hm', 'mm', 'uh', 'um', 'ah', 'oh', 'huh', 'er',
]);

/** Whether a transcript has real words (not empty, not only a backchannel such as "uh-huh"). */
export function hasWords(text: string): boolean {
  const t = text.toLowerCase().replace(/[.,!?;:…]/g, ' ').replace(/\s+/g, ' ').trim();
  if (t === '') return false;
  if (BACKCHANNELS.has(t)) return false;
  return t.split(' ').some((w) => !BACKCHANNELS.has(w));
}

/** One Silero window at 16 kHz: audio short of a full window is not analysed yet, by design. */
export const VAD_WINDOW = 512;
export const SAMPLES_PER_MS = 16;
/** The longest a turn's end waits for a VAD that is behind (a stalled one must not hang the turn). */
const VAD_CATCH_UP_MAX_MS = 1000;
/**
 * With preemptive replies, audio after the silence was long enough that the VAD must also have heard, with no
 * onset in it, before the turn ends: the first confident window of resumed speech comes 1–3 windows after its
 * start, and a reply that is already waiting would otherwise play over a caller who had just gone on. Costs
 * nothing when the reply is not ready yet (the usual case after a short silence). 3 windows.
 */
const ONSET_GUARD_SAMPLES = 3 * VAD_WINDOW;

/**
 * How much longer, in ms, the silence must last before a turn may end (0: long enough). Counted in the audio the
 * VAD has analysed when its progress and the stop's stream position are known — on a loaded machine audio arrives
 * in bursts and the VAD falls behind, and a caller who went on would not have been heard yet when the wall clock
 * says the silence was long enough — else in wall time. A VAD stalled for a second past the wall-clock moment no
 * longer holds the turn.
 */
export function silenceWaitMs(o: {
  now: number;
  /** performance.now() at which the silence is long enough by the wall clock. */
  wallDue: number;
  /** The VAD stream position at which it is long enough; null: unknown. */
  neededSample: number | null;
  /** The VAD stream position decided so far; null: unknown. */
  analysed: number | null;
  /** Add the onset guard (preemptive replies). */
  guard: boolean;
}): number {
  if (o.neededSample === null || o.analysed === null) return Math.max(0, o.wallDue - o.now);
  const needed = o.neededSample + (o.guard ? ONSET_GUARD_SAMPLES : 0);
  // The window that holds `needed` may still be in flight: half a window of slack.
  const missing = needed - (o.analysed + VAD_WINDOW / 2);
  if (missing <= 0 || o.now >= o.wallDue + VAD_CATCH_UP_MAX_MS) return 0;
  return Math.max(10, missing / SAMPLES_PER_MS);
}
