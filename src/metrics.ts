// Every Prometheus metric of the daemon, on its own registry (SPEC §12). Names keep the old service's spelling.

import { getHeapStatistics } from 'node:v8';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

const PREFIX = 'pipecat_manager_';
const MS_BUCKETS = [50, 100, 500, 1000, 3000];
const FINE_SECONDS = [
  0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2,
  3, 5,
];

export class Metrics {
  readonly registry = new Registry();

  // Compatibility set (milliseconds).
  readonly receiveRequestProcessTime = new Histogram({
    name: `${PREFIX}receive_request_process_time`,
    help: 'Time to process one received RPC request, in milliseconds',
    labelNames: ['type', 'method'] as const,
    buckets: MS_BUCKETS,
    registers: [this.registry],
  });
  readonly requestProcessTime = new Histogram({
    name: `${PREFIX}request_process_time`,
    help: 'Time of one outbound RPC request to a sibling service, in milliseconds',
    labelNames: ['target', 'resource', 'method'] as const,
    buckets: MS_BUCKETS,
    registers: [this.registry],
  });
  readonly notifyTotal = new Counter({
    name: `${PREFIX}notify_total`,
    help: 'Events published, by type',
    labelNames: ['type'] as const,
    registers: [this.registry],
  });
  readonly notifyProcessTime = new Histogram({
    name: `${PREFIX}notify_process_time`,
    help: 'Time to publish one event, in milliseconds',
    labelNames: ['type'] as const,
    buckets: MS_BUCKETS,
    registers: [this.registry],
  });

  // Pipeline and transport (seconds).
  readonly voiceToVoice = this.seconds('voice_to_voice_seconds', 'User stopped speaking → first bot audio frame written');
  readonly sttFinal = this.seconds('stt_final_seconds', 'End of the user\'s speech (VAD stop minus stop_secs) → final transcript');
  readonly llmTtft = this.seconds('llm_ttft_seconds', 'LLM request → first token');
  readonly ttsTtfb = this.seconds('tts_ttfb_seconds', 'TTS request → first audio byte');
  readonly outputFrameLateness = this.seconds(
    'output_frame_lateness_seconds',
    'How late each output frame was written against its 20 ms slot',
  );

  readonly activeCalls = new Gauge({
    name: `${PREFIX}active_calls`,
    help: 'Calls with a live session on this instance',
    registers: [this.registry],
  });
  readonly activeSessionsByTransport = new Gauge({
    name: `${PREFIX}active_sessions_by_transport`,
    help: 'Live sessions by media transport (audiosocket, websocket, none)',
    labelNames: ['transport'] as const,
    registers: [this.registry],
  });
  readonly callsTotal = new Counter({
    name: `${PREFIX}calls_total`,
    help: 'Calls created, by reference type',
    labelNames: ['reference_type'] as const,
    registers: [this.registry],
  });
  readonly callsTerminatedTotal = new Counter({
    name: `${PREFIX}calls_terminated_total`,
    help: 'Calls terminated, by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly interruptionsTotal = new Counter({
    name: `${PREFIX}interruptions_total`,
    help: 'Barge-ins by outcome: confirmed (the bot was cancelled) or false (no words came; the bot resumed)',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });
  readonly audiosocketFramesTotal = new Counter({
    name: `${PREFIX}audiosocket_frames_total`,
    help: 'Audiosocket audio frames, by direction (in, out)',
    labelNames: ['direction'] as const,
    registers: [this.registry],
  });
  readonly audiosocketProtocolErrorsTotal = new Counter({
    name: `${PREFIX}audiosocket_protocol_errors_total`,
    help: 'Audiosocket connections closed for a protocol violation, by kind',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });
  readonly mediaRefusedTotal = new Counter({
    name: `${PREFIX}media_refused_total`,
    help: 'Media connections (Audiosocket, WebSocket) refused after their call id: unknown, taken, ended, shutting down',
    labelNames: ['transport', 'reason'] as const,
    registers: [this.registry],
  });
  readonly providerErrorsTotal = new Counter({
    name: `${PREFIX}provider_errors_total`,
    help: 'AI provider failures, by provider and stage (stt, llm, tts), each counted once by the provider base, also when it was then retried',
    labelNames: ['provider', 'stage'] as const,
    registers: [this.registry],
  });
  readonly providerRetriesTotal = new Counter({
    name: `${PREFIX}provider_retries_total`,
    help: 'AI provider failures recovered by a retry: STT streams reconnected, LLM requests retried before their first token',
    labelNames: ['provider', 'stage'] as const,
    registers: [this.registry],
  });
  /** The provider bases' metrics port (src/providers/base/metrics.ts); the registry hands it to every provider. */
  readonly providers = {
    failed: (provider: string, stage: 'stt' | 'llm' | 'tts'): void => this.providerErrorsTotal.inc({ provider, stage }),
    retried: (provider: string, stage: 'stt' | 'llm' | 'tts'): void => this.providerRetriesTotal.inc({ provider, stage }),
  };
  readonly droppedFramesTotal = new Counter({
    name: `${PREFIX}dropped_frames_total`,
    help: 'Audio frames dropped (full queues, writes to a congested socket)',
    registers: [this.registry],
  });
  readonly outputUnderrunsTotal = new Counter({
    name: `${PREFIX}output_underruns_total`,
    help: 'Slots on which the pacing thread had no bot frame staged while the reply went on (a gap the caller heard)',
    registers: [this.registry],
  });
  readonly cacheErrorsTotal = new Counter({
    name: `${PREFIX}cache_errors_total`,
    help: 'Redis operations that failed and fell back to the database, by operation',
    labelNames: ['operation'] as const,
    registers: [this.registry],
  });
  readonly eventsBuffered = new Gauge({
    name: `${PREFIX}events_buffered`,
    help: 'Events waiting in memory for the broker to come back',
    registers: [this.registry],
  });
  readonly eventsDroppedTotal = new Counter({
    name: `${PREFIX}events_dropped_total`,
    help: 'Events dropped because the outage buffer was full',
    registers: [this.registry],
  });
  readonly webhookEventsTotal = new Counter({
    name: `${PREFIX}webhook_events_total`,
    help: 'Events for EVENTS_WEBHOOK_URL by outcome: delivered, retried (an attempt failed), rejected (4xx), dropped (queue full or shutdown)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly webhookEventsQueued = new Gauge({
    name: `${PREFIX}webhook_events_queued`,
    help: 'Events waiting to be delivered to EVENTS_WEBHOOK_URL',
    registers: [this.registry],
  });

