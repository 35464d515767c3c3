import { hostname } from 'node:os'
import { Gauge } from 'prom-client'
import type { Logger } from '../../shared/logger.ts'
import type { Metrics } from '../../shared/metrics.ts'
import { type Subscriber, startSubscriber } from '../../shared/mqtt-subscriber.ts'
import type { IngestPipeline } from './ingest.pipeline.ts'
import { sensorTopics } from './occupancy.contract.ts'

export type IngestDoorSettings = {
  brokerUrl: string
  shareGroup: string
  clientId: string
  receiveMaximum: number
  sessionExpirySeconds: number
}

export const defaultIngestClientId = (port: number) =>
  `ingest-${hostname()
    .replace(/[^\w.-]/g, '-')
    .slice(0, 40)}-${port === 0 ? process.pid : port}`

/**
 * The MQTT door: one QoS 1 shared subscription (instances in one group split the messages), each
 * message handed to the pipeline, acknowledged by the pipeline after its batch's Redis step.
 */
export function openIngestDoor(deps: {
  pipeline: IngestPipeline
  metrics: Metrics
  logger: Logger
  settings: IngestDoorSettings
}): Subscriber {
  const { settings, logger } = deps
  const subscriber = startSubscriber({
    url: settings.brokerUrl,
    clientId: settings.clientId,
    topic: `$share/${settings.shareGroup}/${sensorTopics.all}`,
    receiveMaximum: settings.receiveMaximum,
    sessionExpirySeconds: settings.sessionExpirySeconds,
    onMessage: (topic, payload, ack) => deps.pipeline.accept(topic, payload, ack),
    onState: (state, detail) => {
      if (state === 'connected')
        logger.info({ clientId: settings.clientId }, 'ingest subscribed to sensor messages')
      else
        logger.warn({ detail }, 'ingest lost the broker; reconnecting (unacknowledged messages come again)')
    },
  })
  new Gauge({
    name: 'ingest_in_flight_messages',
    help: 'Sensor messages received and not yet acknowledged to the broker.',
    registers: [deps.metrics.registry],
    collect() {
      this.set(subscriber.inFlight)
    },
  })
  return subscriber
}
