// The only registry of live calls: creates, finds, messages and terminates them (SPEC §3.8, §5). Transports
// and RPC routes are thin adapters over this class.

import type { Config } from '../config.js';
import { ConflictError, DependencyError, NotFoundError, messageOf } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { encodeMessage, type Message } from '../model/message.js';
import { encodePipecatcall, isTerminated, type Pipecatcall } from '../model/pipecatcall.js';
import { TIMESTAMP_NEVER, nowTimestamp } from '../model/timestamp.js';
import { NIL_UUID, isNilUuid, newUuid, uuidField } from '../model/uuid.js';
import { BadRequestError } from '../errors.js';
import { Call, type AicallInfo, type CallMedia, type TerminateReason } from './call.js';
import { DEFAULT_VAD_CONFIG, parseCreateRequest, type CreateRequest } from './create-request.js';
import type { Siblings } from './siblings.js';

/** Persistence the manager needs (PipecatcallStore implements it). */
export interface CallStore {
  create(p: Pipecatcall): Promise<Pipecatcall>;
  get(id: string): Promise<Pipecatcall | null>;
  /** Ends the row at `at` (default now); the row as it now is. */
  markDeleted(id: string, at?: string): Promise<Pipecatcall | null>;
  listLiveByHost(hostId: string): Promise<Pipecatcall[]>;
}

/** Where call and message events go (EventPublisher implements it). */
export interface EventSink {
  publish(type: string, dataJson: string): void;
}

/** Hooks a session gets when it starts and ends: the voice pipeline plugs in here. */
export interface SessionHooks {
  /** The call's media (or text-only session) is ready. */
  onSessionStart?(call: Call): void;
  /** First step of termination: cancel the pipeline and flush its final events. */
  onSessionEnd?(call: Call): Promise<void> | void;
}

export interface CallManagerDeps {
  config: Config;
  store: CallStore;
  events: EventSink;
  siblings: Siblings;
  metrics: Metrics;
  log: Logger;
  /** The Audiosocket address Asterisk is told to connect to (`<POD_IP>:<port>`). */
  externalHost: () => string;
  hooks?: SessionHooks;
  /** Refuses providers that cannot work on this instance (a missing key): a 400 before anything is written. */
  checkProviders?: (types: { stt: string; tts: string; ttsVoiceId: string }) => void;
}

/** An end that could not be written (the store was down) is retried after this long, doubling up to the cap. */
const END_RETRY_INITIAL_MS = 1_000;
const END_RETRY_MAX_MS = 10_000;

export interface SendMessageRequest {
  pipecatcallId: string;
  messageId: string;
  text: string;
  runImmediately: boolean;
  audioResponse: boolean;
}

export class CallManager {
  private readonly calls = new Map<string, Call>();
  private readonly deps: CallManagerDeps;
  private accepting = true;
  private readonly drained: Array<() => void> = [];
  /** Ends of calls that could not be written while the store was down: id → tm_delete, retried until written. */
  private readonly unwrittenEnds = new Map<string, string>();
  private endRetryTimer: NodeJS.Timeout | null = null;
  private endRetryMs = END_RETRY_INITIAL_MS;
  private stopped = false;

  constructor(deps: CallManagerDeps) {
    this.deps = deps;
  }

  get size(): number {
    return this.calls.size;
  }

  get isAccepting(): boolean {
    return this.accepting;
  }

  session(id: string): Call | undefined {
    return this.calls.get(id);
  }

  sessions(): IterableIterator<Call> {
    return this.calls.values();
  }

