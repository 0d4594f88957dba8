// A local stand-in for ElevenLabs' realtime speech-to-text endpoint (`wss://api.elevenlabs.io/v1/speech-to-text/
// realtime`) as the official SDK's `ScribeRealtime.connect()` (@elevenlabs/elevenlabs-js 2.73) uses it.
//
// Protocol facts reproduced here (SDK source and ElevenLabs' realtime STT reference):
// - `GET /v1/speech-to-text/realtime?model_id=…&commit_strategy=vad&audio_format=pcm_16000[&language_code=xx]`
//   with the key in `xi-api-key`. The session opens with `{"message_type":"session_started","session_id",
//   "config":{…}}`; a wrong key gets `{"message_type":"auth_error","error":…}` and a close.
// - Audio arrives as JSON text frames `{"message_type":"input_audio_chunk","audio_base_64","commit",
//   "sample_rate"}`; `commit: true` ends a segment.
// - Transcripts: `{"message_type":"partial_transcript","text"}` and `{"message_type":"committed_transcript","text"}`;
//   errors `{"message_type":"<kind>","error"}` (auth_error, quota_exceeded, rate_limited, transcriber_error, …).

import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import { LiveSttFake, type LiveSttConnection } from './live-stt-server.js';

export class FakeElevenLabsSttServer extends LiveSttFake {
  protected readonly path = '/v1/speech-to-text/realtime';
  /** input_audio_chunk messages that were not valid (bad JSON, bad base64, wrong sample rate): their text. */
  readonly invalidChunks: string[] = [];
  commits = 0;
  /** Every sample_rate a chunk declared. */
  readonly sampleRates = new Set<number>();

  private constructor(private readonly apiKey: string) {
    super();
  }

  static async start(apiKey: string): Promise<FakeElevenLabsSttServer> {
    const s = new FakeElevenLabsSttServer(apiKey);
    await s.listen();
    return s;
  }

  override reset(): void {
    super.reset();
    this.invalidChunks.length = 0;
    this.commits = 0;
    this.sampleRates.clear();
  }

  protected authorized(req: IncomingMessage): boolean {
    return req.headers['xi-api-key'] === this.apiKey;
  }

  protected refuseKey(req: IncomingMessage, _socket: Socket, _head: Buffer, accept: (then: (ws: WebSocket) => void) => void): void {
    this.refusals.push({ status: 401, path: this.path, headers: req.headers });
    accept((ws) => {
      ws.on('error', () => {});
      ws.send(JSON.stringify({ message_type: 'auth_error', error: 'Invalid API key' }));
      ws.close(1008, 'auth_error');
    });
  }

  protected opened(c: LiveSttConnection): void {
    const q = c.query;
    c.ws.send(
      JSON.stringify({
        message_type: 'session_started',
        session_id: randomUUID(),
        config: { sample_rate: 16000, audio_format: q.audio_format, language_code: q.language_code ?? null, commit_strategy: q.commit_strategy, model_id: q.model_id },
      }),
    );
  }

  protected frame(c: LiveSttConnection, data: Buffer, isBinary: boolean): void {
    const text = data.toString();
    let m: { message_type?: unknown; audio_base_64?: unknown; commit?: unknown; sample_rate?: unknown };
    try {
      m = isBinary ? {} : (JSON.parse(text) as typeof m);
    } catch {
      m = {};
    }
    if (m.message_type !== 'input_audio_chunk' || typeof m.audio_base_64 !== 'string' || typeof m.sample_rate !== 'number') {
      this.invalidChunks.push(text.slice(0, 80));
      c.texts.push(text.slice(0, 80));
      this.sendError('input_error', 'expected an input_audio_chunk', c);
      return;
    }
    this.sampleRates.add(m.sample_rate);
    if (m.commit === true) this.commits += 1;
    const bytes = Buffer.from(m.audio_base_64, 'base64').length;
    if (bytes > 0) this.audio(c, bytes);
  }

  sendTranscript(text: string, final: boolean, c: LiveSttConnection = this.last): void {
    c.ws.send(JSON.stringify({ message_type: final ? 'committed_transcript' : 'partial_transcript', text }));
  }

  sendError(kind: string, error: string, c: LiveSttConnection = this.last): void {
    c.ws.send(JSON.stringify({ message_type: kind, error }));
  }
}
