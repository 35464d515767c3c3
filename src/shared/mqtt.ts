import { randomUUID } from 'node:crypto'
import type { Socket } from 'node:net'
import mqtt from 'mqtt'

export type BrokerClient = mqtt.MqttClient

/**
 * MQTT 5 client that reconnects by itself. Nagle is turned off on every (re)connected socket:
 * with it on, a QoS 1 round trip takes about 40 ms instead of under 1.
 */
export async function connectBroker(url: string, onError: (error: Error) => void): Promise<BrokerClient> {
  const client = mqtt.connect(url, {
    protocolVersion: 5,
    clientId: `smart-parking-${randomUUID()}`,
    clean: true,
    reconnectPeriod: 1_000,
    connectTimeout: 3_000,
    keepalive: 30,
  })
  client.on('connect', () => (client.stream as Partial<Socket>).setNoDelay?.(true))
  client.on('error', onError)
  try {
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve())
      client.once('error', reject)
      client.once('close', () => reject(new Error('connection closed')))
    })
  } catch (error) {
    await client.endAsync(true).catch(() => {})
    throw error
  }
  return client
}
