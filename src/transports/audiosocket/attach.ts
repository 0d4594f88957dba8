// Wires an Asterisk connection to its call (SPEC §2.2 steps 2–6): paced output from the UUID on, before the
// store has been asked anything; then the call is found or created and the media attached; caller audio and
// DTMF go to the call, and the connection's end ends the call.

import type { OutputClock } from '../../audio/clock.js';
import type { Pacer } from '../../audio/pacer/pacer.js';
import type { Call } from '../../calls/call.js';
import type { CallManager } from '../../calls/manager.js';
import { AppError, messageOf } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { Metrics } from '../../metrics.js';
import type { AudiosocketConnection } from './connection.js';
import { DtmfGate } from './dtmf-gate.js';
import { AudiosocketMedia } from './media.js';
import { rateOfKind } from './protocol.js';

export interface AudiosocketAttachDeps {
  calls: CallManager;
  clock: OutputClock;
  /** Writes the frames on its own thread when given (AUDIOSOCKET_PACER_LEAD_MS > 0). */
  pacer?: Pacer | null;
  metrics: Metrics;
  log: Logger;
  /** `ignore`: DTMF from Asterisk is activity only, not a user turn (ai-manager forwards key presses itself). */
  dtmf: 'turn' | 'ignore';
}

/** Handles one connection after its UUID; never throws (a refused connection is closed and counted). */
export async function attachAudiosocket(deps: AudiosocketAttachDeps, uuid: string, conn: AudiosocketConnection): Promise<void> {
  const media = new AudiosocketMedia(conn, deps.clock, deps.metrics, deps.pacer ?? null);
  let call: Call | null = null;
  conn.onAudio((pcm, kind) => call?.pushAudio(pcm, rateOfKind(kind)));
  const dtmfGate = new DtmfGate();
  conn.onDtmf((digit) => {
    if (call === null) return;
    if (!dtmfGate.admit(digit)) {
      deps.metrics.inputDroppedTotal.inc({ kind: 'dtmf' });
      if (dtmfGate.dropped === 1) call.log.warn('DTMF digits arrive faster than a person presses keys: the excess is dropped');
      return;
    }
    if (deps.dtmf === 'turn') call.pushDtmf(digit);
    else call.touch();
  });
  // Asterisk hung up (EOF or 0x00), or the connection broke: the call ends. A close of our own making during
  // termination finds the call already terminating; terminate() is idempotent.
  conn.onClose((reason) => {
    if (call === null) media.close(false);
    else void deps.calls.terminate(call.id, reason === 'local' || reason === 'protocol' ? 'error' : 'hangup');
  });
  try {
    call = await deps.calls.attachMedia(uuid, media);
  } catch (err) {
    const code = err instanceof AppError ? err.code.toLowerCase() : 'internal';
    deps.metrics.mediaRefusedTotal.inc({ transport: 'audiosocket', reason: code });
    deps.log.info({ pipecatcall_id: uuid, remote: conn.remoteAddress, err: messageOf(err) }, 'audiosocket connection refused');
    media.close(false);
    return;
  }
  // Closed while the call was being looked up: the close handler saw no call yet.
  if (conn.closed) void deps.calls.terminate(call.id, 'hangup');
}
