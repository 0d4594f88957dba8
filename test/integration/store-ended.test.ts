// The past-calls listing of both stores (listEnded): ended rows only, newest first, keyset pages that neither skip
// nor repeat a row, the id / reference_id / customer_id filters, and a clear error for a bad page size. The same
// contract runs against the real MariaDB and the embedded SQLite file.

import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BadRequestError } from '../../src/errors.js';
import type { Pipecatcall } from '../../src/model/pipecatcall.js';
import { NIL_UUID } from '../../src/model/uuid.js';
import { Database } from '../../src/store/mysql.js';
import { NO_CACHE, PipecatcallStore, type EndedQuery } from '../../src/store/pipecatcall-store.js';
import { PipecatcallRepository } from '../../src/store/pipecatcalls.js';
import { SqliteDatabase } from '../../src/store/sqlite.js';
import { SqlitePipecatcallRepository } from '../../src/store/sqlite-pipecatcalls.js';
import { createTestDatabase, testLogger } from '../helpers/services.js';

const log = testLogger();

function row(tmCreate: string, over: Partial<Pipecatcall> = {}): Pipecatcall {
  return {
    id: randomUUID(),
    customer_id: randomUUID(),
    activeflow_id: NIL_UUID,
    reference_type: 'call',
    reference_id: randomUUID(),
    host_id: '10.0.0.9',
    llm_type: 'local.echo',
    llm_messages: [],
    stt_type: 'sphinx',
    stt_language: '',
    tts_type: 'espeak',
    tts_language: '',
    tts_voice_id: '',
    tm_create: tmCreate,
    tm_update: '',
    tm_delete: '',
    ...over,
  };
}

/** Every page of a query, following the keyset cursor (the last row of each page). */
async function allPages(store: PipecatcallStore, q: Omit<EndedQuery, 'before'>): Promise<string[][]> {
  const pages: string[][] = [];
  let before: EndedQuery['before'];
  for (;;) {
    const page = await store.listEnded({ ...q, ...(before !== undefined ? { before } : {}) });
    if (page.length === 0) return pages;
    pages.push(page.map((r) => r.id));
    const last = page[page.length - 1] as Pipecatcall;
    before = { tmCreate: last.tm_create, id: last.id };
  }
}

function contract(name: string, open: () => Promise<{ store: PipecatcallStore; close: () => Promise<void> | void }>): void {
  describe(`listEnded (${name})`, () => {
    let store: PipecatcallStore;
    let close: () => Promise<void> | void = () => undefined;
    const customer = randomUUID();
    const reference = randomUUID();
    // Seven rows: five ended (two with the same tm_create, so the id breaks the tie), two live.
    const ended = [
      row('2026-01-01 10:00:00.000001', { customer_id: customer }),
      row('2026-01-01 10:00:00.000002'),
      row('2026-01-01 10:00:00.000003', { reference_id: reference }),
      row('2026-01-01 10:00:00.000003', { customer_id: customer }),
      row('2026-01-01 10:00:00.000005'),
    ];
    const live = [row('2026-01-01 10:00:00.000004', { customer_id: customer }), row('2026-01-01 10:00:00.000006')];
    /** The ended ids as the listing must order them: tm_create descending, then id descending. */
    const newestFirst = [...ended]
      .sort((a, b) => (a.tm_create === b.tm_create ? Buffer.compare(idBytes(b.id), idBytes(a.id)) : b.tm_create.localeCompare(a.tm_create)))
      .map((r) => r.id);

    beforeAll(async () => {
      ({ store, close } = await open());
      for (const r of [...ended, ...live]) await store.create(r);
      for (const r of ended) await store.markDeleted(r.id);
    });
    afterAll(async () => close());

    it('lists only ended rows, newest first, in pages that neither skip nor repeat a row', async () => {
      const pages = await allPages(store, { limit: 2 });
      expect(pages.map((p) => p.length)).toEqual([2, 2, 1]);
      expect(pages.flat()).toEqual(newestFirst);
      const first = await store.listEnded({ limit: 1 });
      expect(first[0]?.tm_delete).not.toBe('9999-01-01 00:00:00.000000');
      expect(first[0]?.id).toBe(newestFirst[0]);
    });

    it('filters by id, reference_id and customer_id', async () => {
      const target = ended[1] as Pipecatcall;
      expect((await store.listEnded({ limit: 10, id: target.id })).map((r) => r.id)).toEqual([target.id]);
      expect((await store.listEnded({ limit: 10, referenceId: reference })).map((r) => r.id)).toEqual([ended[2]?.id]);
      // The live row of that customer is not listed.
      expect((await store.listEnded({ limit: 10, customerId: customer })).map((r) => r.id)).toEqual([ended[3]?.id, ended[0]?.id]);
      expect(await allPages(store, { limit: 1, customerId: customer })).toEqual([[ended[3]?.id], [ended[0]?.id]]);
      expect(await store.listEnded({ limit: 10, id: (live[0] as Pipecatcall).id })).toEqual([]);
      expect(await store.listEnded({ limit: 10, customerId: randomUUID() })).toEqual([]);
    });

    it('refuses a page size outside 1..100 with a BadRequestError', async () => {
      for (const limit of [0, 101, 1.5]) {
        await expect(store.listEnded({ limit })).rejects.toBeInstanceOf(BadRequestError);
      }
    });
  });
}

function idBytes(id: string): Buffer {
  return Buffer.from(id.replace(/-/g, ''), 'hex');
}

contract('MariaDB', async () => {
  const testDb = await createTestDatabase();
  const db = await Database.open(testDb.config, log);
  return {
    store: new PipecatcallStore(new PipecatcallRepository(db), NO_CACHE),
    close: async () => {
      await db.close();
      await testDb.drop();
    },
  };
});

contract('SQLite', () => {
  const db = SqliteDatabase.open(join(mkdtempSync(join(tmpdir(), 'store-ended-')), 'calls.sqlite'), log);
  return Promise.resolve({ store: new PipecatcallStore(new SqlitePipecatcallRepository(db), NO_CACHE), close: () => db.close() });
});
