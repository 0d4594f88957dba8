// `GET /v1/pipecatcalls/<id>/ws` (SPEC §9): token and call checked before the upgrade, then the socket runs as the
// call's media (no media yet) or as a read-only monitor; malformed frames get an `error` message, never a crash.

import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import type { OutputClock } from '../../audio/clock.js';
import type { Call } from '../../calls/call.js';
import type { CallManager } from '../../calls/manager.js';
import { WebSocketMedia } from './media.js';
import type { Config } from '../../config.js';
import { AppError, NotFoundError, ProtocolError, messageOf, statusOf } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { Metrics } from '../../metrics.js';
import { isTerminated } from '../../model/pipecatcall.js';
import { parseUuid } from '../../model/uuid.js';
import { isAuthorized, requestUrl } from '../../http/auth.js';
import { decodeFrame, loadFrameType, type AudioRawFrame } from './frames.js';
import { RTVI_VERSION, parseClientMessage, rtviErrorResponse, rtviMessage } from './rtvi.js';
import { WsPeer, type WsPeerOptions } from './peer.js';

export type WebSocketMode = 'media' | 'monitor';

export interface WebSocketEndpointDeps {
  config: Pick<Config, 'httpAuthToken' | 'unknownCalls' | 'podIp'>;
  calls: CallManager;
  clock: OutputClock;
  metrics: Metrics;
  log: Logger;
  peerOptions?: WsPeerOptions;
  /** Open WebSockets at most; more are answered 503 before the upgrade. */
  maxConnections?: number;
}

const PATH = /^\/v1\/pipecatcalls\/([^/]+)\/ws$/;
/** One second of 48 kHz stereo is 192 kB: no legitimate frame comes near 1 MiB; ws closes with 1009 above it. */
const MAX_PAYLOAD_BYTES = 1024 * 1024;
const MIN_RATE = 8000;
const MAX_RATE = 192_000;

type Decision = { mode: WebSocketMode } | { status: number; message: string };

/** A WebSocket close reason is limited to 123 bytes. */
function closeReason(text: string): string {
  return Buffer.from(text).subarray(0, 120).toString().replace(/\uFFFD+$/, '');
}