  /** POST /v1/pipecatcalls: validate, insert, publish created, then reach the siblings by reference type. */
  async create(body: unknown): Promise<Pipecatcall> {
    const req = parseCreateRequest(body, this.deps.config.defaults.llmType);
    if (req.reference_type === 'ai_call' && isNilUuid(req.reference_id)) {
      throw new BadRequestError('reference_id must name the aicall when reference_type is ai_call');
    }
    if (req.reference_type === 'call' && this.deps.config.callManager && isNilUuid(req.reference_id)) {
      throw new BadRequestError('reference_id must name the call when reference_type is call (CALL_MANAGER=on)');
    }
    this.deps.checkProviders?.({
      stt: req.stt_type,
      tts: req.tts_type,
      ttsVoiceId: req.tts_voice_id || this.deps.config.defaults.ttsVoiceId,
    });
    this.refuseWhenStopping();
    if (this.calls.has(req.id)) throw new ConflictError(`pipecatcall ${req.id} already exists`);
    const row = await this.deps.store.create(this.rowOf(req));
    this.deps.events.publish('pipecatcall_created', encodePipecatcall(row));
    this.deps.metrics.callsTotal.inc({ reference_type: row.reference_type });
    const log = this.deps.log.child({ pipecatcall_id: row.id });
    log.info({ reference_type: row.reference_type, llm_type: row.llm_type, stt_type: row.stt_type, tts_type: row.tts_type }, 'pipecatcall created');

    // Registered before the sibling RPCs: Asterisk may connect as soon as call-manager has been asked.
    const call = this.register(row, req.vad_config, null, log);
    try {
      if (req.reference_type === 'ai_call') {
        call.aicall = await this.resolveAicall(req.reference_id);
        if (call.aicall.referenceType === 'call') await this.requestExternalMedia(call, call.aicall.referenceId);
        else this.startSession(call);
      } else {
        await this.requestExternalMedia(call, req.reference_id);
      }
    } catch (err) {
      // Nothing is left half-made: the row is terminated and the event published (SPEC §5.1 fix).
      log.warn({ err: messageOf(err) }, 'create failed at a sibling service; terminating the call');
      await this.terminate(call.id, 'error');
      throw err instanceof DependencyError ? err : new DependencyError('sibling', messageOf(err), { cause: err });
    }
    return row;
  }

  /** GET /v1/pipecatcalls/<id>. */
  async get(id: string): Promise<Pipecatcall> {
    const live = this.calls.get(id);
    if (live !== undefined) return live.row;
    const row = await this.deps.store.get(id);
    if (row === null) throw new NotFoundError(`pipecatcall ${id} not found`);
    return row;
  }

  /** POST /v1/pipecatcalls/<id>/stop: terminates a call of this instance; elsewhere the row is returned as is. */
  async stop(id: string): Promise<Pipecatcall> {
    const call = this.calls.get(id);
    if (call === undefined) return this.get(id);
    await this.terminate(id, 'stop');
    return call.row;
  }

  /** POST /v1/messages: a user message for a call with a session on this instance. */
  sendMessage(req: SendMessageRequest): Message {
    const call = this.calls.get(req.pipecatcallId);
    if (call === undefined || call.isTerminating) {
      throw new NotFoundError(`pipecatcall ${req.pipecatcallId} has no session on this host`);
    }
    call.touch();
    call.injectMessage({ text: req.text, runImmediately: req.runImmediately, audioResponse: req.audioResponse });
    call.log.info({ run_immediately: req.runImmediately, audio_response: req.audioResponse }, 'message injected');
    return this.messageOf(call, req.text);
  }

  /** Calls with a live session on a host: this instance's from memory, another's from its live rows. */
  async list(hostId: string): Promise<Pipecatcall[]> {
    if (hostId === this.deps.config.podIp) {
      return [...this.calls.values()].filter((c) => !c.isTerminating).map((c) => c.row);
    }
    return this.deps.store.listLiveByHost(hostId);
  }

  /** A Message of a call (SPEC §7.2), with a new id. */
  messageOf(call: Call, text: string): Message {
    return {
      id: newUuid(),
      customer_id: call.row.customer_id,
      pipecatcall_id: call.id,
      pipecatcall_reference_type: call.row.reference_type,
      pipecatcall_reference_id: call.row.reference_id,
      text,
    };
  }

  publishMessage(type: string, call: Call, text: string): void {
    this.deps.events.publish(type, encodeMessage(this.messageOf(call, text)));
  }

