// Pipecatcall persistence with the cache-through rules of SPEC §6.3: MySQL is the truth, every write re-reads
// the row and refreshes Redis, reads try Redis first. The cache never fails an operation (see PipecatcallCache).

import { BadRequestError, DependencyError } from '../errors.js';
import type { Pipecatcall } from '../model/pipecatcall.js';
import { nowTimestamp } from '../model/timestamp.js';

/** Row persistence: PipecatcallRepository (MySQL) and SqlitePipecatcallRepository implement it. */
export interface PipecatcallRows {
  /** ConflictError if the id exists. */
  insert(p: Pipecatcall): Promise<void>;
  get(id: string): Promise<Pipecatcall | null>;
  /** false when there is no such live row. */
  markDeleted(id: string, ts: string): Promise<boolean>;
  listLiveByHost(hostId: string): Promise<Pipecatcall[]>;
  /** Ended rows, newest first, one page (see EndedQuery). */
  listEnded(q: EndedQuery): Promise<Pipecatcall[]>;
}

/**
 * A page of ended calls (tm_delete set), newest first by (tm_create, id). Each filter is an exact UUID; `before` is
 * the last row of the previous page (keyset paging: no OFFSET, so a page costs the same however deep it is).
 */
export interface EndedQuery {
  limit: number;
  id?: string;
  referenceId?: string;
  customerId?: string;
  before?: { tmCreate: string; id: string };
}

/** The largest page listEnded serves. */
export const MAX_ENDED_PAGE = 100;

/** The WHERE clause of listEnded (same SQL for MySQL and SQLite: `?` placeholders, UUIDs as 16 bytes). */
export function endedWhere(q: EndedQuery, toBytes: (uuid: string) => Buffer, never: string): { where: string; params: unknown[] } {
  if (!Number.isInteger(q.limit) || q.limit < 1 || q.limit > MAX_ENDED_PAGE) {
    throw new BadRequestError(`limit must be a whole number from 1 to ${MAX_ENDED_PAGE}, got ${q.limit}`);
  }
  const clauses = ['tm_delete <> ?'];
  const params: unknown[] = [never];
  if (q.id !== undefined) {
    clauses.push('id = ?');
    params.push(toBytes(q.id));
  }
  if (q.referenceId !== undefined) {
    clauses.push('reference_id = ?');
    params.push(toBytes(q.referenceId));
  }
  if (q.customerId !== undefined) {
    clauses.push('customer_id = ?');
    params.push(toBytes(q.customerId));
  }
  if (q.before !== undefined) {
    clauses.push('(tm_create < ? OR (tm_create = ? AND id < ?))');
    params.push(q.before.tmCreate, q.before.tmCreate, toBytes(q.before.id));
  }
  return { where: `WHERE ${clauses.join(' AND ')} ORDER BY tm_create DESC, id DESC LIMIT ?`, params: [...params, q.limit] };
}

/** The cache in front of the rows: PipecatcallCache (Redis), or NO_CACHE when none is configured. */
export interface PipecatcallCacheLike {
  get(id: string): Promise<Pipecatcall | null>;
  set(p: Pipecatcall): Promise<void>;
}

export const NO_CACHE: PipecatcallCacheLike = {
  get: () => Promise.resolve(null),
  set: () => Promise.resolve(),
};

export class PipecatcallStore {
  constructor(
    private readonly repo: PipecatcallRows,
    private readonly cache: PipecatcallCacheLike,
  ) {}

  /** Inserts p and returns the row as stored (sentinels, nil UUIDs and all). ConflictError if the id exists. */
  async create(p: Pipecatcall): Promise<Pipecatcall> {
    await this.repo.insert(p);
    const row = await this.repo.get(p.id);
    if (row === null) throw new DependencyError('database', `pipecatcall ${p.id} was inserted but cannot be read back`);
    await this.cache.set(row);
    return row;
  }

  async get(id: string): Promise<Pipecatcall | null> {
    const cached = await this.cache.get(id);
    if (cached !== null) return cached;
    const row = await this.repo.get(id);
    if (row !== null) await this.cache.set(row);
    return row;
  }

  /**
   * Sets tm_update/tm_delete to `at` (default now) unless already deleted; the row as it now is, or null if there
   * is none. `at` lets an end that could not be written during an outage keep its real time.
   */
  async markDeleted(id: string, at: string = nowTimestamp()): Promise<Pipecatcall | null> {
    await this.repo.markDeleted(id, at);
    const row = await this.repo.get(id);
    if (row !== null) await this.cache.set(row);
    return row;
  }

  listLiveByHost(hostId: string): Promise<Pipecatcall[]> {
    return this.repo.listLiveByHost(hostId);
  }

  /** Ended calls, newest first, from the database (the cache holds single rows only). */
  listEnded(q: EndedQuery): Promise<Pipecatcall[]> {
    return this.repo.listEnded(q);
  }
}
