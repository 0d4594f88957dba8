// Many RPC requests in flight at once on one channel, each with its own correlation_id and one shared reply queue:
// what a busy sibling service (or a hostile one) does. Written on amqplib alone, like RpcTestClient.

import amqp, { type Channel, type ChannelModel } from 'amqplib';

export interface FloodRequest {
  queue: string;
  body: Buffer;
  /** false: no reply_to (fire-and-forget / delayed). Default true. */
  replyTo?: boolean;
}

export interface FloodReply {
  status: number | undefined;
  json: unknown;
  raw: Buffer;
  contentType: unknown;
  correlationId: unknown;
}

export class RpcFlood {
  private constructor(
    private readonly conn: ChannelModel,
    private readonly ch: Channel,
    private readonly replyQueue: string,
    private readonly replies: Map<string, FloodReply[]>,
  ) {}

  static async connect(url: string): Promise<RpcFlood> {
    const conn = await amqp.connect(url, { noDelay: true });
    conn.on('error', () => undefined);
    const ch = await conn.createChannel();
    ch.on('error', () => undefined);
    const { queue } = await ch.assertQueue('', { exclusive: true, autoDelete: true });
    const replies = new Map<string, FloodReply[]>();
    await ch.consume(
      queue,
      (msg) => {
        if (msg === null) return;
        let json: unknown;
        try {
          json = JSON.parse(msg.content.toString('utf8'));
        } catch {
          json = undefined;
        }
        const status = (json as { status_code?: unknown } | undefined)?.status_code;
        const id = String(msg.properties.correlationId);
        const list = replies.get(id) ?? [];
        list.push({
          status: typeof status === 'number' ? status : undefined,
          json,
          raw: msg.content,
          contentType: msg.properties.contentType,
          correlationId: msg.properties.correlationId,
        });
        replies.set(id, list);
      },
      { noAck: true },
    );
    return new RpcFlood(conn, ch, queue, replies);
  }

  /**
   * Publishes every request at once (correlation ids `${prefix}-${i}`), then waits until each one that has a
   * reply_to got a reply, or timeoutMs passed. Returns the replies by index (undefined: none came).
   */
  async send(requests: FloodRequest[], prefix: string, timeoutMs = 30_000): Promise<Array<FloodReply[] | undefined>> {
    requests.forEach((r, i) => {
      this.ch.sendToQueue(r.queue, r.body, {
        contentType: 'text/plain',
        correlationId: `${prefix}-${i}`,
        ...(r.replyTo === false ? {} : { replyTo: this.replyQueue }),
      });
    });
    const expected = requests.map((r, i) => (r.replyTo === false ? undefined : `${prefix}-${i}`)).filter((x) => x !== undefined);
    const deadline = Date.now() + timeoutMs;
    while (expected.some((id) => !this.replies.has(id)) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    return requests.map((_, i) => this.replies.get(`${prefix}-${i}`));
  }

  /** Replies that arrived for the requests sent with `prefix` (for "nothing was answered" checks). */
  repliesWithPrefix(prefix: string): number {
    let n = 0;
    for (const [id, list] of this.replies) if (id.slice(0, id.lastIndexOf('-')) === prefix) n += list.length;
    return n;
  }

  /** Drops the replies kept so far (before measuring the heap of the process). */
  forget(): void {
    this.replies.clear();
  }

  async close(): Promise<void> {
    await this.conn.close().catch(() => undefined);
  }
}

/** A request envelope as the Go siblings send it. */
export function envelope(uri: string, method: string, data?: unknown): Buffer {
  const e: Record<string, unknown> = { uri, method, publisher: 'reliability-test', data_type: data === undefined ? '' : 'application/json' };
  if (data !== undefined) e.data = data;
  return Buffer.from(JSON.stringify(e));
}
