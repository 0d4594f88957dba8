// The shared view of what the bot is doing, so the user side can tell a barge-in from ordinary speech.

export class BotState {
  /** A generation is in progress: from llm_run until its reply is fully spoken (or finalized, text-only). */
  generating = false;
  /** Bot audio is on the wire. */
  speaking = false;
  /** performance.now() of the latest user_stopped_speaking, for voice-to-voice latency; null when consumed. */
  userStoppedAt: number | null = null;

  get active(): boolean {
    return this.generating || this.speaking;
  }
}
