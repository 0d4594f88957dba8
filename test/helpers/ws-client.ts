// A Pipecat-style WebSocket client for tests: speaks protobuf frames to /v1/pipecatcalls/<id>/ws, streams audio at
// real-time pace on one 20 ms schedule (silence when nothing is queued), and records every frame it receives.

import WebSocket from 'ws';
import { decodeFrame, encodeFrame, type PipecatFrame } from '../../src/transports/websocket/frames.js';

export interface ReceivedAudio {
  at: number;
  id: number;
  bytes: number;
  sampleRate: number;
  numChannels: number;
  /** Peak absolute sample. */
  peak: number;
}

export interface ReceivedMessage {
  at: number;
  label?: string;
  type: string;
  id?: string;
  data?: Record<string, unknown>;
}

const textOf = (v: unknown): string => (typeof v === 'string' ? v : '');

function peakOf(pcm: Uint8Array): number {
  const view = Buffer.from(pcm.buffer, pcm.byteOffset, pcm.byteLength);
  let peak = 0;
  for (let i = 0; i + 1 < view.length; i += 2) peak = Math.max(peak, Math.abs(view.readInt16LE(i)));
  return peak;
}

export function wsUrl(port: number, id: string, query = ''): string {
  return `ws://127.0.0.1:${port}/v1/pipecatcalls/${id}/ws${query}`;
}

/** Tries an upgrade that must be refused; resolves with the HTTP status and body. */
export function expectRefused(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.on('open', () => {
      ws.terminate();
      reject(new Error(`the upgrade to ${url} was accepted`));
    });
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    ws.on('error', () => undefined);
  });
}

export class WsTestClient {
  readonly audio: ReceivedAudio[] = [];
  readonly messages: ReceivedMessage[] = [];
  readonly undecodable: Buffer[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private readonly queue: Buffer[] = [];
  private pacing: Promise<void> | null = null;
  private running = true;
  private frameId = 0;

  private constructor(readonly ws: WebSocket) {
    this.closed = new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    ws.on('message', (data: Buffer, isBinary) => {
      const at = performance.now();
      if (!isBinary) return;
      let frame: PipecatFrame;
      try {
        frame = decodeFrame(data);
      } catch {
        this.undecodable.push(data);
        return;
      }
      if (frame.type === 'audio') {
        this.audio.push({
          at,
          id: frame.id,
          bytes: frame.audio.length,
          sampleRate: frame.sampleRate,
          numChannels: frame.numChannels,
          peak: peakOf(frame.audio),
        });
      } else if (frame.type === 'message') {
        this.messages.push({ at, ...(JSON.parse(frame.data) as Omit<ReceivedMessage, 'at'>) });
      }
    });
  }

  static connect(url: string, headers: Record<string, string> = {}): Promise<WsTestClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { headers });
      ws.once('open', () => resolve(new WsTestClient(ws)));
      ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: HTTP ${res.statusCode ?? 0}`)));
      ws.once('error', reject);
    });
  }

  get isOpen(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  sendFrame(frame: PipecatFrame): void {
    this.ws.send(encodeFrame(frame));
  }

  sendRaw(bytes: Uint8Array | string, binary = true): void {
    this.ws.send(bytes, { binary });
  }

  sendJson(doc: unknown): void {
    this.sendFrame({ type: 'message', data: JSON.stringify(doc) });
  }

  sendAudio(pcm: Buffer, sampleRate: number, numChannels = 1): void {
    this.sendFrame({ type: 'audio', id: ++this.frameId, name: '', audio: pcm, sampleRate, numChannels });
  }

  /** Starts streaming at `rate`: queued speech, else silence, one 20 ms frame per slot of a fixed grid. */
  startStreaming(rate: number): void {
    this.pacing ??= this.pace(rate);
  }

  /** Queues speech (s16le at the streaming rate); resolves when all of it has been sent. */
  async say(pcm: Buffer, rate: number): Promise<void> {
    const frameBytes = (rate / 50) * 2;
    for (let off = 0; off < pcm.length; off += frameBytes) {
      const frame = Buffer.alloc(frameBytes);
      pcm.copy(frame, 0, off, Math.min(pcm.length, off + frameBytes));
      this.queue.push(frame);
    }
    while (this.queue.length > 0 && this.running) await new Promise((r) => setTimeout(r, 5));
  }

  /** Bot audio frames carrying sound (not silence). */
  voiced(since = 0): ReceivedAudio[] {
    return this.audio.filter((f) => f.at >= since && f.peak > 200);
  }

  /** Messages of one RTVI type. */
  ofType(type: string): ReceivedMessage[] {
    return this.messages.filter((m) => m.type === type);
  }

  /** The `data.text` of every message of one type, in order. */
  texts(type: string): string[] {
    return this.ofType(type).map((m) => textOf(m.data?.['text']));
  }

  /** Bot answers, one string per LLM generation (bot-llm-text tokens between bot-llm-started and -stopped). */
  botAnswers(): string[] {
    const answers: string[] = [];
    let current: string | null = null;
    for (const m of this.messages) {
      if (m.type === 'bot-llm-started') current = '';
      else if (m.type === 'bot-llm-text') current = (current ?? '') + textOf(m.data?.['text']);
      else if (m.type === 'bot-llm-stopped' && current !== null) {
        answers.push(current);
        current = null;
      }
    }
    return answers;
  }

  async until(predicate: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
    const end = performance.now() + timeoutMs;
    while (!predicate()) {
      if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  private async pace(rate: number): Promise<void> {
    const silence = Buffer.alloc((rate / 50) * 2);
    const t0 = performance.now();
    for (let i = 0; this.running && this.isOpen; i++) {
      const wait = t0 + i * 20 - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      if (!this.isOpen) break;
      this.sendAudio(this.queue.shift() ?? silence, rate);
    }
  }

  /** Stops streaming and closes the socket (normal closure); resolves when it is closed. */
  async close(): Promise<void> {
    this.running = false;
    await this.pacing;
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(1000);
    await Promise.race([this.closed, new Promise((r) => setTimeout(r, 2000))]);
    this.ws.terminate();
  }
}
