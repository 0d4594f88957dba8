// Writes the end of a call's row (tm_update, tm_delete). When the store is down the end is kept and retried in
// the background until it is written, so a row never stays live for ever because of an outage.

import { messageOf } from '../errors.js';
import type { Logger } from '../log.js';
import { isTerminated, type Pipecatcall } from '../model/pipecatcall.js';
import { nowTimestamp } from '../model/timestamp.js';
import type { CallStore } from './ports.js';

/** An end that could not be written is retried after this long, doubling up to the cap. */
const RETRY_INITIAL_MS = 1_000;
const RETRY_MAX_MS = 10_000;

export class RowEnder {
  /** id → tm_delete of ends not yet written. */
  private readonly unwritten = new Map<string, string>();
  private timer: NodeJS.Timeout | null = null;
  private retryMs = RETRY_INITIAL_MS;
  private stopped = false;
  /** Ended rows whose end is not in the store yet: GET answers from here, so it never shows them live. */
  private readonly pendingRows = new Map<string, Pipecatcall>();
  private readonly writes = new Set<Promise<void>>();

  constructor(
    private readonly store: CallStore,
    private readonly log: Logger,
  ) {}

  /**
   * Ends the row and resolves once the store has answered, so `pipecatcall_terminated` follows the write as SPEC §3.8
   * orders. The wait is bounded by the store's own query deadline (DATABASE_QUERY_TIMEOUT_MS): a slow or stopped
   * MySQL delays the event by at most that, never the media. A failed write is kept and retried in the background;
   * until it lands, GET answers with the ended copy from memory.
   */
  async end(row: Pipecatcall, log: Logger): Promise<Pipecatcall> {
    const now = nowTimestamp();
    const local = { ...row, tm_update: now, tm_delete: isTerminated(row) ? row.tm_delete : now };
    this.pendingRows.set(row.id, local);
    const write = this.store.markDeleted(row.id, local.tm_delete).then(
      () => {
        this.pendingRows.delete(row.id);
      },
      (err: unknown) => {
        log.error({ err: messageOf(err) }, 'could not mark the pipecatcall deleted in the store; retrying until it is back');
        this.unwritten.set(row.id, local.tm_delete);
        this.retryMs = RETRY_INITIAL_MS;
        this.schedule();
      },
    );
    this.writes.add(write);
    void write.finally(() => this.writes.delete(write));
    await write;
    return local;
  }

  /** The ended row while its end is not in the store yet. */
  pending(id: string): Pipecatcall | undefined {
    return this.pendingRows.get(id);
  }

  /** Stops retrying after one last pass; what is still unwritten is logged. */
  async close(): Promise<void> {
    await Promise.allSettled([...this.writes]);
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    await this.writeAll();
    if (this.unwritten.size > 0) {
      this.log.error(
        { pipecatcall_ids: [...this.unwritten.keys()] },
        'the store is still unreachable: these ended calls keep tm_delete unset in it',
      );
      this.unwritten.clear();
    }
    this.pendingRows.clear();
  }

  private schedule(): void {
    if (this.stopped || this.timer !== null || this.unwritten.size === 0) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.writeAll().then(() => this.schedule());
    }, this.retryMs);
  }

  /** One pass over the unwritten ends; stops at the first failure (the store is still down). Never rejects. */
  private async writeAll(): Promise<void> {
    let written = 0;
    for (const [id, at] of [...this.unwritten]) {
      try {
        await this.store.markDeleted(id, at);
      } catch {
        this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
        break;
      }
      this.unwritten.delete(id);
      this.pendingRows.delete(id);
      written++;
    }
    if (written > 0) this.log.info({ written, left: this.unwritten.size }, 'wrote the ends of calls that ended while the store was down');
  }
}
