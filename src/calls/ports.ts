// What calls/ needs from the edges, declared here and implemented there: the media transports (Audiosocket,
// WebSocket), the sibling services over RPC (rpc/sibling-client.ts), the store and the event publisher. calls/
// imports none of them.

import type { Pipecatcall } from '../model/pipecatcall.js';
import type { BotAudioSink } from '../pipeline/audio-sink.js';
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import type { ProviderRegistry } from '../providers/registry.js';

export type CallTransport = 'audiosocket' | 'websocket' | 'none';

/** Something that follows a call live (RTVI-style notices, SPEC §9): the WebSocket monitor implements it. */
export interface CallListener {
  notice(type: string, data?: Record<string, unknown>): void;
}

/** A call's media transport: where the pipeline's bot audio goes, and the connection it ends with the call. */
export interface CallMedia {
  readonly transport: CallTransport;
  /** The paced output, already on the shared clock when the media is attached. */
  readonly sink: BotAudioSink;
  /**
   * The caller's audio rate the pipeline prepares for before the first audio arrives (Audiosocket: 8 kHz, what
   * the AudioSocket application always sends), or null when nothing is likely.
   */
  readonly expectedInputRate: number | null;
  /** Ends the media: `handBack` sends the transport's hangup (0x00) first so the dialplan continues. Idempotent. */
  close(handBack: boolean): void;
}

/** An aicall at ai-manager (SPEC §5.1). */
export interface Aicall {
  reference_type: string;
  reference_id: string;
  ai_id: string;
}

/** The sibling services a call talks to (call-manager, ai-manager); each request honours its signal. */
export interface SiblingPort {
  /** The call's status at call-manager (e.g. `progressing`, `hangup`). */
  callStatus(callId: string, signal?: AbortSignal): Promise<string>;
  /** Asks call-manager to have Asterisk dial our Audiosocket server with the pipecatcall id. */
  createExternalMedia(pipecatcallId: string, callId: string, externalHost: string, signal?: AbortSignal): Promise<void>;
  deleteExternalMedia(pipecatcallId: string, signal?: AbortSignal): Promise<void>;
  getAicall(aicallId: string, signal?: AbortSignal): Promise<Aicall>;
  /** The AI's LLM key (`engine_key`); '' when the AI has none. */
  getAiEngineKey(aiId: string, signal?: AbortSignal): Promise<string>;
  /** Runs one tool call at ai-manager; its JSON reply as text. */
  executeTool(aicallId: string, toolCall: { id: string; name: string; arguments: string }, signal?: AbortSignal): Promise<string>;
}

/** Persistence the manager needs (store/PipecatcallStore implements it). */
export interface CallStore {
  create(p: Pipecatcall): Promise<Pipecatcall>;
  get(id: string): Promise<Pipecatcall | null>;
  /** Ends the row at `at` (default now); the row as it now is. */
  markDeleted(id: string, at?: string): Promise<Pipecatcall | null>;
  listLiveByHost(hostId: string): Promise<Pipecatcall[]>;
}

/** Where call and message events go (rpc/EventPublisher implements it). */
export interface EventSink {
  publish(type: string, dataJson: string): void;
}

/** What the CallManager is built from: the ports above plus the configuration and the provider registry. */
export interface CallManagerDeps {
  config: Config;
  store: CallStore;
  events: EventSink;
  siblings: SiblingPort;
  metrics: Metrics;
  log: Logger;
  /** Opens the providers a call asks for; also refuses ones that cannot work here (a missing key) at create. */
  providers: ProviderRegistry;
  /** The Audiosocket address Asterisk is told to connect to (`<POD_IP>:<port>`). */
  externalHost: () => string;
  /**
   * Admission control (src/admission.ts): throws when this instance takes no new call right now; otherwise holds a
   * place under MAX_CALLS until the returned function is called (once the call is registered, or failed).
   */
  admit?: () => () => void;
}
