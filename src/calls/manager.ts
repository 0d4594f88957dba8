// The only registry of live calls: creates, finds, attaches media to, messages and terminates them (SPEC §3.8,
// §5), and the one place a call's session and pipeline start. Transports and RPC routes are thin adapters over it.

import { BadRequestError, ConflictError, DependencyError, NotFoundError, messageOf } from '../errors.js';
import type { Logger } from '../log.js';
import { encodeMessage, type Message } from '../model/message.js';
import { encodePipecatcall, isTerminated, type Pipecatcall } from '../model/pipecatcall.js';
import { isNilUuid } from '../model/uuid.js';
import { Call, type AicallInfo, type TerminateReason } from './call.js';
import { DEFAULT_VAD_CONFIG, parseCreateRequest, rowOfRequest, type CreateRequest } from './create-request.js';
import { PipelineStarter } from './pipeline-starter.js';
import type { CallManagerDeps, CallMedia } from './ports.js';
import { RowEnder } from './row-ender.js';
import { tearDown } from './teardown.js';

export type { CallManagerDeps, CallStore, EventSink } from './ports.js';
import { messageOfCall, type SendMessageRequest } from './send-message.js';


export class CallManager {
  private readonly calls = new Map<string, Call>();
  /** Ids with a media attach in progress: claimed before the first await, so two connections cannot both win. */
  private readonly attaching = new Set<string>();
  private readonly starter: PipelineStarter;
  private readonly rows: RowEnder;
  private accepting = true;
  private readonly drained: Array<() => void> = [];
  private readonly endedListeners: Array<(call: Call) => void> = [];

  constructor(private readonly deps: CallManagerDeps) {
    this.rows = new RowEnder(deps.store, deps.log);
    this.starter = new PipelineStarter({
      config: deps.config,
      providers: deps.providers,
      siblings: deps.siblings,
      metrics: deps.metrics,
      publishMessage: (type, call, text) => this.publishMessage(type, call, text),
      terminate: (id, reason) => void this.terminate(id, reason),
    });
  }

  get size(): number {
    return this.calls.size;
  }

  get isAccepting(): boolean {
    return this.accepting;
  }

  /** `fn` runs for every call this manager ends, after its row is written (the console keeps recent ones). */
  onEnded(fn: (call: Call) => void): void {
    this.endedListeners.push(fn);
  }

  session(id: string): Call | undefined {
    return this.calls.get(id);
  }

  sessions(): IterableIterator<Call> {
    return this.calls.values();
  }

  /** POST /v1/pipecatcalls: validate, insert, publish created, then reach the siblings by reference type. */
  async create(body: unknown): Promise<Pipecatcall> {
    const { config } = this.deps;
    const req = parseCreateRequest(body, config.defaults.llmType, config.limits);
    if (req.reference_type === 'ai_call' && isNilUuid(req.reference_id)) {
      throw new BadRequestError('reference_id must name the aicall when reference_type is ai_call');
    }
    if (req.reference_type === 'call' && config.callManager && isNilUuid(req.reference_id)) {
      throw new BadRequestError('reference_id must name the call when reference_type is call (CALL_MANAGER=on)');
    }
    this.deps.providers.checkAvailable({ stt: req.stt_type, tts: req.tts_type, ttsVoiceId: req.tts_voice_id || config.defaults.ttsVoiceId });
    this.refuseWhenStopping();
    if (this.calls.has(req.id)) throw new ConflictError(`pipecatcall ${req.id} already exists`);
    const release = this.deps.admit?.() ?? ((): void => undefined);
    const row = await this.deps.store.create(rowOfRequest(req, config.podIp)).catch((err: unknown) => {
      release();
      throw err;
    });
    this.deps.events.publish('pipecatcall_created', encodePipecatcall(row));
    this.deps.metrics.callsTotal.inc({ reference_type: row.reference_type });
    const log = this.deps.log.child({ pipecatcall_id: row.id });
    log.info({ reference_type: row.reference_type, llm_type: row.llm_type, stt_type: row.stt_type, tts_type: row.tts_type }, 'pipecatcall created');

    // Registered before the sibling RPCs: Asterisk may connect as soon as call-manager has been asked. A call
    // whose media never comes ends (SPEC §2.2); a text-only session starting below clears the timer.
    const call = this.register(row, req.vad_config, null, log);
    release();
    call.startMediaTimer(config.mediaConnectTimeoutSeconds * 1000, () => {
      call.log.warn({ timeout_s: config.mediaConnectTimeoutSeconds }, 'the media never connected; ending the call');
      void this.terminate(call.id, 'no_media');
    });
    try {
      if (req.reference_type === 'ai_call') {
        // Only GET /v1/aicalls on this path, as the old service: the AI's key is asked for at pipeline start.
        const aicall = await this.deps.siblings.getAicall(req.reference_id, call.abort.signal);
        call.aicall = { aicallId: req.reference_id, referenceType: aicall.reference_type, referenceId: aicall.reference_id, aiId: aicall.ai_id };
        if (aicall.reference_type === 'call') await this.requestExternalMedia(call, aicall.reference_id, false);
        else this.startSession(call);
      } else {
        await this.requestExternalMedia(call, req.reference_id, true);
      }
    } catch (err) {
      // Nothing is left half-made: the row is terminated and the event published (SPEC §5.1 fix).
      log.warn({ err: messageOf(err) }, 'create failed at a sibling service; terminating the call');
      await this.terminate(call.id, 'error');
      throw err instanceof DependencyError ? err : new DependencyError('sibling', messageOf(err), { cause: err });
    }
    return row;
  }

