// A call's termination, in the order of SPEC §3.8: the call's own close() (pipeline, then media), the external
// media at call-manager, the row, the event. The CallManager runs it once per call and then drops the session.

import type { Config } from '../config.js';
import { messageOf } from '../errors.js';
import type { Metrics } from '../metrics.js';
import { encodePipecatcall } from '../model/pipecatcall.js';
import type { Call, TerminateReason } from './call.js';
import type { EventSink, SiblingPort } from './ports.js';
import type { RowEnder } from './row-ender.js';

export interface TeardownDeps {
  config: Config;
  siblings: SiblingPort;
  events: EventSink;
  metrics: Metrics;
  rows: RowEnder;
}

export async function tearDown(call: Call, reason: TerminateReason, deps: TeardownDeps): Promise<void> {
  call.terminateReason = reason;
  call.log.info({ reason }, 'terminating');
  // 1–2. The call's own teardown: the pipeline (providers aborted, final events flushed), then the media.
  if (call.sessionStarted) deps.metrics.activeSessionsByTransport.dec({ transport: call.transport });
  await call.close();
  // 3. External media at call-manager; a failure there does not skip the rest (SPEC §3.8 fix).
  const mediaCallId = call.externalMediaCallId;
  if (mediaCallId !== null && deps.config.callManager) {
    try {
      const status = await deps.siblings.callStatus(mediaCallId);
      if (status === 'progressing') await deps.siblings.deleteExternalMedia(call.id);
    } catch (err) {
      call.log.warn({ err: messageOf(err) }, 'could not delete the external media at call-manager');
    }
  }
  // 4. The row, then the event; the manager then removes the session.
  call.row = await deps.rows.end(call.row, call.log);
  deps.events.publish('pipecatcall_terminated', encodePipecatcall(call.row));
  deps.metrics.callsTerminatedTotal.inc({ reason });
}