function rejectUpgrade(socket: Duplex, status: number, message: string, headers: Record<string, string> = {}): void {
  const body = JSON.stringify({ error: message });
  const head = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}`,
    'Connection: close',
    'Content-Type: application/json',
    `Content-Length: ${Buffer.byteLength(body)}`,
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ];
  socket.end(`${head.join('\r\n')}\r\n\r\n${body}`);
}

export class WebSocketEndpoint {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: MAX_PAYLOAD_BYTES, perMessageDeflate: false });
  private readonly sockets = new Set<WebSocket>();
  private closed = false;

  constructor(private readonly deps: WebSocketEndpointDeps) {
    // Fails the daemon's start, not the first connection, when proto/frames.proto is missing.
    loadFrameType();
  }

  /** Open WebSocket connections (both modes). */
  get connections(): number {
    return this.sockets.size;
  }

  /** The HTTP server's `upgrade` event. Answers with an HTTP error, or upgrades and runs the connection. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    // The socket is ours until ws takes it: a reset during the checks below must not become an uncaught error.
    socket.on('error', () => socket.destroy());
    this.upgrade(req, socket, head).catch((err: unknown) => {
      this.deps.log.error({ err: messageOf(err) }, 'WebSocket upgrade failed');
      if (socket.writable) rejectUpgrade(socket, 500, 'internal error');
      else socket.destroy();
    });
  }

  /** Drops every connection (media calls then end with reason hangup, if still live). Idempotent. */
  close(): void {
    this.closed = true;
    for (const ws of this.sockets) ws.terminate();
    this.sockets.clear();
    this.wss.close();
  }

  private async upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const url = requestUrl(req);
    const match = PATH.exec(url.pathname);
    const id = match?.[1] === undefined ? null : parseUuid(match[1]);
    if (this.closed) return rejectUpgrade(socket, 503, 'the server is shutting down');
    if (id === null) return rejectUpgrade(socket, 404, `no WebSocket endpoint at ${url.pathname}`);
    if (this.sockets.size >= (this.deps.maxConnections ?? Infinity)) {
      this.deps.metrics.connectionsRefusedTotal.inc({ listener: 'websocket', reason: 'cap' });
      return rejectUpgrade(socket, 503, 'too many open WebSockets');
    }
    if (!isAuthorized(req, url, this.deps.config.httpAuthToken)) {
      return rejectUpgrade(socket, 401, 'a valid token is required (Authorization: Bearer <token> or ?token=)', {
        'WWW-Authenticate': 'Bearer',
      });
    }
    const forced = url.searchParams.get('mode');
    if (forced !== null && forced !== 'media' && forced !== 'monitor') {
      return rejectUpgrade(socket, 400, 'mode must be media or monitor');
    }
    const decision = await this.decide(id, forced);
    if ('status' in decision) return rejectUpgrade(socket, decision.status, decision.message);
    if (this.closed) return rejectUpgrade(socket, 503, 'the server is shutting down');
    if (!socket.readable || !socket.writable) {
      socket.destroy();
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      this.sockets.add(ws);
      ws.once('close', () => this.sockets.delete(ws));
      // Protocol violations (bad WebSocket framing, a message over maxPayload) arrive here; ws then closes the
      // socket itself (1002, 1009). Without a listener they would be uncaught and end the process.
      ws.on('error', (err) => this.deps.log.debug({ err: messageOf(err), pipecatcall_id: id }, 'WebSocket protocol error'));
      // Held until the connection is attached to its call, so no frame arrives before there is a call to take it.
      ws.pause();
      const run = decision.mode === 'media' ? this.runMedia(id, ws) : this.runMonitor(id, ws);
      run.catch((err: unknown) => {
        this.deps.log.error({ err: messageOf(err), pipecatcall_id: id }, 'WebSocket connection failed');
        ws.terminate();
      });
    });
  }

  /**
   * Media or monitor, or an HTTP error, decided before the upgrade (SPEC §9: unknown call → 404). A call with no
   * media and no session yet (created over RPC, waiting for its media; or unknown, with UNKNOWN_CALLS=accept) gets
   * the socket as its media; one that has media or runs text-only is monitored. `?mode=monitor` never attaches
   * media (the operator console uses it), `?mode=media` refuses to fall back to monitoring.
   */
  private async decide(id: string, forced: string | null): Promise<Decision> {
    const { calls, config } = this.deps;
    const live = calls.session(id);
    if (live?.isTerminating === true) return { status: 404, message: `pipecatcall ${id} has ended` };
    if (live !== undefined) {
      const busy = live.media !== null || live.sessionStarted;
      if (forced === 'media' && busy) return { status: 409, message: `pipecatcall ${id} already has media or a session` };
      return { mode: forced === 'monitor' || busy ? 'monitor' : 'media' };
    }
    if (forced === 'monitor') return { status: 404, message: `pipecatcall ${id} has no live session on this host` };
    if (!calls.isAccepting) return { status: 503, message: 'this instance is shutting down and takes no new calls' };
    let row;
    try {
      row = await calls.get(id);
    } catch (err) {
      if (!(err instanceof NotFoundError)) return { status: statusOf(err), message: `cannot look the call up: ${messageOf(err)}` };
      if (config.unknownCalls === 'reject') return { status: 404, message: `pipecatcall ${id} is unknown` };
      return { mode: 'media' }; // created like an unknown Audiosocket call (UNKNOWN_CALLS=accept)
    }
    if (isTerminated(row)) return { status: 404, message: `pipecatcall ${id} has ended` };
    if (row.host_id !== config.podIp) return { status: 404, message: `pipecatcall ${id} is live on host ${row.host_id}, not here` };
    return { mode: 'media' }; // our live row with no session (this instance restarted): attachMedia adopts it
  }

  private newPeer(ws: WebSocket, log: Logger): WsPeer {
    return new WsPeer(ws, this.deps.metrics, log, this.deps.peerOptions);
  }

  private async runMedia(id: string, ws: WebSocket): Promise<void> {
    const { calls, clock, metrics } = this.deps;
    const log = this.deps.log.child({ pipecatcall_id: id });
    const peer = this.newPeer(ws, log);
    // On the clock from the start, like Audiosocket; the pipeline (greeting) starts at the attach.
    const media = new WebSocketMedia(peer, clock, metrics);
    let call: Call;
    try {
      call = await calls.attachMedia(id, media);
    } catch (err) {
      // A race with another connection or a termination since the checks: the socket is already upgraded.
      metrics.mediaRefusedTotal.inc({ transport: 'websocket', reason: err instanceof AppError ? err.code.toLowerCase() : 'internal' });
      log.info({ err: messageOf(err) }, 'WebSocket media refused');
      peer.sendError(messageOf(err));
      peer.close(1008, closeReason(messageOf(err)));
      media.close(false);
      ws.resume();
      return;
    }
    call.listeners.add(peer);
    const hangup = (): void => {
      call.listeners.delete(peer);
      // The client hung up (or was cut off): the call ends. After a server-side end this is a no-op.
      void calls.terminate(call.id, 'hangup');
    };
    if (ws.readyState !== ws.OPEN) {
      hangup(); // closed while the call was being attached (the endpoint was closing)
      return;
    }
    ws.once('close', hangup);
    ws.on('message', (data, isBinary) => this.onMessage(call, peer, data, isBinary, (frame) => this.mediaAudio(call, peer, frame)));
    log.info('WebSocket connected as the call media');
    ws.resume();
  }

  private runMonitor(id: string, ws: WebSocket): Promise<void> {
    const call = this.deps.calls.session(id);
    const log = this.deps.log.child({ pipecatcall_id: id });
    const peer = this.newPeer(ws, log);
    if (call === undefined || call.isTerminating) {
      peer.close(1000, 'the call has ended');
      ws.resume();
      return Promise.resolve();
    }
    call.listeners.add(peer);
    // The call's signal aborts at the start of its termination; the socket closes once termination (and so the
    // pipeline's final notices) is done.
    const onEnd = (): void => {
      const close = (): void => peer.close(1000, closeReason(`the call has ended (${call.terminateReason ?? 'ended'})`));
      void Promise.resolve()
        .then(() => call.terminating)
        .then(close, close);
    };
    call.abort.signal.addEventListener('abort', onEnd, { once: true });
    ws.once('close', () => {
      call.listeners.delete(peer);
      call.abort.signal.removeEventListener('abort', onEnd);
    });
    // Without an operator token anyone who can open the page could steer the call: the monitor only listens.
    const readOnly = this.deps.config.httpAuthToken === '';
    ws.on('message', (data, isBinary) =>
      this.onMessage(call, peer, data, isBinary, () => peer.sendError('this connection is a read-only monitor: audio is not accepted'), readOnly),
    );
    log.info('WebSocket connected as a monitor');
    ws.resume();
    return Promise.resolve();
  }

  private onMessage(call: Call, peer: WsPeer, data: RawData, isBinary: boolean, onAudio: (frame: AudioRawFrame) => void, readOnly = false): void {
    if (!isBinary) {
      peer.sendError('frames must be binary WebSocket messages holding a serialized pipecat.Frame');
      return;
    }
    const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
    try {
      const frame = decodeFrame(bytes);
      switch (frame.type) {
        case 'audio':
          onAudio(frame);
          return;
        case 'message':
          this.onClientMessage(call, peer, frame.data, readOnly);
          return;
        default:
          peer.sendError(`${frame.type} frames are not accepted from clients (send audio or message frames)`);
      }
    } catch (err) {
      if (!(err instanceof ProtocolError)) call.log.warn({ err: messageOf(err) }, 'WebSocket frame handling failed');
      peer.sendError(messageOf(err));
    }
  }

  /** Client audio in media mode: the first frame fixes the input rate (SPEC §2.2, §9). */
  private mediaAudio(call: Call, peer: WsPeer, frame: AudioRawFrame): void {
    // proto3 cannot tell "0" from "unset": 0 channels is read as mono, the only layout accepted.
    if (frame.numChannels > 1) {
      peer.sendError(`audio must be mono; a frame with ${frame.numChannels} channels was dropped`);
      return;
    }
    const rate = frame.sampleRate;
    if (!Number.isInteger(rate) || rate < MIN_RATE || rate > MAX_RATE) {
      peer.sendError(`audio sample_rate must be ${MIN_RATE}–${MAX_RATE} Hz; a frame at ${rate} Hz was dropped`);
      return;
    }
    if (frame.audio.length === 0 || frame.audio.length % 2 !== 0) {
      peer.sendError('audio must be s16le PCM: a whole, non-zero number of 2-byte samples');
      return;
    }
    if (call.inputRate !== null && rate !== call.inputRate) {
      peer.sendError(`audio sample_rate must stay ${call.inputRate} Hz (the rate of the first frame); a frame at ${rate} Hz was dropped`);
      return;
    }
    // Until the pipeline is built (providers opening) caller audio is dropped, as on Audiosocket.
    call.pushAudio(Buffer.from(frame.audio.buffer, frame.audio.byteOffset, frame.audio.byteLength), rate);
  }

  private onClientMessage(call: Call, peer: WsPeer, json: string, readOnly: boolean): void {
    const msg = parseClientMessage(json);
    switch (msg.type) {
      case 'send-text': {
        if (readOnly) {
          peer.sendMessage(rtviErrorResponse(msg.id, 'this monitor is read-only: sending text needs HTTP_AUTH_TOKEN set and presented'));
          return;
        }
        if (msg.id === undefined) {
          peer.sendMessage(rtviErrorResponse(undefined, 'send-text needs an id'));
          return;
        }
        if (msg.content.trim() === '') {
          peer.sendMessage(rtviErrorResponse(msg.id, 'send-text needs data.content'));
          return;
        }
        try {
          // The same as POST /v1/messages (SPEC §3.7): a user message, now or at the next turn.
          this.deps.calls.sendMessage({
            pipecatcallId: call.id,
            messageId: msg.id,
            text: msg.content,
            runImmediately: msg.runImmediately,
            audioResponse: msg.audioResponse,
          });
        } catch (err) {
          peer.sendMessage(rtviErrorResponse(msg.id, messageOf(err)));
        }
        return;
      }
      case 'client-ready':
        // Pipecat client SDKs wait for bot-ready before they consider the transport connected.
        peer.sendMessage(rtviMessage('bot-ready', { version: RTVI_VERSION }, msg.id));
        return;
      default:
        peer.sendMessage(rtviErrorResponse(msg.id, `unsupported message type ${JSON.stringify(msg.name.slice(0, 64))}`));
    }
  }
}