  /** True when GET and stop of this call are answered from memory: a live session, or an end not yet written. */
  inMemory(id: string): boolean {
    return this.calls.has(id) || this.rows.pending(id) !== undefined;
  }

  /** GET /v1/pipecatcalls/<id>. */
  async get(id: string): Promise<Pipecatcall> {
    const live = this.calls.get(id)?.row ?? this.rows.pending(id);
    if (live !== undefined) return live;
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
    const max = this.deps.config.limits.messageTextChars;
    if (req.text.length > max) throw new BadRequestError(`message_text is longer than ${max} characters (MESSAGE_TEXT_MAX_CHARS)`);
    const call = this.calls.get(req.pipecatcallId);
    if (call === undefined || call.isTerminating) {
      throw new NotFoundError(`pipecatcall ${req.pipecatcallId} has no session on this host`);
    }
    call.touch();
    call.injectMessage({ text: req.text, runImmediately: req.runImmediately, audioResponse: req.audioResponse });
    call.log.info({ run_immediately: req.runImmediately, audio_response: req.audioResponse }, 'message injected');
    return messageOfCall(call, req.text);
  }

  /** Calls with a live session on a host: this instance's from memory, another's from its live rows. */
  async list(hostId: string): Promise<Pipecatcall[]> {
    if (hostId === this.deps.config.podIp) {
      return [...this.calls.values()].filter((c) => !c.isTerminating).map((c) => c.row);
    }
    return this.deps.store.listLiveByHost(hostId);
  }

  publishMessage(type: string, call: Call, text: string): void {
    this.deps.events.publish(type, encodeMessage(messageOfCall(call, text)));
  }

  /**
   * A media transport connected with a call id (SPEC §2.2): finds the call (or creates it for unknown ids when
   * UNKNOWN_CALLS=accept), attaches the media and starts the session and its pipeline. Atomic per id: a second
   * connection for the same id, even one arriving while the first is still being looked up, is refused. Throws to
   * make the transport close the media.
   */
  async attachMedia(id: string, media: CallMedia): Promise<Call> {
    this.refuseWhenStopping();
    if (this.attaching.has(id) || (this.calls.get(id)?.media ?? null) !== null) {
      throw new ConflictError(`pipecatcall ${id} already has media attached`);
    }
    this.attaching.add(id);
    try {
      const call = this.calls.get(id) ?? (await this.findForMedia(id));
      if (call.isTerminating) throw new ConflictError(`pipecatcall ${id} is terminating`);
      if (call.media !== null) throw new ConflictError(`pipecatcall ${id} already has media attached`);
      this.refuseWhenStopping();
      call.media = media;
      call.stopMediaTimer();
      call.log.info({ transport: media.transport }, 'media attached');
      this.startSession(call);
      return call;
    } finally {
      this.attaching.delete(id);
    }
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
    await this.rows.close();
  }