  /**
   * A media transport connected with a call id (SPEC §2.2): finds the call (or creates it for unknown ids when
   * UNKNOWN_CALLS=accept) and attaches the media. Returns the call, or throws to make the transport close.
   */
  async attachMedia(id: string, makeMedia: (call: Call) => CallMedia): Promise<Call> {
    this.refuseWhenStopping();
    let call = this.calls.get(id);
    if (call === undefined) {
      const row = await this.deps.store.get(id);
      if (row === null) {
        if (this.deps.config.unknownCalls === 'reject') throw new NotFoundError(`pipecatcall ${id} is unknown (UNKNOWN_CALLS=reject)`);
        call = await this.createForUnknownMedia(id);
      } else if (isTerminated(row)) {
        throw new ConflictError(`pipecatcall ${id} is already terminated`);
      } else if (row.host_id !== this.deps.config.podIp) {
        throw new ConflictError(`pipecatcall ${id} belongs to host ${row.host_id}`);
      } else {
        // A live row of ours with no session: this instance restarted since the create. Adopt it; its external
        // media (if call-manager made one) is the call's reference.
        call = this.calls.get(id) ?? this.register(row, { ...DEFAULT_VAD_CONFIG }, null, this.deps.log.child({ pipecatcall_id: id }));
        if (row.reference_type === 'call' && !isNilUuid(row.reference_id)) call.externalMediaCallId = row.reference_id;
      }
    }
    if (call.isTerminating) throw new ConflictError(`pipecatcall ${id} is terminating`);
    if (call.media !== null) throw new ConflictError(`pipecatcall ${id} already has media attached`);
    call.media = makeMedia(call);
    call.log.info({ transport: call.media.transport }, 'media attached');
    this.startSession(call);
    return call;
  }

  /**
   * Ends a call once, whatever triggers it (SPEC §3.8). Concurrent and repeated calls share one run.
   * Returns false when the call has no session here.
   */
  async terminate(id: string, reason: TerminateReason): Promise<boolean> {
    const call = this.calls.get(id);
    if (call === undefined) return false;
    call.terminating ??= this.runTermination(call, reason);
    await call.terminating;
    return true;
  }