  // Turn-taking (issue 13): each stage of a finished user turn, from its per-turn record (pipeline/turn-record.ts).
  readonly turnStageSeconds = new Histogram({
    name: `${PREFIX}turn_stage_seconds`,
    help:
      'Stages of a user turn: onset_to_vad_start, barge_in (onset → bot output stopped), speech_end_to_final, ' +
      'speech_end_to_turn_end, llm_first_token, tts_first_audio, voice_to_voice (speech end → first bot frame), ' +
      'pipeline_own (the daemon\'s own handoffs)',
    labelNames: ['stage'] as const,
    buckets: FINE_SECONDS,
    registers: [this.registry],
  });
  readonly preemptiveGenerationsTotal = new Counter({
    name: `${PREFIX}preemptive_generations_total`,
    help: 'Replies started before the user turn ended, by outcome: used, or discarded (the turn went on or changed)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly connectionsRefusedTotal = new Counter({
    name: `${PREFIX}connections_refused_total`,
    help: 'Connections refused by a listener, by listener (audiosocket, http, websocket) and reason (cap, emfile, …)',
    labelNames: ['listener', 'reason'] as const,
    registers: [this.registry],
  });
  readonly openFileLimitReachedTotal = new Counter({
    name: `${PREFIX}open_file_limit_reached_total`,
    help: 'Checks (every 2 s) that found the process at its open-file limit, where new connections fail with EMFILE',
    registers: [this.registry],
  });
  readonly inputDroppedTotal = new Counter({
    name: `${PREFIX}input_dropped_total`,
    help: 'Peer input dropped by a rate limit, by kind (dtmf)',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });

  // Native memory attribution (issue 16): what process.memoryUsage() and V8 know beyond the default metrics.
  readonly processMemoryBytes = new Gauge({
    name: `${PREFIX}process_memory_bytes`,
    help: 'Memory of the main thread by kind: array_buffers (incl. the resampler modules), external, v8_malloced',
    labelNames: ['kind'] as const,
    registers: [this.registry],
    collect() {
      const m = process.memoryUsage();
      this.set({ kind: 'array_buffers' }, m.arrayBuffers);
      this.set({ kind: 'external' }, m.external);
      this.set({ kind: 'v8_malloced' }, getHeapStatistics().malloced_memory);
    },
  });

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }

  private seconds(name: string, help: string): Histogram {
    return new Histogram({ name: `${PREFIX}${name}`, help, buckets: FINE_SECONDS, registers: [this.registry] });
  }
}