  private refuseWhenStopping(): void {
    if (!this.accepting) throw new DependencyError('pipecat-manager', 'this instance is shutting down and takes no new calls');
  }

  /** The call of a media connection with no session here: created (UNKNOWN_CALLS=accept) or adopted. */
  private async findForMedia(id: string): Promise<Call> {
    const row = this.rows.pending(id) ?? (await this.deps.store.get(id));
    if (row === null) {
      if (this.deps.config.unknownCalls === 'reject') throw new NotFoundError(`pipecatcall ${id} is unknown (UNKNOWN_CALLS=reject)`);
      const release = this.deps.admit?.() ?? ((): void => undefined);
      return this.createForUnknownMedia(id).finally(release);
    }
    if (isTerminated(row)) throw new ConflictError(`pipecatcall ${id} is already terminated`);
    if (row.host_id !== this.deps.config.podIp) throw new ConflictError(`pipecatcall ${id} belongs to host ${row.host_id}`);
    // A live row of ours with no session: this instance restarted since the create (or an RPC create registered
    // it meanwhile). Adopt it; its external media (if call-manager made one) is the call's reference.
    const live = this.calls.get(id);
    if (live !== undefined) return live;
    const call = this.register(row, { ...DEFAULT_VAD_CONFIG }, null, this.deps.log.child({ pipecatcall_id: id }));
    if (row.reference_type === 'call' && !isNilUuid(row.reference_id)) call.externalMediaCallId = row.reference_id;
    return call;
  }

  private async createForUnknownMedia(id: string): Promise<Call> {
    const d = this.deps.config.defaults;
    const req = parseCreateRequest(
      { id, reference_type: 'call', llm_type: d.llmType, stt_type: d.sttType, tts_type: d.ttsType, tts_voice_id: d.ttsVoiceId },
      d.llmType,
    );
    let row: Pipecatcall;
    try {
      row = await this.deps.store.create(rowOfRequest(req, this.deps.config.podIp));
    } catch (err) {
      // An RPC create of the same id registered the call meanwhile: attach to it.
      const winner = this.calls.get(id);
      if (err instanceof ConflictError && winner !== undefined) return winner;
      throw err;
    }
    this.deps.events.publish('pipecatcall_created', encodePipecatcall(row));
    this.deps.metrics.callsTotal.inc({ reference_type: row.reference_type });
    const log = this.deps.log.child({ pipecatcall_id: id });
    log.info('pipecatcall created for an unknown media connection (UNKNOWN_CALLS=accept)');
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

  /** The one place a session starts: media attached (at the UUID), or a text-only session. */
  private startSession(call: Call): void {
    call.sessionStarted = true;
    call.stopMediaTimer();
    this.deps.metrics.activeSessionsByTransport.inc({ transport: call.transport });
    call.startPipeline(this.starter.build);
    this.deps.events.publish('pipecatcall_initialized', encodePipecatcall(call.row));
    call.log.info({ transport: call.transport }, 'pipecatcall initialized');
  }

  private async requestExternalMedia(call: Call, callId: string, checkCall: boolean): Promise<void> {
    if (!this.deps.config.callManager) return;
    const signal = call.abort.signal;
    if (checkCall) await this.deps.siblings.callStatus(callId, signal);
    await this.deps.siblings.createExternalMedia(call.id, callId, this.deps.externalHost(), signal);
    call.externalMediaCallId = callId;
  }

  private async runTermination(call: Call, reason: TerminateReason): Promise<void> {
    await tearDown(call, reason, { ...this.deps, rows: this.rows });
    this.calls.delete(call.id);
    this.deps.metrics.activeCalls.set(this.calls.size);
    call.log.info({ reason }, 'pipecatcall terminated');
    for (const fn of this.endedListeners) {
      try {
        fn(call);
      } catch (err) {
        call.log.warn({ err: messageOf(err) }, 'a listener of ended calls failed');
      }
    }
    if (this.calls.size === 0) for (const done of this.drained.splice(0)) done();
  }
}