  /** Graceful shutdown (SPEC §1): refuse new calls, let live ones finish for `graceMs`, then end the rest. */
  async shutdown(graceMs: number): Promise<void> {
    this.accepting = false;
    if (this.calls.size > 0 && graceMs > 0) {
      this.deps.log.info({ calls: this.calls.size, grace_ms: graceMs }, 'waiting for live calls to finish');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, graceMs);
        function done(): void {
          clearTimeout(timer);
          resolve();
        }
        this.drained.push(done);
      });
    }
    await Promise.all([...this.calls.keys()].map((id) => this.terminate(id, 'shutdown')));
    // Ends still unwritten get one last try; the store closes after us.
    this.stopped = true;
    if (this.endRetryTimer !== null) clearTimeout(this.endRetryTimer);
    this.endRetryTimer = null;
    await this.writeUnwrittenEnds();
    if (this.unwrittenEnds.size > 0) {
      this.deps.log.error(
        { pipecatcall_ids: [...this.unwrittenEnds.keys()] },
        'the store is still unreachable: these ended calls keep tm_delete unset in it',
      );
      this.unwrittenEnds.clear();
    }
  }

  private refuseWhenStopping(): void {
    if (!this.accepting) throw new DependencyError('pipecat-manager', 'this instance is shutting down and takes no new calls');
  }

  private rowOf(req: CreateRequest): Pipecatcall {
    const now = nowTimestamp();
    return {
      id: req.id,
      customer_id: req.customer_id,
      activeflow_id: req.activeflow_id,
      reference_type: req.reference_type,
      reference_id: req.reference_id,
      host_id: this.deps.config.podIp,
      llm_type: req.llm_type,
      llm_messages: req.llm_messages,
      stt_type: req.stt_type,
      stt_language: req.stt_language,
      tts_type: req.tts_type,
      tts_language: req.tts_language,
      tts_voice_id: req.tts_voice_id,
      tm_create: now,
      tm_update: TIMESTAMP_NEVER,
      tm_delete: TIMESTAMP_NEVER,
    };
  }

  private async createForUnknownMedia(id: string): Promise<Call> {
    const d = this.deps.config.defaults;
    const req = parseCreateRequest(
      {
        id,
        reference_type: 'call',
        llm_type: d.llmType,
        stt_type: d.sttType,
        tts_type: d.ttsType,
        tts_voice_id: d.ttsVoiceId,
      },
      d.llmType,
    );
    let row: Pipecatcall;
    try {
      row = await this.deps.store.create(this.rowOf(req));
    } catch (err) {
      // Two connections with the same new id raced: the loser finds the winner's session.
      const winner = this.calls.get(id);
      if (err instanceof ConflictError && winner !== undefined) return winner;
      throw err;
    }
    this.deps.events.publish('pipecatcall_created', encodePipecatcall(row));
    this.deps.metrics.callsTotal.inc({ reference_type: row.reference_type });
    const log = this.deps.log.child({ pipecatcall_id: id });
    log.info('pipecatcall created for an unknown Audiosocket connection (UNKNOWN_CALLS=accept)');
    return this.register(row, req.vad_config, null, log);
  }

  private register(row: Pipecatcall, vadConfig: CreateRequest['vad_config'], aicall: AicallInfo | null, log: Logger): Call {
    const call = new Call({ row, log, vadConfig, aicall });
    this.calls.set(row.id, call);
    this.deps.metrics.activeCalls.set(this.calls.size);
    call.startIdleTimer(this.deps.config.idleTimeoutSeconds * 1000, () => {
      call.log.info('no speech for the idle timeout; ending the call');
      void this.terminate(call.id, 'idle');
    });
    return call;
  }

  private startSession(call: Call): void {
    call.sessionStarted = true;
    this.deps.metrics.activeSessionsByTransport.inc({ transport: call.transport });
    this.deps.hooks?.onSessionStart?.(call);
    this.deps.events.publish('pipecatcall_initialized', encodePipecatcall(call.row));
    call.log.info({ transport: call.transport }, 'pipecatcall initialized');
  }

  private async resolveAicall(aicallId: string): Promise<AicallInfo> {
    const aicall = await this.deps.siblings.getAicall(aicallId);
    const engineKey = aicall.ai_id === '' || aicall.ai_id === NIL_UUID ? '' : await this.deps.siblings.getAiEngineKey(aicall.ai_id);
    return {
      aicallId,
      referenceType: aicall.reference_type,
      referenceId: aicall.reference_id,
      aiId: aicall.ai_id,
      engineKey,
    };
  }

  private async requestExternalMedia(call: Call, callId: string): Promise<void> {
    if (!this.deps.config.callManager) return;
    await this.deps.siblings.callStatus(callId);
    await this.deps.siblings.createExternalMedia(call.id, callId, this.deps.externalHost());
    call.externalMediaCallId = callId;
  }

  private async runTermination(call: Call, reason: TerminateReason): Promise<void> {
    call.terminateReason = reason;
    call.log.info({ reason }, 'terminating');
    call.stopIdleTimer();
    // 1. Cancel the pipeline: every provider request listens to this signal; then the pipeline flushes.
    call.abort.abort(new Error(`call terminated: ${reason}`));
    try {
      await this.deps.hooks?.onSessionEnd?.(call);
    } catch (err) {
      call.log.warn({ err: messageOf(err) }, 'pipeline teardown failed');
    }
    // 2. The media: stop its output clock, hand the call back to the dialplan with 0x00, close the socket.
    if (call.sessionStarted) this.deps.metrics.activeSessionsByTransport.dec({ transport: call.transport });
    call.media?.close(true);
    // 3. External media at call-manager; a failure there does not skip the rest (SPEC §3.8 fix).
    const mediaCallId = call.externalMediaCallId;
    if (mediaCallId !== null && this.deps.config.callManager) {
      try {
        const status = await this.deps.siblings.callStatus(mediaCallId);
        if (status === 'progressing') await this.deps.siblings.deleteExternalMedia(call.id);
      } catch (err) {
        call.log.warn({ err: messageOf(err) }, 'could not delete the external media at call-manager');
      }
    }
    // 4. The row, then the event, then the session.
    call.row = await this.endRow(call.row, call.log);
    this.deps.events.publish('pipecatcall_terminated', encodePipecatcall(call.row));
    this.deps.metrics.callsTerminatedTotal.inc({ reason });
    this.calls.delete(call.id);
    this.deps.metrics.activeCalls.set(this.calls.size);
    call.log.info({ reason }, 'pipecatcall terminated');
    if (this.calls.size === 0) for (const done of this.drained.splice(0)) done();
  }

  /**
   * Sets tm_update/tm_delete in the store. If the store is down the event still carries the end time, and the
   * write is retried in the background until the store is back, so the row does not stay live for ever.
   */
  private async endRow(row: Pipecatcall, log: Logger): Promise<Pipecatcall> {
    const now = nowTimestamp();
    const local = { ...row, tm_update: now, tm_delete: isTerminated(row) ? row.tm_delete : now };
    try {
      const ended = await this.deps.store.markDeleted(row.id, local.tm_delete);
      if (ended !== null) return ended;
    } catch (err) {
      log.error({ err: messageOf(err) }, 'could not mark the pipecatcall deleted in the store; retrying until it is back');
      this.unwrittenEnds.set(row.id, local.tm_delete);
      this.endRetryMs = END_RETRY_INITIAL_MS;
      this.scheduleEndRetry();
    }
    return local;
  }

  private scheduleEndRetry(): void {
    if (this.stopped || this.endRetryTimer !== null || this.unwrittenEnds.size === 0) return;
    this.endRetryTimer = setTimeout(() => {
      this.endRetryTimer = null;
      void this.writeUnwrittenEnds().then(() => this.scheduleEndRetry());
    }, this.endRetryMs);
  }

  /** One pass over the unwritten ends; stops at the first failure (the store is still down). Never rejects. */
  private async writeUnwrittenEnds(): Promise<void> {
    let written = 0;
    for (const [id, at] of [...this.unwrittenEnds]) {
      try {
        await this.deps.store.markDeleted(id, at);
      } catch {
        this.endRetryMs = Math.min(this.endRetryMs * 2, END_RETRY_MAX_MS);
        break;
      }
      this.unwrittenEnds.delete(id);
      written++;
    }
    if (written > 0) this.deps.log.info({ written, left: this.unwrittenEnds.size }, 'wrote the ends of calls that ended while the store was down');
  }
}

/** Parses the body of POST /v1/messages. */
export function parseSendMessage(data: unknown): SendMessageRequest {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new BadRequestError('the message body must be a JSON object');
  }
  const o = data as Record<string, unknown>;
  const id = uuidField(o.pipecatcall_id, 'pipecatcall_id');
  if (isNilUuid(id)) throw new BadRequestError('pipecatcall_id is required');
  const text = o.message_text;
  if (typeof text !== 'string' || text.trim() === '') throw new BadRequestError('message_text must be a non-empty string');
  const bool = (k: string): boolean => {
    const v = o[k];
    if (v === undefined || v === null) return false;
    if (typeof v !== 'boolean') throw new BadRequestError(`${k} must be a boolean`);
    return v;
  };
  const messageId = o.message_id;
  if (messageId !== undefined && messageId !== null && typeof messageId !== 'string') {
    throw new BadRequestError('message_id must be a string');
  }
  return {
    pipecatcallId: id,
    messageId: typeof messageId === 'string' ? messageId : '',
    text,
    runImmediately: bool('run_immediately'),
    audioResponse: bool('audio_response'),
  };
}
