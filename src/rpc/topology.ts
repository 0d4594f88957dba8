// Queue and exchange names and declarations of SPEC §4.2, rerun on every (re)connect as the first broker setup.
// The delayed-message exchange is optional: without its plugin, delayed requests are simply not received.

import type { Channel } from 'amqplib';
import { messageOf } from '../errors.js';
import type { Logger } from '../log.js';
import type { Broker } from './broker.js';

export const SHARED_QUEUE = 'bin-manager.pipecat-manager.request';
export const EVENT_EXCHANGE = 'bin-manager.pipecat-manager.event';
export const DELAY_EXCHANGE = 'bin-manager.delay';

export function perHostQueue(podIp: string): string {
  return `${SHARED_QUEUE}.${podIp}`;
}

export const DELAY_UNAVAILABLE_WARNING =
  `delayed-message exchange ${DELAY_EXCHANGE} unavailable (plugin missing?): delayed requests will not be received`;

export class Topology {
  readonly sharedQueue = SHARED_QUEUE;
  readonly perHostQueue: string;
  /** Whether the last declare of the delayed exchange succeeded; undefined before the first attempt. */
  delayedAvailable: boolean | undefined;
  private warned = false;

  constructor(
    private readonly broker: Broker,
    podIp: string,
    private readonly log: Logger,
  ) {
    this.perHostQueue = perHostQueue(podIp);
  }

  /** Both request queues; every route answers on both. */
  get queues(): string[] {
    return [this.sharedQueue, this.perHostQueue];
  }

  /** Registers the declarations as a broker setup; call it before anything that consumes or publishes. */
  register(): Promise<void> {
    return this.broker.onConnected(this.declare);
  }

  unregister(): void {
    this.broker.offConnected(this.declare);
  }

  readonly declare = async (ch: Channel): Promise<void> => {
    await ch.assertExchange(EVENT_EXCHANGE, 'fanout', { durable: true });
    await ch.assertQueue(this.sharedQueue, { durable: true, exclusive: false, autoDelete: false });
    await ch.assertQueue(this.perHostQueue, { durable: false, exclusive: false, autoDelete: true });
    await this.declareDelayed();
  };

  /**
   * On a throwaway connection: an unknown exchange type is a connection-level error (503 COMMAND_INVALID) in
   * RabbitMQ, so trying it on the main connection would drop every consumer. A failure to even connect is thrown
   * (the broker went away again and the whole setup is retried); a refused declare is warned about once.
   */
  private async declareDelayed(): Promise<void> {
    let reached = false;
    let refusal: string | undefined;
    try {
      await this.broker.withThrowawayConnection(async (tmp) => {
        reached = true;
        await tmp.assertExchange(DELAY_EXCHANGE, 'x-delayed-message', {
          durable: true,
          arguments: { 'x-delayed-type': 'direct' },
        });
        for (const queue of this.queues) await tmp.bindQueue(queue, DELAY_EXCHANGE, queue);
      });
    } catch (err) {
      if (!reached) throw err;
      refusal = messageOf(err);
    }
    this.delayedAvailable = refusal === undefined;
    if (refusal === undefined) return;
    if (!this.warned) {
      this.warned = true;
      this.log.warn({ exchange: DELAY_EXCHANGE, err: refusal }, DELAY_UNAVAILABLE_WARNING);
    }
  }
}

/** Declares the topology now and after every reconnect; the composition root calls this before any consumer. */
export async function declareTopology(broker: Broker, podIp: string, log: Logger): Promise<Topology> {
  const topology = new Topology(broker, podIp, log);
  await topology.register();
  return topology;
}
