// A local stand-in for Cartesia's realtime STT endpoint (`wss://api.cartesia.ai/stt/websocket`) as the official
// SDK (`client.stt.manualFinalize.websocket()`, @cartesia/cartesia-js 4.2) uses it.
//
// Protocol facts reproduced here (SDK source and Cartesia's STT WebSocket reference):
// - `GET /stt/websocket?model=…&encoding=pcm_s16le&sample_rate=16000[&language=xx]` with
//   `Authorization: Bearer <key>` and `cartesia-version`; a wrong key is refused at the upgrade (HTTP 401).
// - Audio arrives as binary frames. Text commands: `finalize` (answered by the pending final and `flush_done`)
//   and `close` (the pending final, `done`, then a close with code 1000).
// - Transcripts: `{"type":"transcript","request_id","text","is_final","duration","language"}`; errors:
//   `{"type":"error","status_code","title","message","request_id"}`.

import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { LiveSttFake, type LiveSttConnection } from './live-stt-server.js';

export class FakeCartesiaSttServer extends LiveSttFake {
  protected readonly path = '/stt/websocket';
  private readonly requestIds = new WeakMap<LiveSttConnection, string>();

  private constructor(private readonly apiKey: string) {
    super();
  }

  static async start(apiKey: string): Promise<FakeCartesiaSttServer> {
    const s = new FakeCartesiaSttServer(apiKey);
    await s.listen();
    return s;
  }

  protected authorized(req: IncomingMessage): boolean {
    return req.headers.authorization === `Bearer ${this.apiKey}`;
  }

  protected refuseKey(req: IncomingMessage, socket: Socket): void {
    this.refusals.push({ status: 401, path: this.path, headers: req.headers });
    const body = JSON.stringify({ error: 'Invalid API key' });
    socket.end(`HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
  }

  protected opened(c: LiveSttConnection): void {
    this.requestIds.set(c, randomUUID());
  }

  protected frame(c: LiveSttConnection, data: Buffer, isBinary: boolean): void {
    if (isBinary) {
      this.audio(c, data.length);
      return;
    }
    const text = data.toString();
    c.texts.push(text);
    if (text === 'finalize') {
      c.ws.send(JSON.stringify({ type: 'flush_done', request_id: this.requestIds.get(c) }));
    } else if (text === 'close') {
      c.ws.send(JSON.stringify({ type: 'done', request_id: this.requestIds.get(c) }));
      c.ws.close(1000);
    } else {
      this.sendError(400, 'Bad Request', `unknown command ${text.slice(0, 20)}`, c);
    }
  }

  sendTranscript(text: string, final: boolean, c: LiveSttConnection = this.last): void {
    c.ws.send(JSON.stringify({ type: 'transcript', request_id: this.requestIds.get(c), text, is_final: final, duration: 0.5, language: c.query.language ?? 'en' }));
  }

  sendError(status: number, title: string, message: string, c: LiveSttConnection = this.last): void {
    c.ws.send(JSON.stringify({ type: 'error', request_id: this.requestIds.get(c), status_code: status, title, message, error_code: 'test_error' }));
  }
}
