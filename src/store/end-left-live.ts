// Startup recovery for the embedded store: calls this host left live when its process died (kill -9, power
// loss) have no session any more, so they are ended before any new call is taken — reason `restart`.

import type { CallStore, EventSink } from '../calls/manager.js';
import { messageOf } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics.js';
import { encodePipecatcall } from '../model/pipecatcall.js';

/** Ends every live row of `hostId` (tm_delete = now) with its pipecatcall_terminated event; the count ended. */
export async function endRowsLeftLive(
  store: Pick<CallStore, 'listLiveByHost' | 'markDeleted'>,
  events: EventSink,
  hostId: string,
  metrics: Metrics,
  log: Logger,
): Promise<number> {
  const rows = await store.listLiveByHost(hostId);
  let ended = 0;
  for (const row of rows) {
    try {
      const now = await store.markDeleted(row.id);
      if (now === null) continue;
      ended++;
      metrics.callsTerminatedTotal.inc({ reason: 'restart' });
      events.publish('pipecatcall_terminated', encodePipecatcall(now));
    } catch (err) {
      // One row that cannot be written must not keep the daemon from starting; it stays live and is logged.
      log.warn({ pipecatcall_id: row.id, err: messageOf(err) }, 'could not end a call left live by the last run');
    }
  }
  if (rows.length > 0) log.info({ calls: ended, reason: 'restart' }, 'ended the calls the last run of this host left live');
  return ended;
}
