// pipecat-control's connection to the daemon: RabbitMQ RPC (one client, opened on the first request and closed
// once at the end; per-call requests go to the queue of the host that owns the call), or the same routes over
// HTTP when asked with --http URL or when the configuration names no broker.

import type { Config } from '../config.js';
import { createLogger } from '../log.js';
import { Metrics } from '../metrics.js';
import { Broker } from '../rpc/broker.js';
import { RpcClient } from '../rpc/client.js';
import { HttpRpcClient } from '../rpc/http-rpc-client.js';
import { SHARED_QUEUE, perHostQueue } from '../rpc/topology.js';

export class ControlSession {
  private broker: Broker | null = null;
  private rpc: RpcClient | null = null;
  private closing: Promise<void> | null = null;

  private readonly http: HttpRpcClient | null;

  /** `httpUrl`: --http, which sends every request over HTTP to that daemon whatever the configuration says. */
  constructor(
    readonly config: Config,
    httpUrl?: string,
  ) {
    if (httpUrl !== undefined) this.http = new HttpRpcClient(httpUrl, config.httpAuthToken);
    else this.http = config.rabbitmqAddress === '' ? HttpRpcClient.fromConfig(config) : null;
  }

  private async client(): Promise<RpcClient> {
    if (this.rpc !== null) return this.rpc;
    const log = createLogger('silent');
    this.broker = await Broker.connect(this.config.rabbitmqAddress, log);
    this.rpc = new RpcClient({ broker: this.broker, publisher: 'pipecat-manager', metrics: new Metrics({ defaultMetrics: false }), log });
    await this.rpc.ready?.();
    return this.rpc;
  }

  /** One RPC request; resolves with the reply's `data`, rejects with RpcStatusError on a status ≥ 300. */
  async request(queue: string, uri: string, method: 'GET' | 'POST', data?: unknown): Promise<unknown> {
    if (this.http !== null) return (await this.http.request(data === undefined ? { uri, method } : { uri, method, data })).data;
    const rpc = await this.client();
    const r = await rpc.request(queue, data === undefined ? { uri, method } : { uri, method, data });
    return r.data;
  }

  /** The per-host queue of the instance that owns a call, read from the call's row (`host_id`). */
  async ownerQueue(id: string): Promise<string> {
    // Over HTTP the daemon addressed is the one that answers; there is no queue to choose.
    if (this.http !== null) return '';
    const row = (await this.request(SHARED_QUEUE, `/v1/pipecatcalls/${id}`, 'GET')) as { host_id?: unknown };
    const host = typeof row.host_id === 'string' && row.host_id !== '' ? row.host_id : this.config.podIp;
    return perHostQueue(host);
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.rpc?.close();
      await this.broker?.close();
    })();
    return this.closing;
  }
}
